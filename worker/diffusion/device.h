// The one place that turns a device name ("cpu", "cuda", "cuda:N") into an at::Device and checks
// that this machine has it. Every binary and library that takes a --device uses it, so a worker or
// dbtool asked for CUDA on a machine without a GPU fails at start with the same clear message.
#ifndef DREAMBOOTH_WORKER_DIFFUSION_DEVICE_H_
#define DREAMBOOTH_WORKER_DIFFUSION_DEVICE_H_

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dreambooth::diffusion {

// Parses `name` and checks the device is present. "cuda" means "cuda:0".
// INVALID_ARGUMENT: not cpu, cuda or cuda:N. FAILED_PRECONDITION: no CUDA device on this machine,
// or N is past the last one (the message says how many there are and why CUDA may be missing).
absl::StatusOr<c10::Device> ResolveDevice(absl::string_view name);

// "fp32"/"float32", "fp16"/"float16", "bf16"/"bfloat16"; INVALID_ARGUMENT otherwise.
absl::StatusOr<c10::ScalarType> ParseDtype(absl::string_view name);

// The weight dtype inference (Sample RPCs) runs in: `name` parsed, or for "auto" float16 on CUDA
// (diffusers' usual inference dtype) and float32 on the CPU (bf16 is faster there but not
// the default: docs/benchmarks-diffusion.md). fp16 on the CPU is INVALID_ARGUMENT.
absl::StatusOr<c10::ScalarType> ResolveInferenceDtype(absl::string_view name,
                                                      const c10::Device& device);

// One compute device of this machine, as a worker reports it to the server.
struct DeviceInfo {
  std::string name;         // "cpu", "cuda:0", ...
  std::string description;  // "NVIDIA H200" or the CPU's model name
  int64_t total_bytes = 0;  // device memory (host RAM for the CPU)
  int64_t free_bytes = 0;   // free now (MemAvailable for the CPU)
};

// Describes `device` (which ResolveDevice accepted) with its current free memory.
DeviceInfo DescribeDevice(const c10::Device& device);

// The CPU followed by every visible CUDA device.
std::vector<DeviceInfo> ListDevices();

// "cuda:0 NVIDIA H200 (139.8 GiB, 130.2 GiB free)".
std::string FormatDeviceInfo(const DeviceInfo& info);

// Peak bytes held on `device` since the last ResetPeakMemory: on CUDA LibTorch's caching
// allocator's peak of allocated bytes; on the CPU the process's peak resident set (which cannot
// be reset).
int64_t PeakMemoryBytes(const c10::Device& device);
void ResetPeakMemory(const c10::Device& device);

}  // namespace dreambooth::diffusion

#endif  // DREAMBOOTH_WORKER_DIFFUSION_DEVICE_H_
