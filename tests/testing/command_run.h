// Runs a shell command line to completion and captures what it printed: for tests of the
// command-line binaries (exit codes, usage errors, help text).
#ifndef DREAMBOOTH_TESTS_TESTING_COMMAND_RUN_H_
#define DREAMBOOTH_TESTS_TESTING_COMMAND_RUN_H_

#include <string>

namespace dreambooth::testing {

struct CommandRun {
  int exit_code = -1;  // -1 when the command did not exit normally (e.g. killed by a signal)
  std::string out;     // stdout and stderr, interleaved
};

// Runs `command` with /bin/sh (stderr redirected into stdout) and waits for it.
CommandRun RunCommand(const std::string& command);

}  // namespace dreambooth::testing

#endif  // DREAMBOOTH_TESTS_TESTING_COMMAND_RUN_H_
