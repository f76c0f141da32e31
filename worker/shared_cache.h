// Keeps a worker's local caches (class images, VAE latents) in step with the server's shared
// cache entries (WorkerGateway GetCacheEntry / PutCacheEntry + blobs), so a job on any worker
// reuses what an earlier job on any worker produced (docs/architecture.md, "Who owns what").
//
// Server keys:
//   classimg/v1/<train::ClassImageStoreKey>  items "<NNNNNN>.png" (the store folder's images)
//   latent/v1/<sha256 of LatentCacheKey::ToString()>  one item "posterior.safetensors"
#ifndef DREAMBOOTH_WORKER_SHARED_CACHE_H_
#define DREAMBOOTH_WORKER_SHARED_CACHE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/gateway_client.h"
#include "worker/train/cache_sync.h"
#include "worker/train/latent_cache.h"

namespace dreambooth::worker {

using SyncCounts = train::CacheSyncCounts;

// The trainer's cache sync over the server. Not thread-safe (one per task); `client` must outlive
// it. Writes need the task's lease token.
class SharedCache : public train::CacheSync {
 public:
  SharedCache(GatewayClient* client, std::string lease_token)
      : client_(client), lease_token_(std::move(lease_token)) {}

  // Copies the server entry's class images into `store_dir` (the folder
  // <class cache>/<store_key>) where they are missing.
  absl::StatusOr<SyncCounts> PullClassImages(const std::string& store_key,
                                             const std::string& store_dir) override;
  // Appends the PNGs of `store_dir` that the server entry lacks.
  absl::StatusOr<SyncCounts> PushClassImages(const std::string& store_key,
                                             const std::string& store_dir) override;

  // For every key whose file is missing from `cache`, downloads the server's copy if any.
  absl::StatusOr<SyncCounts> PullLatents(const train::LatentCache& cache,
                                         const std::vector<train::LatentCacheKey>& keys) override;
  // Uploads the local entries of `keys` that the server does not have.
  absl::StatusOr<SyncCounts> PushLatents(const train::LatentCache& cache,
                                         const std::vector<train::LatentCacheKey>& keys) override;

  static std::string ClassImageServerKey(const std::string& store_key);
  static std::string LatentServerKey(const train::LatentCacheKey& key);

 private:
  GatewayClient* const client_;
  const std::string lease_token_;
};

}  // namespace dreambooth::worker

#endif  // DREAMBOOTH_WORKER_SHARED_CACHE_H_
