// What a training step consumes: the order in which instance and class images are drawn, their
// per-draw augmentation (random crop, flip), and the VAE posterior of each draw, either from the
// latent cache (encoded once, before training) or encoded online.
#ifndef DREAMBOOTH_WORKER_TRAIN_TRAINING_DATA_H_
#define DREAMBOOTH_WORKER_TRAIN_TRAINING_DATA_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/diffusion/models/autoencoder_kl.h"
#include "worker/train/image_dataset.h"
#include "worker/train/latent_cache.h"

namespace dreambooth::train {

// The sample stream, after diffusers' DreamBoothDataset + shuffling DataLoader: an epoch has
// max(#instances, #classes) positions visited in a random permutation; position k of an epoch
// holds instance perm[k] % #instances and class perm[k] % #classes. Everything drawn for flat
// position p (epoch = p / epoch_length) is a pure function of (seed, p), so resuming needs no
// data-loader state. Immutable after construction; thread-safe.
class SampleStream {
 public:
  struct Draw {
    int instance = 0;
    int klass = -1;  // -1 without class images
    bool instance_flip = false;
    bool class_flip = false;
    uint64_t instance_crop_seed = 0;  // seed of the random-crop generator
    uint64_t class_crop_seed = 0;
    bool drop_caption = false;  // train this instance draw with the empty prompt
  };

  // `caption_dropout`: probability that an instance draw is trained unconditionally (the empty
  // prompt), which classifier-free guidance needs when training from scratch.
  SampleStream(int num_instances, int num_classes, bool random_flip, uint64_t seed,
               double caption_dropout = 0.0);
  Draw At(int64_t position) const;
  int64_t epoch_length() const { return epoch_length_; }

 private:
  int num_instances_;
  int num_classes_;
  bool random_flip_;
  uint64_t seed_;
  double caption_dropout_;
  int64_t epoch_length_;
};

// A posterior over latents of one image: mean and std [C, h, w], float32.
struct Posterior {
  at::Tensor mean;
  at::Tensor std;
};

struct LatentCacheStats {
  int hits = 0;
  int misses = 0;      // encoded and stored (a mismatched entry counts as a miss)
  int downloaded = 0;  // entries the cache sync brought in before the lookups
  int uploaded = 0;    // entries the cache sync published afterwards
};

// Provides the posterior of an (image, flip) draw. Not thread-safe.
class PosteriorSource {
 public:
  struct Options {
    int resolution = 512;
    bool center_crop = true;
    bool random_flip = false;
    bool use_cache = true;
    std::string cache_dir;
    at::Device device = at::kCPU;
    at::ScalarType dtype = at::kFloat;  // the VAE's dtype
    // Ranks sharing the cache: this one encodes every num_shards-th entry (from `shard`) and
    // waits up to shard_wait_ms for the other ranks' entries.
    int shard = 0;
    int num_shards = 1;
    int64_t shard_wait_ms = 60'000;
  };

  PosteriorSource(diffusion::AutoencoderKL vae, std::string vae_digest, Options options);

  // Caching stage: looks up / encodes every image (both orientations with random_flip) and keeps
  // the posteriors in host memory (pinned when training on CUDA). `progress(done, total)` returning
  // false cancels (CANCELLED).
  absl::StatusOr<LatentCacheStats> Prepare(const std::vector<ImageRecord>& images,
                                           const std::function<bool(int, int)>& progress);

  // The posterior of `image` (flipped or not) on the training device, copied there without
  // blocking the host. With the cache, `image` must have been prepared;
  // otherwise the image is loaded, cropped (randomly from crop_seed when !center_crop) and
  // encoded now.
  absl::StatusOr<Posterior> Get(const ImageRecord& image, bool flip, uint64_t crop_seed);

  // The cache keys Prepare looks up for `images` (both orientations with random_flip).
  std::vector<LatentCacheKey> KeysFor(const std::vector<ImageRecord>& images) const;
  const LatentCache& cache() const { return cache_; }

 private:
  // The VAE posterior as float32 CPU tensors [C, h, w].
  absl::StatusOr<CachedPosterior> Encode(const ImageRecord& image, bool flip, uint64_t crop_seed);
  // mean and std on the host, pinned when the training device is CUDA.
  Posterior ToHost(const CachedPosterior& p) const;
  Posterior ToDevice(const Posterior& host) const;
  LatentCacheKey KeyFor(const ImageRecord& image, bool flip) const;

  diffusion::AutoencoderKL vae_;
  std::string vae_digest_;
  Options options_;
  LatentCache cache_;
  std::map<std::pair<std::string, bool>, Posterior> memory_;  // host; key (image digest, flip)
};

}  // namespace dreambooth::train

#endif  // DREAMBOOTH_WORKER_TRAIN_TRAINING_DATA_H_
