// `dbtool devices [--json]`: lists this machine's compute devices (the CPU, then every visible
// CUDA device) with their memory, as the worker reports them to the server.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tools/dbtool/command_registry.h"
#include "worker/diffusion/device.h"

namespace dreambooth::dbtool {
namespace {

int RunDevices(const std::vector<std::string>& args) {
  const bool json = args.size() == 1 && args[0] == "--json";
  if (!args.empty() && !json) {
    std::fprintf(stderr, "usage: dbtool devices [--json]\n");
    return 2;
  }
  const std::vector<diffusion::DeviceInfo> devices = diffusion::ListDevices();
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const diffusion::DeviceInfo& d : devices) {
      out.push_back({{"name", d.name},
                     {"description", d.description},
                     {"total_bytes", d.total_bytes},
                     {"free_bytes", d.free_bytes}});
    }
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  for (const diffusion::DeviceInfo& d : devices) {
    std::printf("%s\n", diffusion::FormatDeviceInfo(d).c_str());
  }
  return 0;
}

DB_REGISTER_COMMAND({"devices", "devices [--json]",
                     "list the CPU and the visible CUDA devices with their free memory",
                     RunDevices});

}  // namespace
}  // namespace dreambooth::dbtool
