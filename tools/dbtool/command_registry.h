// Subcommands of dbtool. Each tools/dbtool/cmd_<name>.cc registers one command at static
// initialisation with DB_REGISTER_COMMAND; main.cc dispatches on argv[1].
#ifndef DREAMBOOTH_TOOLS_DBTOOL_COMMAND_REGISTRY_H_
#define DREAMBOOTH_TOOLS_DBTOOL_COMMAND_REGISTRY_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace dreambooth::dbtool {

struct Command {
  std::string name;     // e.g. "parity"
  std::string usage;    // one line, e.g. "parity FIXTURE_DIR"
  std::string summary;  // one sentence
  // Runs with the arguments after the command name; returns the process exit code.
  std::function<int(const std::vector<std::string>& args)> run;
};

// Registers `command`; returns true (for static initialisers). Not thread-safe: call only from
// static initialisation or before main's dispatch.
bool RegisterCommand(Command command);
// All commands by name.
const std::map<std::string, Command>& Commands();

}  // namespace dreambooth::dbtool

#define DB_DBTOOL_CONCAT_INNER_(a, b) a##b
#define DB_DBTOOL_CONCAT_(a, b) DB_DBTOOL_CONCAT_INNER_(a, b)
// DB_REGISTER_COMMAND({"name", "usage", "summary", RunFunction});
#define DB_REGISTER_COMMAND(...)                                          \
  static const bool DB_DBTOOL_CONCAT_(db_command_registered_, __LINE__) = \
      ::dreambooth::dbtool::RegisterCommand(::dreambooth::dbtool::Command __VA_ARGS__)

#endif  // DREAMBOOTH_TOOLS_DBTOOL_COMMAND_REGISTRY_H_
