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
  absl::StatusOr<at::ScalarType> dtype = diffusion::ParseDtype(value);
  if (!dtype.ok())
    return absl::InvalidArgumentError(absl::StrCat("--dtype: ", dtype.status().message()));
  return dtype;
}

}  // namespace dreambooth::dbtool
