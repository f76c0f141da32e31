#include "worker/train/training_data.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <chrono>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/diffusion/torch_status.h"

namespace dreambooth::train {
namespace {

// SplitMix64: decorrelates seeds derived from (seed, position, salt).
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t DeriveSeed(uint64_t seed, uint64_t a, uint64_t salt) {
  return Mix(Mix(seed ^ Mix(salt)) ^ a);
}

}  // namespace

SampleStream::SampleStream(int num_instances, int num_classes, bool random_flip, uint64_t seed,
                           double caption_dropout)
    : num_instances_(num_instances),
      num_classes_(num_classes),
      random_flip_(random_flip),
      seed_(seed),
      caption_dropout_(caption_dropout),
      epoch_length_(std::max(num_instances, num_classes)) {}

SampleStream::Draw SampleStream::At(int64_t position) const {
  const int64_t epoch = position / epoch_length_;
  const int64_t k = position % epoch_length_;
  at::Generator perm_gen = at::detail::createCPUGenerator(DeriveSeed(seed_, epoch, 1));
  // randperm of the epoch; regenerated per call (epochs are short: at most num_class_images).
  const int64_t idx = at::randperm(epoch_length_, perm_gen, at::TensorOptions().dtype(at::kLong))[k]
                          .item<int64_t>();
  Draw d;
  d.instance = static_cast<int>(idx % num_instances_);
  if (num_classes_ > 0) d.klass = static_cast<int>(idx % num_classes_);
  const uint64_t draw_seed = DeriveSeed(seed_, position, 2);
  if (random_flip_) {
    d.instance_flip = (Mix(draw_seed ^ 1) & 1) != 0;  // p = 0.5, like RandomHorizontalFlip
    d.class_flip = (Mix(draw_seed ^ 2) & 1) != 0;
  }
  d.instance_crop_seed = Mix(draw_seed ^ 3);
  d.class_crop_seed = Mix(draw_seed ^ 4);
  if (caption_dropout_ > 0) {
    // The top 53 bits as a uniform double in [0, 1).
    d.drop_caption = static_cast<double>(Mix(draw_seed ^ 5) >> 11) * 0x1.0p-53 < caption_dropout_;
  }
  return d;
}

PosteriorSource::PosteriorSource(diffusion::AutoencoderKL vae, std::string vae_digest,
                                 Options options)
    : vae_(std::move(vae)),
      vae_digest_(std::move(vae_digest)),
      options_(std::move(options)),
      cache_(options_.cache_dir) {}

LatentCacheKey PosteriorSource::KeyFor(const ImageRecord& image, bool flip) const {
  LatentCacheKey key;
  key.vae_digest = vae_digest_;
  key.image_digest = image.digest;
  key.resolution = options_.resolution;
  key.crop = options_.center_crop ? "center" : "random";
  key.flip = flip;
  return key;
}

Posterior PosteriorSource::ToHost(const CachedPosterior& p) const {
  // std is derived from the stored log-variance in one place, so cached and online encoding
  // give identical numbers.
  Posterior host{p.mean.to(at::kCPU, at::kFloat), at::exp(0.5 * p.logvar.to(at::kCPU, at::kFloat))};
  if (options_.device.is_cuda()) {
    host.mean = host.mean.pin_memory();
    host.std = host.std.pin_memory();
  }
  return host;
}

Posterior PosteriorSource::ToDevice(const Posterior& host) const {
  return Posterior{host.mean.to(options_.device, /*non_blocking=*/true),
                   host.std.to(options_.device, /*non_blocking=*/true)};
}

absl::StatusOr<CachedPosterior> PosteriorSource::Encode(const ImageRecord& image, bool flip,
                                                        uint64_t crop_seed) {
  at::Generator crop_gen = at::detail::createCPUGenerator(crop_seed);
  CropSpec crop{options_.center_crop, &crop_gen};
  ASSIGN_OR_RETURN(at::Tensor pixels,
                   LoadTrainingImage(image.path, options_.resolution, crop, flip));
  return GuardTorch(absl::StrCat("VAE encode of ", image.path),
                    [&]() -> absl::StatusOr<CachedPosterior> {
                      at::NoGradGuard no_grad;
                      at::Tensor x = pixels.unsqueeze(0).to(options_.device, options_.dtype);
                      diffusion::LatentDistribution dist = vae_->Encode(x);
                      return CachedPosterior{dist.mean[0].to(at::kCPU, at::kFloat),
                                             dist.logvar[0].to(at::kCPU, at::kFloat)};
                    });
}

std::vector<LatentCacheKey> PosteriorSource::KeysFor(const std::vector<ImageRecord>& images) const {
  std::vector<LatentCacheKey> keys;
  for (const ImageRecord& image : images) {
    keys.push_back(KeyFor(image, false));
    if (options_.random_flip) keys.push_back(KeyFor(image, true));
  }
  return keys;
}

absl::StatusOr<LatentCacheStats> PosteriorSource::Prepare(
    const std::vector<ImageRecord>& images, const std::function<bool(int, int)>& progress) {
  LatentCacheStats stats;
  if (!options_.use_cache) return stats;
  std::vector<std::pair<const ImageRecord*, bool>> entries;  // (image, flip), in a fixed order
  for (const ImageRecord& image : images) {
    entries.emplace_back(&image, false);
    if (options_.random_flip) entries.emplace_back(&image, true);
  }
  const int total = static_cast<int>(entries.size());
  int done = 0;
  const auto cancelled = [&] {
    return absl::CancelledError(
        absl::StrCat("latent caching cancelled after ", done, " of ", total, " images"));
  };
  vae_->eval();
  // This rank's entries first (all of them without shards), then the other ranks'.
  for (int pass = 0; pass < 2; ++pass) {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.shard_wait_ms);
    for (int k = 0; k < total; ++k) {
      const bool mine = k % options_.num_shards == options_.shard;
      if (mine != (pass == 0)) continue;
      const auto& [image, flip] = entries[k];
      const auto mem_key = std::make_pair(image->digest, flip);
      if (memory_.count(mem_key) == 0) {
        const LatentCacheKey key = KeyFor(*image, flip);
        absl::StatusOr<CachedPosterior> hit = cache_.Lookup(key);
        while (!hit.ok() && !mine) {  // another rank encodes it
          if (progress && !progress(done, total)) return cancelled();
          if (std::chrono::steady_clock::now() > deadline) {
            return absl::DeadlineExceededError(absl::StrCat(
                "the latents of ", image->path, " (encoded by rank ", k % options_.num_shards,
                ") did not appear in ", cache_.dir(), " within ", options_.shard_wait_ms, " ms"));
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
          hit = cache_.Lookup(key);
        }
        if (hit.ok()) {
          ++stats.hits;
          memory_[mem_key] = ToHost(*hit);
        } else {
          ++stats.misses;
          ASSIGN_OR_RETURN(CachedPosterior p, Encode(*image, flip, 0));
          RETURN_IF_ERROR(cache_.Store(key, p));
          memory_[mem_key] = ToHost(p);
        }
      }
      ++done;
      if (progress && !progress(done, total)) return cancelled();
    }
  }
  return stats;
}

absl::StatusOr<Posterior> PosteriorSource::Get(const ImageRecord& image, bool flip,
                                               uint64_t crop_seed) {
  if (!options_.use_cache) {
    ASSIGN_OR_RETURN(CachedPosterior p, Encode(image, flip, crop_seed));
    return ToDevice(ToHost(p));
  }
  auto it = memory_.find(std::make_pair(image.digest, flip));
  if (it == memory_.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("latents of ", image.path, " were not prepared (run the caching stage)"));
  }
  return ToDevice(it->second);
}

}  // namespace dreambooth::train
