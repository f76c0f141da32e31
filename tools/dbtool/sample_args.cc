#include "tools/dbtool/sample_args.h"

#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "worker/diffusion/device.h"

namespace dreambooth::dbtool {
namespace {

std::string DtypeName(c10::ScalarType dtype) {
  if (dtype == c10::kHalf) return "fp16";
  if (dtype == c10::kBFloat16) return "bf16";
  if (dtype == c10::kFloat) return "fp32";
  return c10::toString(dtype);
}

}  // namespace

CLI::Option* AddDeviceOption(CLI::App& app, c10::Device* device) {
  return cli::AddParsed(
      app, "--device", device,
      [](const std::string& name) { return diffusion::ResolveDevice(name); },
      "cpu|cuda|cuda:N (must be present on this machine)", "DEVICE", device->str());
}

CLI::Option* AddDtypeOption(CLI::App& app, c10::ScalarType* dtype) {
  return cli::AddParsed(
      app, "--dtype", dtype, [](const std::string& name) { return diffusion::ParseDtype(name); },
      "fp32|fp16|bf16: the models' weight dtype", "DTYPE", DtypeName(*dtype));
}

CLI::Option* AddAttentionOption(CLI::App& app, diffusion::AttentionBackend* backend) {
  return cli::AddParsed(
      app, "--attention", backend,
      [](const std::string& name) -> absl::StatusOr<diffusion::AttentionBackend> {
        std::optional<diffusion::AttentionBackend> parsed = diffusion::ParseAttentionBackend(name);
        if (!parsed) {
          return absl::InvalidArgumentError(
              absl::StrCat("unknown backend '", name, "'; expected auto|sdpa|math|chunked|sliced"));
        }
        return *parsed;
      },
      "auto|sdpa|math|chunked|sliced", "BACKEND", diffusion::AttentionBackendName(*backend));
}

CLI::Option* AddFusedKernelsOption(CLI::App& app, std::optional<kernels::FusedKernels>* fused) {
  return cli::AddValue(app, "--fused-kernels",
                       "none|all|a comma list of group_norm_silu, guided_ddim_step "
                       "(default: $DB_FUSED_KERNELS, else none)",
                       "LIST", "", [fused](const std::string& text) -> absl::Status {
                         absl::StatusOr<kernels::FusedKernels> parsed =
                             kernels::ParseFusedKernels(text);
                         if (!parsed.ok()) return parsed.status();
                         *fused = *parsed;
                         return absl::OkStatus();
                       });
}

CLI::Option* AddThreadsOption(CLI::App& app, int64_t* threads) {
  return cli::AddInt(app, "--threads", threads, "LibTorch intra-op threads (0: its default)",
                     int64_t{0}, std::numeric_limits<int>::max());
}

}  // namespace dreambooth::dbtool
