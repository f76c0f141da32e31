// Subcommands of dbtool. Each tools/dbtool/cmd_<name>.cc registers one command at static
// initialisation with DB_REGISTER_COMMAND; main.cc adds each as a CLI11 subcommand (so each has
// its own generated --help), lets it declare its options, parses argv and runs the one given.
#ifndef DREAMBOOTH_TOOLS_DBTOOL_COMMAND_REGISTRY_H_
#define DREAMBOOTH_TOOLS_DBTOOL_COMMAND_REGISTRY_H_

#include <functional>
#include <map>
#include <string>

#include "common/cli_flags.h"

namespace dreambooth::dbtool {

// Runs a parsed command; returns the process exit code (2 for bad usage found after parsing).
using Runner = std::function<int()>;

struct Command {
  std::string name;     // e.g. "parity"
  std::string summary;  // one sentence, shown by `dbtool --help`
  // Declares the command's options and arguments on `app` (its subcommand, configured by
  // cli::ConfigureApp) and returns what runs it once argv is parsed into them; the parsed values
  // live in the runner's captures.
  std::function<Runner(CLI::App& app)> declare;
};

// Registers `command`; returns true (for static initialisers). Not thread-safe: call only from
// static initialisation or before main parses.
bool RegisterCommand(Command command);
// All commands by name.
const std::map<std::string, Command>& Commands();

}  // namespace dreambooth::dbtool

#define DB_DBTOOL_CONCAT_INNER_(a, b) a##b
#define DB_DBTOOL_CONCAT_(a, b) DB_DBTOOL_CONCAT_INNER_(a, b)
// DB_REGISTER_COMMAND({"name", "summary", DeclareFunction});
#define DB_REGISTER_COMMAND(...)                                          \
  static const bool DB_DBTOOL_CONCAT_(db_command_registered_, __LINE__) = \
      ::dreambooth::dbtool::RegisterCommand(::dreambooth::dbtool::Command __VA_ARGS__)

#endif  // DREAMBOOTH_TOOLS_DBTOOL_COMMAND_REGISTRY_H_
