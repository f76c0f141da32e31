#include "tools/dbtool/command_registry.h"

#include <utility>

namespace dreambooth::dbtool {
namespace {

std::map<std::string, Command>& MutableCommands() {
  static auto* commands = new std::map<std::string, Command>();
  return *commands;
}

}  // namespace

bool RegisterCommand(Command command) {
  std::string name = command.name;
  MutableCommands()[name] = std::move(command);
  return true;
}

const std::map<std::string, Command>& Commands() { return MutableCommands(); }

}  // namespace dreambooth::dbtool
