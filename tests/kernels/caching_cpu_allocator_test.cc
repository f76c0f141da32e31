// The caching CPU allocator (installed by the test main): freed blocks are reused, contents and
// alignment are what tensors need, and cached memory can be released.
#include "kernels/caching_cpu_allocator.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace dreambooth::kernels {
namespace {

// db_torch_gtest_main installs it unless DB_CPU_ALLOCATOR=system asks for LibTorch's own.
TEST(CachingCpuAllocator, IsInstalledByTheTestMain) {
  const char* mode = std::getenv("DB_CPU_ALLOCATOR");
  const bool system = mode != nullptr && std::string(mode) == "system";
  EXPECT_EQ(CachingCpuAllocatorActive(), !system);
  EXPECT_EQ(InstallCachingCpuAllocator(), !system);  // idempotent
}

TEST(CachingCpuAllocator, ReusesAFreedLargeBlock) {
  ReleaseCachedCpuMemory();
  const void* first = nullptr;
  {
    at::Tensor t = at::empty({1 << 20}, at::kFloat);  // 4 MiB
    first = t.data_ptr();
  }
  const CpuAllocatorStats before = GetCpuAllocatorStats();
  EXPECT_GE(before.cached_bytes, size_t{4} << 20);
  at::Tensor again = at::empty({1 << 20}, at::kFloat);
  EXPECT_EQ(again.data_ptr(), first);
  const CpuAllocatorStats after = GetCpuAllocatorStats();
  EXPECT_EQ(after.hits, before.hits + 1);
  EXPECT_EQ(after.cached_bytes, before.cached_bytes - (size_t{4} << 20));
}

TEST(CachingCpuAllocator, NearbySizesShareASizeClass) {
  ReleaseCachedCpuMemory();
  const void* first = nullptr;
  {
    at::Tensor t = at::empty({1000000}, at::kFloat);
    first = t.data_ptr();
  }
  at::Tensor close = at::empty({1000100}, at::kFloat);  // same 1/8-power-of-two class
  EXPECT_EQ(close.data_ptr(), first);
}

TEST(CachingCpuAllocator, BlocksAreAlignedAndHoldTheirValues) {
  for (int64_t n : {0, 1, 7, 1000, 70000, 300000, 5000000}) {
    at::Tensor t = at::arange(n, at::kDouble);  // exact sums
    if (n > 0) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data_ptr()) % 64, 0u) << n;
      EXPECT_EQ(t[n - 1].item<double>(), static_cast<double>(n - 1)) << n;
      EXPECT_EQ(t.sum().item<double>(), static_cast<double>(n) * (n - 1) / 2) << n;
    }
  }
}

TEST(CachingCpuAllocator, ReleaseEmptiesTheCache) {
  { at::Tensor t = at::empty({1 << 21}, at::kFloat); }
  EXPECT_GT(GetCpuAllocatorStats().cached_bytes, 0u);
  ReleaseCachedCpuMemory();
  EXPECT_EQ(GetCpuAllocatorStats().cached_bytes, 0u);
}

TEST(CachingCpuAllocator, LiveBlocksAreCounted) {
  ReleaseCachedCpuMemory();
  const size_t base = GetCpuAllocatorStats().allocated_bytes;
  at::Tensor t = at::empty({1 << 20}, at::kFloat);
  EXPECT_EQ(GetCpuAllocatorStats().allocated_bytes, base + (size_t{4} << 20));
  t.reset();
  EXPECT_EQ(GetCpuAllocatorStats().allocated_bytes, base);
}

}  // namespace
}  // namespace dreambooth::kernels
