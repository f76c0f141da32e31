// `dbtool devices [--json]`: lists this machine's compute devices (the CPU, then every visible
// CUDA device) with their memory, as the worker reports them to the server.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/cli_flags.h"
#include "tools/dbtool/command_registry.h"
#include "worker/diffusion/device.h"

namespace dreambooth::dbtool {
namespace {

int RunDevices(bool json) {
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

Runner DeclareDevices(CLI::App& app) {
  auto json = std::make_shared<bool>(false);
  cli::AddSwitch(app, "--json", json.get(), true, "one JSON array");
  return [json] { return RunDevices(*json); };
}

DB_REGISTER_COMMAND({"devices", "List the CPU and the visible CUDA devices with their free memory",
                     DeclareDevices});

}  // namespace
}  // namespace dreambooth::dbtool
