// dbtool: local Stable Diffusion / DreamBooth tool (no server).
//
//   dbtool COMMAND [OPTIONS] [ARGS...]     e.g. dbtool train --help
//
// The commands are registered by the cmd_<name>.cc files of this folder; `dbtool --help` lists
// them and `dbtool COMMAND --help` lists a command's options with their defaults. Bad usage exits
// with status 2.
#include <iostream>
#include <map>
#include <optional>

#include "common/cli_flags.h"
#include "kernels/caching_cpu_allocator.h"
#include "tools/dbtool/command_registry.h"

int main(int argc, char** argv) {
  using namespace dreambooth;
  CLI::App app("Local Stable Diffusion / DreamBooth tool (no server).", "dbtool");
  cli::ConfigureApp(app);
  app.require_subcommand(1);
  std::map<CLI::App*, dbtool::Runner> runners;
  for (const auto& [name, command] : dbtool::Commands()) {
    CLI::App* sub = app.add_subcommand(name, command.summary);
    runners[sub] = command.declare(*sub);
  }
  CLI::App* help = app.add_subcommand("help", "Print this help");
  if (std::optional<int> exit_code = cli::ParseCommandLine(app, argc, argv)) return *exit_code;
  if (help->parsed()) {
    std::cout << app.get_formatter()->make_help(&app, app.get_name(), CLI::AppFormatMode::Normal);
    return 0;
  }
  dreambooth::kernels::InstallCachingCpuAllocator();
  for (const auto& [sub, run] : runners) {
    if (sub->parsed()) return run();
  }
  return cli::UsageError(app, "no command given");
}
