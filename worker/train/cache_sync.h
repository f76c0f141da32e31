// Sharing the trainer's caches beyond this machine. Before a stage computes, the trainer pulls
// entries it may reuse into its local cache; afterwards it pushes what it has, under the keys it
// owns (ClassImageStoreKey, LatentCacheKey). dreambooth-worker implements this over the server's
// shared cache (worker/shared_cache.h); without one the caches stay local.
#ifndef DREAMBOOTH_WORKER_TRAIN_CACHE_SYNC_H_
#define DREAMBOOTH_WORKER_TRAIN_CACHE_SYNC_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/train/latent_cache.h"

namespace dreambooth::train {

// Counts of one synchronisation.
struct CacheSyncCounts {
  int downloaded = 0;  // remote items copied into the local cache
  int uploaded = 0;    // local items added to the remote entry
  int local = 0;       // items already present locally
};

class CacheSync {
 public:
  virtual ~CacheSync() = default;
  // Copies the remote class images of `store_key` into `store_dir` where they are missing.
  virtual absl::StatusOr<CacheSyncCounts> PullClassImages(const std::string& store_key,
                                                          const std::string& store_dir) = 0;
  // Publishes the images of `store_dir` that the remote entry lacks.
  virtual absl::StatusOr<CacheSyncCounts> PushClassImages(const std::string& store_key,
                                                          const std::string& store_dir) = 0;
  // For every key whose file is missing from `cache`, downloads the remote copy if any.
  virtual absl::StatusOr<CacheSyncCounts> PullLatents(const LatentCache& cache,
                                                      const std::vector<LatentCacheKey>& keys) = 0;
  // Publishes the local entries of `keys` that the remote side does not have.
  virtual absl::StatusOr<CacheSyncCounts> PushLatents(const LatentCache& cache,
                                                      const std::vector<LatentCacheKey>& keys) = 0;
};

}  // namespace dreambooth::train

#endif  // DREAMBOOTH_WORKER_TRAIN_CACHE_SYNC_H_
