#include "tools/dbtool/sample_args.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "worker/diffusion/device.h"

namespace dreambooth::dbtool {

absl::StatusOr<int64_t> ParseIntFlag(const std::string& flag, const std::string& value) {
  int64_t result = 0;
  if (!absl::SimpleAtoi(value, &result)) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " expects an integer, got '", value, "'"));
  }
  return result;
}

absl::StatusOr<double> ParseDoubleFlag(const std::string& flag, const std::string& value) {
  double result = 0;
  if (!absl::SimpleAtod(value, &result)) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " expects a number, got '", value, "'"));
  }
  return result;
}

absl::StatusOr<at::Device> ParseDeviceFlag(const std::string& value) {
  absl::StatusOr<at::Device> device = diffusion::ResolveDevice(value);
  if (!device.ok())
    return absl::Status(device.status().code(), "--" + std::string(device.status().message()));
  return device;
}

absl::StatusOr<at::ScalarType> ParseDtypeFlag(const std::string& value) {
  if (value == "fp32" || value == "float32") return at::kFloat;
  if (value == "fp16" || value == "float16") return at::kHalf;
  if (value == "bf16" || value == "bfloat16") return at::kBFloat16;
  return absl::InvalidArgumentError(
      absl::StrCat("--dtype expects fp32, fp16 or bf16, got '", value, "'"));
}

}  // namespace dreambooth::dbtool
