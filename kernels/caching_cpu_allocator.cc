#include "kernels/caching_cpu_allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace dreambooth::kernels {
namespace {

constexpr size_t kAlignment = 64;              // what LibTorch's allocator guarantees
constexpr size_t kHeader = kAlignment;         // size record in front of each block
constexpr size_t kMinCachedBytes = 256 << 10;  // smaller blocks go straight to malloc
constexpr size_t kDefaultCacheLimitBytes = size_t{4096} << 20;

// Rounds a cached size up to a multiple of 1/8 of its highest power of two (<= 12.5% slack).
size_t RoundUp(size_t n) {
  if (n < kMinCachedBytes) return n;
  size_t top = size_t{1} << (63 - __builtin_clzll(n));
  const size_t step = top / 8;
  return (n + step - 1) / step * step;
}

size_t CacheLimitFromEnv() {
  const char* mb = std::getenv("DB_CPU_ALLOCATOR_CACHE_MB");
  if (mb == nullptr || *mb == '\0') return kDefaultCacheLimitBytes;
  return static_cast<size_t>(std::strtoull(mb, nullptr, 10)) << 20;
}

void* SystemAlloc(size_t bytes) {
  void* p = nullptr;
  if (posix_memalign(&p, kAlignment, bytes) != 0) return nullptr;
  return p;
}

class CachingCpuAllocator final : public c10::Allocator {
 public:
  CachingCpuAllocator() : limit_(CacheLimitFromEnv()) {}

  c10::DataPtr allocate(size_t n) override { return Allocate(n); }
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    std::memcpy(dest, src, count);
  }
  // raw_allocate()/raw_deallocate() (used by oneDNN) need data == context and this deleter.
  c10::DeleterFnPtr raw_deleter() const override { return &Free; }

  CpuAllocatorStats Stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

  void ReleaseAll() const {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [size, blocks] : free_) {
      for (void* b : blocks) std::free(b);
    }
    free_.clear();
    stats_.cached_bytes = 0;
  }

  static CachingCpuAllocator* Instance() {
    static auto* instance = new CachingCpuAllocator();  // never destroyed: tensors may outlive main
    return instance;
  }

 private:
  c10::DataPtr Allocate(size_t n) const {
    if (n == 0) return c10::DataPtr(nullptr, nullptr, &Free, c10::Device(c10::DeviceType::CPU));
    const size_t size = RoundUp(n);
    void* base = size >= kMinCachedBytes ? TakeCached(size) : nullptr;
    if (base == nullptr) {
      base = SystemAlloc(size + kHeader);
      if (base == nullptr && size >= kMinCachedBytes) {
        ReleaseAll();  // idle blocks of other sizes may be what is missing
        base = SystemAlloc(size + kHeader);
      }
      TORCH_CHECK(base != nullptr, "CPU allocator: out of memory allocating ", n, " bytes");
      if (size >= kMinCachedBytes) {
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.misses;
        stats_.allocated_bytes += size;
      }
    }
    std::memcpy(base, &size, sizeof(size));
    void* data = static_cast<char*>(base) + kHeader;
    return c10::DataPtr(data, data, &Free, c10::Device(c10::DeviceType::CPU));
  }

  void* TakeCached(size_t size) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.find(size);
    if (it == free_.end() || it->second.empty()) return nullptr;
    void* base = it->second.back();
    it->second.pop_back();
    stats_.cached_bytes -= size;
    stats_.allocated_bytes += size;
    ++stats_.hits;
    return base;
  }

  // Deleter: `data` is what Allocate returned; the size record sits kHeader bytes before it.
  static void Free(void* data) {
    if (data == nullptr) return;
    void* base = static_cast<char*>(data) - kHeader;
    size_t size = 0;
    std::memcpy(&size, base, sizeof(size));
    if (size < kMinCachedBytes) {
      std::free(base);
      return;
    }
    Instance()->Return(base, size);
  }

  void Return(void* base, size_t size) const {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.allocated_bytes -= size;
      if (stats_.cached_bytes + size <= limit_) {
        free_[size].push_back(base);
        stats_.cached_bytes += size;
        return;
      }
    }
    std::free(base);
  }

  const size_t limit_;
  // Deliberately a std::mutex, not absl::Mutex: Free() runs wherever a CPU tensor dies, on any
  // thread and at any time, inside LibTorch's and oneDNN's allocation paths, during thread
  // teardown and after main returns (the instance is never destroyed). A pthread mutex keeps no
  // per-thread state and has nothing to tear down; absl::Mutex's contended path relies on absl's
  // thread-local identity (and, in debug builds, on its deadlock graph), machinery an allocator's
  // free path should not depend on. libstdc++'s std::mutex carries no capability attribute, so
  // the two fields below keep their "guarded by" as comments, unchecked by -Wthread-safety.
  mutable std::mutex mu_;
  mutable std::map<size_t, std::vector<void*>> free_;  // guarded by mu_
  mutable CpuAllocatorStats stats_;                    // guarded by mu_
};

std::atomic<bool> g_installed{false};
std::once_flag g_install_once;

}  // namespace

bool InstallCachingCpuAllocator() {
  std::call_once(g_install_once, [] {
    const char* mode = std::getenv("DB_CPU_ALLOCATOR");
    if (mode != nullptr && std::string(mode) == "system") return;
    // Priority above the default registration (0) so a later default registration cannot undo it.
    c10::SetCPUAllocator(CachingCpuAllocator::Instance(), /*priority=*/10);
    g_installed = true;
  });
  return g_installed;
}

bool CachingCpuAllocatorActive() {
  return c10::GetCPUAllocator() == CachingCpuAllocator::Instance();
}

CpuAllocatorStats GetCpuAllocatorStats() {
  if (!g_installed) return {};
  return CachingCpuAllocator::Instance()->Stats();
}

void ReleaseCachedCpuMemory() {
  if (g_installed) CachingCpuAllocator::Instance()->ReleaseAll();
}

}  // namespace dreambooth::kernels
