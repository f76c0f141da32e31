// The one LibTorch exception -> Status mapping: a real failed CPU allocation is
// RESOURCE_EXHAUSTED (whichever CPU allocator is installed), a failed check is INTERNAL, and the
// message is the context plus the exception's first line.
#include "worker/diffusion/torch_status.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/status/statusor.h"

namespace dreambooth {
namespace {

TEST(TorchStatusTest, AFailedCpuAllocationIsResourceExhausted) {
  absl::Status status = GuardTorch("sampling", []() -> absl::Status {
    at::Tensor huge = at::empty({int64_t{1} << 50}, at::kFloat);  // 4 PiB
    return absl::OkStatus();
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_EQ(status.message().rfind("sampling: ", 0), 0u) << status;
}

TEST(TorchStatusTest, AFailedCheckIsInternalWithoutABacktrace) {
  absl::StatusOr<at::Tensor> out = GuardTorch("UNet", []() -> absl::StatusOr<at::Tensor> {
    return at::matmul(at::ones({2, 3}), at::ones({4, 5}));
  });
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(out.status().message().rfind("UNet: ", 0), 0u) << out.status();
  EXPECT_EQ(out.status().message().find('\n'), std::string::npos) << out.status();
}

TEST(TorchStatusTest, TypedOutOfMemoryErrorsAreResourceExhausted) {
  const c10::OutOfMemoryError oom({"f", "file.cc", 1}, "allocator gave up");
  EXPECT_EQ(StatusFromException(oom, "x").code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace dreambooth
