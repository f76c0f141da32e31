#include "worker/diffusion/device.h"

#include <sys/resource.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <fstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

#if DB_TORCH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda_runtime_api.h>
#endif

namespace dreambooth::diffusion {
namespace {

std::string CudaMissingReason() {
#if DB_TORCH_CUDA
  int runtime = 0;
  cudaRuntimeGetVersion(&runtime);
  int driver = 0;
  cudaDriverGetVersion(&driver);
  if (driver == 0) {
    return absl::StrCat("LibTorch ", TORCH_VERSION, " has CUDA ", runtime / 1000, ".",
                        (runtime % 1000) / 10, " but no NVIDIA driver was found");
  }
  return absl::StrCat("LibTorch ", TORCH_VERSION, " has CUDA ", runtime / 1000, ".",
                      (runtime % 1000) / 10, " and the driver supports ", driver / 1000, ".",
                      (driver % 1000) / 10, ", but no device is visible (CUDA_VISIBLE_DEVICES?)");
#else
  return absl::StrCat("LibTorch ", TORCH_VERSION,
                      " sees no CUDA device; this build has no CUDA runtime headers to say why");
#endif
}

// Value in kB of `key` in /proc/meminfo, in bytes; 0 when absent.
int64_t MemInfoBytes(absl::string_view key) {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view rest = line;
    if (!absl::ConsumePrefix(&rest, key) || !absl::ConsumePrefix(&rest, ":")) continue;
    rest = absl::StripAsciiWhitespace(absl::StripSuffix(absl::StripAsciiWhitespace(rest), "kB"));
    int64_t kb = 0;
    return absl::SimpleAtoi(rest, &kb) ? kb * 1024 : 0;
  }
  return 0;
}

std::string ReadCpuModelName() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view rest = line;
    if (absl::ConsumePrefix(&rest, "model name")) {
      const size_t colon = rest.find(':');
      if (colon != absl::string_view::npos) {
        return std::string(absl::StripAsciiWhitespace(rest.substr(colon + 1)));
      }
    }
  }
  return "CPU";
}

// Read once: the worker describes its device on every lease request.
const std::string& CpuModelName() {
  static const std::string* name = new std::string(ReadCpuModelName());
  return *name;
}

}  // namespace

absl::StatusOr<c10::ScalarType> ParseDtype(absl::string_view name) {
  if (name == "fp32" || name == "float32") return c10::kFloat;
  if (name == "fp16" || name == "float16") return c10::kHalf;
  if (name == "bf16" || name == "bfloat16") return c10::kBFloat16;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown dtype '", name, "' (expected fp32, fp16 or bf16)"));
}

absl::StatusOr<c10::ScalarType> ResolveInferenceDtype(absl::string_view name,
                                                      const c10::Device& device) {
  if (name == "auto") return device.is_cuda() ? c10::kHalf : c10::kFloat;
  absl::StatusOr<c10::ScalarType> dtype = ParseDtype(name);
  if (dtype.ok() && *dtype == c10::kHalf && !device.is_cuda()) {
    return absl::InvalidArgumentError("fp16 inference needs a CUDA device (use bf16 on the CPU)");
  }
  return dtype;
}

absl::StatusOr<c10::Device> ResolveDevice(absl::string_view name) {
  if (name == "cpu") return c10::Device(c10::kCPU);
  absl::string_view rest = name;
  int index = 0;
  if (!absl::ConsumePrefix(&rest, "cuda") ||
      (!rest.empty() && (!absl::ConsumePrefix(&rest, ":") || !absl::SimpleAtoi(rest, &index) ||
                         index < 0 || index > 255))) {
    return absl::InvalidArgumentError(
        absl::StrCat("device '", name, "': expected cpu, cuda or cuda:N"));
  }
  const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
  if (count == 0) {
    return absl::FailedPreconditionError(absl::StrCat("device '", name,
                                                      "': this machine has no usable CUDA device (",
                                                      CudaMissingReason(), "); use --device cpu"));
  }
  if (index >= count) {
    return absl::FailedPreconditionError(absl::StrCat("device '", name, "': this machine has ",
                                                      count,
                                                      " CUDA device(s), cuda:0..cuda:", count - 1));
  }
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

DeviceInfo DescribeDevice(const c10::Device& device) {
  DeviceInfo info;
  info.name = device.str();
  if (device.is_cpu()) {
    info.description = CpuModelName();
    info.total_bytes = MemInfoBytes("MemTotal");
    info.free_bytes = MemInfoBytes("MemAvailable");
    return info;
  }
#if DB_TORCH_CUDA
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, device.index()) == cudaSuccess) {
    info.description = prop.name;
    info.total_bytes = static_cast<int64_t>(prop.totalGlobalMem);
  }
  int previous = 0;
  size_t free_bytes = 0;
  size_t total_bytes = 0;
  if (cudaGetDevice(&previous) == cudaSuccess && cudaSetDevice(device.index()) == cudaSuccess) {
    if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
      info.free_bytes = static_cast<int64_t>(free_bytes);
    }
    cudaSetDevice(previous);
  }
#endif
  return info;
}

std::vector<DeviceInfo> ListDevices() {
  std::vector<DeviceInfo> devices = {DescribeDevice(c10::Device(c10::kCPU))};
  const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
  for (int64_t i = 0; i < count; ++i) {
    devices.push_back(DescribeDevice(c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(i))));
  }
  return devices;
}

std::string FormatDeviceInfo(const DeviceInfo& info) {
  constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
  return absl::StrFormat("%s %s (%.1f GiB, %.1f GiB free)", info.name, info.description,
                         info.total_bytes / kGiB, info.free_bytes / kGiB);
}

int64_t PeakMemoryBytes(const c10::Device& device) {
#if DB_TORCH_CUDA
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    return stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)]
        .peak;
  }
#endif
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

void ResetPeakMemory(const c10::Device& device) {
#if DB_TORCH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
#endif
}

}  // namespace dreambooth::diffusion
