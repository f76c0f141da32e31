// A caching allocator for CPU tensors, installed in place of LibTorch's default one.
//
// LibTorch's default CPU allocator returns every block to glibc, which serves blocks above its mmap
// threshold (at most 32 MiB) with a fresh mmap each time: every training step of a UNet then
// page-faults its activations and attention scores in again, which costs more than the arithmetic
// on a VM (measured: the tiny model's DreamBooth step went from 8.2 s to 0.5 s; see
// docs/benchmarks-train.md). This allocator keeps freed blocks of 256 KiB and more in per-size free
// lists (sizes rounded up to 1/8 of their power of two) and hands them out again, like PyTorch's
// CUDA caching allocator does for device memory. Smaller blocks go straight to malloc.
//
// Thread-safe. Set DB_CPU_ALLOCATOR=system to keep LibTorch's allocator (A/B measurements);
// DB_CPU_ALLOCATOR_CACHE_MB caps the idle bytes kept (default 4096).
#ifndef DREAMBOOTH_KERNELS_CACHING_CPU_ALLOCATOR_H_
#define DREAMBOOTH_KERNELS_CACHING_CPU_ALLOCATOR_H_

#include <cstddef>

namespace dreambooth::kernels {

// Makes the caching allocator LibTorch's CPU allocator, unless DB_CPU_ALLOCATOR=system. Idempotent;
// call it at the start of main(), before tensors are created (tensors allocated earlier are still
// freed correctly by their own allocator). Returns true when the caching allocator is active.
bool InstallCachingCpuAllocator();

// Counters of the caching allocator (all zero when it is not installed).
struct CpuAllocatorStats {
  size_t cached_bytes = 0;     // idle blocks held for reuse
  size_t allocated_bytes = 0;  // blocks currently owned by tensors (cached sizes only)
  size_t hits = 0;             // allocations served from the cache
  size_t misses = 0;           // allocations that went to the system
};
CpuAllocatorStats GetCpuAllocatorStats();

// Whether LibTorch's CPU allocator is the caching allocator now (without installing it).
bool CachingCpuAllocatorActive();

// Returns every idle cached block to the system (e.g. between jobs).
void ReleaseCachedCpuMemory();

}  // namespace dreambooth::kernels

#endif  // DREAMBOOTH_KERNELS_CACHING_CPU_ALLOCATOR_H_
