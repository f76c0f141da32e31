// Loaded models kept for sampling: an LRU cache of StableDiffusion instances (base models and
// job checkpoints) bounded by the bytes of their weights, so repeated Sample calls on the same
// checkpoint skip loading.
#ifndef DREAMBOOTH_WORKER_MODEL_CACHE_H_
#define DREAMBOOTH_WORKER_MODEL_CACHE_H_

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
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
                                                                        bool* hit = nullptr);
  // Keys, most recently used first.
  std::vector<std::string> Keys() const;
  int64_t bytes() const;

  // Bytes of a model's parameters and buffers.
  static int64_t ModelBytes(const diffusion::StableDiffusion& model);

 private:
  struct Entry {
    std::string key;
    std::shared_ptr<diffusion::StableDiffusion> model;
    int64_t bytes = 0;
  };
  void EvictLocked();

  const int64_t budget_bytes_;
  mutable std::mutex mu_;
  std::list<Entry> entries_;  // guarded by mu_; most recently used first
  int64_t bytes_ = 0;         // guarded by mu_
};

}  // namespace dreambooth::worker

#endif  // DREAMBOOTH_WORKER_MODEL_CACHE_H_
