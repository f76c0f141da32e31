#include "worker/train/class_images.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/crypto.h"
#include "common/image/image.h"
#include "common/status_macros.h"
#include "worker/diffusion/pipelines/pipeline.h"
#include "worker/train/file_util.h"
#include "worker/train/precision.h"

namespace dreambooth::train {
namespace fs = std::filesystem;
namespace {

nlohmann::json KeyJson(const std::string& model_digest, const ClassImageOptions& o) {
  nlohmann::json key{{"model_digest", model_digest},
                     {"prompt", o.prompt},
                     {"negative_prompt", o.sampler.negative_prompt},
                     {"resolution", o.resolution},
                     {"scheduler", o.sampler.scheduler},
                     {"num_inference_steps", o.sampler.num_inference_steps},
                     {"guidance_scale", o.sampler.guidance_scale},
                     {"eta", o.sampler.eta},
                     {"batch_size", o.batch_size}};
  // Only a reduced precision is named, so float32 stores keep the keys they always had.
  if (o.precision != MixedPrecision::kNo) key["precision"] = MixedPrecisionName(o.precision);
  return key;
}

// The sampling seed of batch 0: the first 60 bits of the store key, so that every job with the
// same key (whatever its own training seed) generates the same images.
uint64_t StoreSeed(const std::string& store_key) {
  return std::stoull(store_key.substr(0, 15), nullptr, 16);
}

std::string ImagePath(const std::string& store_dir, int index) {
  return (fs::path(store_dir) / absl::StrFormat("%06d.png", index)).string();
}

absl::Status WritePng(const at::Tensor& hwc_uint8, const std::string& path) {
  at::Tensor t = hwc_uint8.contiguous();
  image::Image img;
  img.height = static_cast<int>(t.size(0));
  img.width = static_cast<int>(t.size(1));
  img.rgb.assign(t.data_ptr<uint8_t>(), t.data_ptr<uint8_t>() + t.numel());
  ASSIGN_OR_RETURN(std::string png, image::EncodePng(img));
  return WriteFileAtomic(path, png);
}

}  // namespace

ClassImageOptions ClassImageOptionsFor(const TrainOptions& options) {
  ClassImageOptions co;
  co.class_dir = options.class_dir;
  co.store_root = options.ClassCacheDir();
  co.prompt = options.class_prompt;
  co.num_images = options.num_class_images;
  co.batch_size = options.num_images_per_prompt;
  co.resolution = options.resolution;
  co.sampler = options.class_sampler;
  co.precision = options.mixed_precision;
  if (options.shard_preparation) {
    co.shard = options.PreparationShard();
    co.num_shards = options.PreparationShards();
    co.shard_wait_ms = options.collective_timeout_ms;
  }
  return co;
}

std::string ClassImageStoreKey(const std::string& model_digest, const ClassImageOptions& o) {
  return Sha256Hex(KeyJson(model_digest, o).dump());
}

absl::StatusOr<ClassImageSet> PrepareClassImages(diffusion::StableDiffusion& model,
                                                 const ClassImageOptions& o,
                                                 const ClassImageProgress& progress) {
  if (o.num_images < 1) return absl::InvalidArgumentError("num_class_images must be >= 1");
  if (o.batch_size < 1) return absl::InvalidArgumentError("num_images_per_prompt must be >= 1");
  ClassImageSet set;
  std::error_code ec;
  if (!o.class_dir.empty() && fs::exists(o.class_dir, ec)) {
    ASSIGN_OR_RETURN(std::vector<std::string> user, ListImageFiles(o.class_dir));
    if (static_cast<int>(user.size()) > o.num_images) user.resize(o.num_images);
    set.paths = user;
    set.user_images = static_cast<int>(user.size());
  }
  const int needed = o.num_images - set.user_images;
  if (needed <= 0) return set;
  if (o.prompt.empty()) {
    return absl::InvalidArgumentError("class_prompt is required to generate class images");
  }

  const std::string store_key = ClassImageStoreKey(model.digest, o);
  const uint64_t seed = StoreSeed(store_key);
  set.store_dir = (fs::path(o.store_root) / store_key).string();
  fs::create_directories(set.store_dir, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot create ", set.store_dir, ": ", ec.message()));
  }
  const std::string key_file = (fs::path(set.store_dir) / "key.json").string();
  if (!fs::exists(key_file, ec)) {
    RETURN_IF_ERROR(WriteFileAtomic(key_file, KeyJson(model.digest, o).dump(2) + "\n"));
  }

  auto present = [&](int i) { return fs::is_regular_file(ImagePath(set.store_dir, i), ec); };
  int done = 0;
  for (int i = 0; i < needed; ++i) done += present(i) ? 1 : 0;
  set.reused = done;
  const int num_batches = (needed + o.batch_size - 1) / o.batch_size;
  for (int b = 0; b < num_batches; ++b) {
    const int first = b * o.batch_size;
    const int count = std::min(o.batch_size, needed - first);
    bool complete = true;
    for (int i = first; i < first + count; ++i) complete = complete && present(i);
    if (complete || b % o.num_shards != o.shard) continue;

    diffusion::Text2ImageOptions t2i;
    t2i.prompts = {o.prompt};
    t2i.negative_prompts = {o.sampler.negative_prompt};
    t2i.steps = o.sampler.num_inference_steps;
    t2i.guidance = o.sampler.guidance_scale;
    t2i.scheduler = o.sampler.scheduler;
    t2i.eta = o.sampler.eta;
    t2i.seed = seed + static_cast<uint64_t>(b);
    t2i.width = o.resolution;
    t2i.height = o.resolution;
    t2i.num_images_per_prompt = count;
    at::NoGradGuard no_grad;
    AutocastScope autocast(o.precision != MixedPrecision::kNo,
                           model.unet->parameters().front().device().type(),
                           ComputeDtype(o.precision));
    absl::StatusOr<diffusion::Text2ImageResult> result = diffusion::Text2Image(model, t2i);
    if (!result.ok()) {
      return absl::Status(result.status().code(),
                          absl::StrCat("class-image generation: ", result.status().message()));
    }
    for (int k = 0; k < count; ++k) {
      const int index = first + k;
      if (present(index)) continue;
      RETURN_IF_ERROR(WritePng(result->images[k], ImagePath(set.store_dir, index)));
      ++set.generated;
      ++done;
    }
    if (progress && !progress(done, needed)) {
      return absl::CancelledError(
          absl::StrCat("class-image generation cancelled after ", done, " of ", needed));
    }
  }
  // The other ranks' batches.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(o.shard_wait_ms);
  for (int i = 0; i < needed; ++i) {
    while (!present(i)) {
      if (progress && !progress(done, needed)) {
        return absl::CancelledError(
            "class-image generation cancelled while waiting for other ranks");
      }
      if (std::chrono::steady_clock::now() > deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat("class image ", i, " (batch ", i / o.batch_size, ", generated by rank ",
                         (i / o.batch_size) % o.num_shards, ") did not appear in ", set.store_dir,
                         " within ", o.shard_wait_ms, " ms"));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    set.paths.push_back(ImagePath(set.store_dir, i));
  }
  return set;
}

}  // namespace dreambooth::train
