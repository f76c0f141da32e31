// Small helpers for parsing the `--flag value` options of dbtool's model commands.
#ifndef DREAMBOOTH_TOOLS_DBTOOL_SAMPLE_ARGS_H_
#define DREAMBOOTH_TOOLS_DBTOOL_SAMPLE_ARGS_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace dreambooth::dbtool {

// Parses an integer / floating-point flag value; INVALID_ARGUMENT names the flag.
absl::StatusOr<int64_t> ParseIntFlag(const std::string& flag, const std::string& value);
absl::StatusOr<double> ParseDoubleFlag(const std::string& flag, const std::string& value);
// "cpu", "cuda", "cuda:N".
absl::StatusOr<at::Device> ParseDeviceFlag(const std::string& value);
// "fp32" / "float32", "fp16" / "float16", "bf16" / "bfloat16".
absl::StatusOr<at::ScalarType> ParseDtypeFlag(const std::string& value);

}  // namespace dreambooth::dbtool

#endif  // DREAMBOOTH_TOOLS_DBTOOL_SAMPLE_ARGS_H_
