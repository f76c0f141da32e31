// ResolveDevice: the one parser of --device values, and its refusal of devices this machine lacks.
#include "worker/diffusion/device.h"

#include <gtest/gtest.h>
#include <torch/cuda.h>

namespace dreambooth::diffusion {
namespace {

TEST(DeviceTest, CpuIsAlwaysThere) {
  absl::StatusOr<c10::Device> device = ResolveDevice("cpu");
  ASSERT_TRUE(device.ok()) << device.status();
  EXPECT_TRUE(device->is_cpu());
  const DeviceInfo info = DescribeDevice(*device);
  EXPECT_EQ(info.name, "cpu");
  EXPECT_GT(info.total_bytes, 0);
  EXPECT_GT(info.free_bytes, 0);
  EXPECT_LE(info.free_bytes, info.total_bytes);
  EXPECT_FALSE(info.description.empty());
}

TEST(DeviceTest, MalformedNamesAreInvalidArguments) {
  for (const char* name :
       {"", "gpu", "CPU", "cuda:", "cuda:-1", "cuda:x", "cuda0", "cuda:1:2", "cuda:999", "mps"}) {
    absl::StatusOr<c10::Device> device = ResolveDevice(name);
    ASSERT_FALSE(device.ok()) << name;
    EXPECT_EQ(device.status().code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_NE(device.status().message().find("expected cpu, cuda or cuda:N"), std::string::npos)
        << device.status();
  }
}

TEST(DeviceTest, CudaResolvesOnlyWhereADeviceExists) {
  const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
  absl::StatusOr<c10::Device> device = ResolveDevice("cuda");
  if (count == 0) {
    ASSERT_FALSE(device.ok());
    EXPECT_EQ(device.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(device.status().message().find("no usable CUDA device"), std::string::npos)
        << device.status();
  } else {
    ASSERT_TRUE(device.ok()) << device.status();
    EXPECT_EQ(*device, c10::Device(c10::kCUDA, 0));
    const DeviceInfo info = DescribeDevice(*device);
    EXPECT_EQ(info.name, "cuda:0");
    EXPECT_GT(info.total_bytes, 0);
    EXPECT_GT(info.free_bytes, 0);
  }
  // One past the last device is refused with the count.
  absl::StatusOr<c10::Device> past = ResolveDevice("cuda:" + std::to_string(count));
  ASSERT_FALSE(past.ok());
  EXPECT_EQ(past.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ListDevices().size(), static_cast<size_t>(count + 1));
}

TEST(DeviceTest, DtypesParseAndInferenceDefaultsFollowTheDevice) {
  EXPECT_EQ(*ParseDtype("fp32"), c10::kFloat);
  EXPECT_EQ(*ParseDtype("bfloat16"), c10::kBFloat16);
  EXPECT_EQ(*ParseDtype("fp16"), c10::kHalf);
  absl::StatusOr<c10::ScalarType> bad = ParseDtype("int8");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("'int8'"), std::string::npos) << bad.status();

  const c10::Device cpu(c10::kCPU), cuda(c10::kCUDA, 0);
  EXPECT_EQ(*ResolveInferenceDtype("auto", cpu), c10::kFloat);
  EXPECT_EQ(*ResolveInferenceDtype("auto", cuda), c10::kHalf);
  EXPECT_EQ(*ResolveInferenceDtype("bf16", cpu), c10::kBFloat16);
  absl::StatusOr<c10::ScalarType> half_on_cpu = ResolveInferenceDtype("fp16", cpu);
  ASSERT_FALSE(half_on_cpu.ok());
  EXPECT_NE(half_on_cpu.status().message().find("needs a CUDA device"), std::string::npos);
}

}  // namespace
}  // namespace dreambooth::diffusion
