// Loaded models kept for sampling: an LRU cache of StableDiffusion instances (base models and
// job checkpoints) bounded by the bytes of their weights, so repeated Sample calls on the same
// checkpoint skip loading.
#ifndef DREAMBOOTH_WORKER_MODEL_CACHE_H_
#define DREAMBOOTH_WORKER_MODEL_CACHE_H_

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "worker/diffusion/io/model_loader.h"

namespace dreambooth::worker {

// Thread-safe. A model handed out stays alive while the caller holds it, even if evicted.
class ModelCache {
 public:
  using Loader = std::function<absl::StatusOr<diffusion::StableDiffusion>()>;

  // `budget_bytes`: total weight bytes kept (the newest model is kept even when it alone is
  // larger).
  explicit ModelCache(int64_t budget_bytes) : budget_bytes_(budget_bytes) {}

  // The model cached under `key`, or `loader()`'s result, which is then cached; least recently
  // used models are evicted to fit the budget. `hit` (optional) says whether it was cached.
  // Loading happens under the cache's lock (one load at a time).
  absl::StatusOr<std::shared_ptr<diffusion::StableDiffusion>> GetOrLoad(const std::string& key,
                                                                        const Loader& loader,
                                                                        bool* hit = nullptr)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Keys, most recently used first.
  std::vector<std::string> Keys() const ABSL_LOCKS_EXCLUDED(mu_);
  int64_t bytes() const ABSL_LOCKS_EXCLUDED(mu_);

  // Bytes of a model's parameters and buffers.
  static int64_t ModelBytes(const diffusion::StableDiffusion& model);

 private:
  struct Entry {
    std::string key;
    std::shared_ptr<diffusion::StableDiffusion> model;
    int64_t bytes = 0;
  };
  void EvictLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int64_t budget_bytes_;
  mutable absl::Mutex mu_;
  std::list<Entry> entries_ ABSL_GUARDED_BY(mu_);  // most recently used first
  int64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace dreambooth::worker

#endif  // DREAMBOOTH_WORKER_MODEL_CACHE_H_
