// gtest main for LibTorch suites: installs the caching CPU allocator the binaries use, so tests
// exercise the same allocator (and run as fast) as dbtool and dreambooth-worker.
#include <gtest/gtest.h>

#include "kernels/caching_cpu_allocator.h"

int main(int argc, char** argv) {
  dreambooth::kernels::InstallCachingCpuAllocator();
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
