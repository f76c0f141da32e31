// A content-addressed, on-disk cache of VAE posteriors (mean and log-variance, NeMo's cached
// "moments") keyed by (VAE digest, image digest, resolution, crop, flip). Training samples a
// fresh latent from the cached posterior every step, as online encoding would.
#ifndef DREAMBOOTH_WORKER_TRAIN_LATENT_CACHE_H_
#define DREAMBOOTH_WORKER_TRAIN_LATENT_CACHE_H_

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dreambooth::train {

struct LatentCacheKey {
  std::string vae_digest;    // ModuleDigest of the VAE
  std::string image_digest;  // SHA-256 of the image file
  int resolution = 0;
  std::string crop = "center";
  bool flip = false;

  // Canonical text form, e.g. "vae=..;image=..;resolution=512;crop=center;flip=0".
  std::string ToString() const;
};

// The cached posterior of one image: float32 CPU tensors [C, h, w].
struct CachedPosterior {
  at::Tensor mean;
  at::Tensor logvar;
};

// Files live at <dir>/<first 2 hex>/<sha256 of the key>.safetensors with the key in the
// metadata. Lookups verify the stored key, so a hash collision or a corrupt file is a miss.
// Thread-compatible: concurrent Store of the same key is safe (atomic file replacement);
// callers must not share one instance between threads without synchronization of the counters.
class LatentCache {
 public:
  explicit LatentCache(std::string dir) : dir_(std::move(dir)) {}

  // NOT_FOUND on a miss (no file, unreadable file, or a stored key different from `key`).
  absl::StatusOr<CachedPosterior> Lookup(const LatentCacheKey& key) const;
  // Stores (replaces) the entry atomically.
  absl::Status Store(const LatentCacheKey& key, const CachedPosterior& posterior) const;
  // The file an entry lives in.
  std::string PathFor(const LatentCacheKey& key) const;
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

// "sha256:<hex>" over the module's parameters and buffers (name, dtype, shape and bytes, in name
// order): equal weights give equal digests whatever their origin.
std::string ModuleDigest(const torch::nn::Module& module);

}  // namespace dreambooth::train

#endif  // DREAMBOOTH_WORKER_TRAIN_LATENT_CACHE_H_
