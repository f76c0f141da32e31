// dbtool: local Stable Diffusion / DreamBooth tool (no server). `dbtool COMMAND [ARGS...]`; the
// commands are registered by the cmd_<name>.cc files of this folder.
#include <cstdio>
#include <string>
#include <vector>

#include "kernels/caching_cpu_allocator.h"
#include "tools/dbtool/command_registry.h"

namespace {

void PrintUsage() {
  std::fprintf(stderr, "usage: dbtool COMMAND [ARGS...]\n\ncommands:\n");
  for (const auto& [name, command] : dreambooth::dbtool::Commands()) {
    std::fprintf(stderr, "  %-60s %s\n", command.usage.c_str(), command.summary.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" ||
      std::string(argv[1]) == "help") {
    PrintUsage();
    return argc < 2 ? 2 : 0;
  }
  const auto& commands = dreambooth::dbtool::Commands();
  auto it = commands.find(argv[1]);
  if (it == commands.end()) {
    std::fprintf(stderr, "dbtool: unknown command '%s'\n\n", argv[1]);
    PrintUsage();
    return 2;
  }
  dreambooth::kernels::InstallCachingCpuAllocator();
  std::vector<std::string> args(argv + 2, argv + argc);
  return it->second.run(args);
}
