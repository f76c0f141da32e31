#include "worker/train/dreambooth_trainer.h"

#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include <filesystem>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/status_macros.h"
#include "worker/diffusion/device.h"
#include "worker/diffusion/tokenizer/clip_tokenizer_batch.h"
#include "worker/diffusion/torch_status.h"
#include "worker/train/cache_sync.h"
#include "worker/train/file_util.h"
#include "worker/train/latent_cache.h"
#include "worker/train/precision.h"
#include "worker/train/training_loop.h"

namespace dreambooth::train {
namespace fs = std::filesystem;

DreamBoothTrainer::DreamBoothTrainer(TrainOptions options, diffusion::StableDiffusion model,
                                     TrainCallbacks callbacks)
    : options_(std::move(options)), model_(std::move(model)), callbacks_(std::move(callbacks)) {}

DreamBoothTrainer::~DreamBoothTrainer() = default;

absl::StatusOr<std::unique_ptr<DreamBoothTrainer>> DreamBoothTrainer::Create(
    const TrainOptions& options, TrainCallbacks callbacks) {
  RETURN_IF_ERROR(ValidateTrainOptions(options));
  ASSIGN_OR_RETURN(at::Device device, diffusion::ResolveDevice(options.device));
  diffusion::LoadOptions load;
  load.device = device;
  load.dtype = at::kFloat;  // master weights stay float32; autocast handles mixed precision
  load.variant = options.base_model_variant;
  if (callbacks.on_progress) {
    TrainProgress p;
    p.message = absl::StrCat("loading base model ", options.base_model);
    callbacks.on_progress(p);
  }
  ASSIGN_OR_RETURN(diffusion::StableDiffusion model,
                   diffusion::LoadStableDiffusion(options.base_model, load));
  return Create(options, std::move(model), std::move(callbacks));
}

absl::StatusOr<std::unique_ptr<DreamBoothTrainer>> DreamBoothTrainer::Create(
    const TrainOptions& options, diffusion::StableDiffusion model, TrainCallbacks callbacks) {
  RETURN_IF_ERROR(ValidateTrainOptions(options));
  std::unique_ptr<DreamBoothTrainer> trainer(
      new DreamBoothTrainer(options, std::move(model), std::move(callbacks)));
  RETURN_IF_ERROR(trainer->Init());
  return trainer;
}

absl::Status DreamBoothTrainer::Init() {
  ASSIGN_OR_RETURN(device_, diffusion::ResolveDevice(options_.device));
  if (options_.mixed_precision == MixedPrecision::kFp16 && !device_.is_cuda()) {
    return absl::InvalidArgumentError(
        "mixed_precision fp16 needs a CUDA device (use bf16 or no on CPU)");
  }
  if (options_.num_threads > 0) at::set_num_threads(options_.num_threads);
  const int64_t factor = model_.vae->downscale_factor();
  if (options_.resolution % factor != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("resolution must be a multiple of the VAE's downscale factor ", factor,
                     ", got ", options_.resolution));
  }
  absl::StatusOr<std::vector<ImageRecord>> instances = ScanImageFolder(
      options_.instance_dir, options_.instance_prompt, &warnings_, options_.verified_image_digests);
  if (!instances.ok()) {
    return absl::Status(instances.status().code(),
                        absl::StrCat("instance_dir: ", instances.status().message()));
  }
  instances_ = std::move(*instances);
  if (options_.mode == TrainingMode::kTextToImage) {
    for (const ImageRecord& r : instances_) {
      if (r.captioned) continue;
      return absl::InvalidArgumentError(absl::StrCat(
          "text-to-image mode needs a caption for every image: ", r.path, " has no non-empty ",
          fs::path(r.path).replace_extension(".txt").filename().string()));
    }
  }
  for (const std::string& w : warnings_) {
    if (callbacks_.on_warning) callbacks_.on_warning(w);
  }
  // Prompts over 77 tokens are truncated, as diffusers does; say so once per prompt.
  std::vector<std::string> prompts;
  for (const ImageRecord& r : instances_) prompts.push_back(r.prompt);
  if (options_.with_prior_preservation) prompts.push_back(options_.class_prompt);
  for (const std::string& p : options_.validation_prompts) prompts.push_back(p);
  std::map<std::string, bool> seen;
  for (const std::string& p : prompts) {
    if (seen[p]) continue;
    seen[p] = true;
    bool truncated = false;
    model_.tokenizer.Encode(p, &truncated);
    if (truncated) {
      Warn(absl::StrCat("prompt longer than 77 CLIP tokens was truncated: \"", p.substr(0, 80),
                        p.size() > 80 ? "...\"" : "\""));
    }
  }
  // With LoRA every base weight is frozen; only the (float32) adapters train.
  ASSIGN_OR_RETURN(frozen_,
                   FrozenModules::Cast(model_, ComputeDtype(options_.mixed_precision),
                                       !options_.train_text_encoder || options_.lora.enabled,
                                       options_.lora.enabled));
  // The digest covers the weights' dtype, so cached posteriors of a bf16 VAE never stand in for
  // float32 ones.
  vae_digest_ = ModuleDigest(*model_.vae);
  PosteriorSource::Options po;
  po.resolution = options_.resolution;
  po.center_crop = options_.center_crop;
  po.random_flip = options_.random_flip;
  po.use_cache = options_.use_cached_latents;
  po.cache_dir = options_.LatentCacheDir();
  po.device = device_;
  po.dtype = frozen_.dtype();
  if (options_.shard_preparation) {
    po.shard = options_.PreparationShard();
    po.num_shards = options_.PreparationShards();
    po.shard_wait_ms = options_.collective_timeout_ms;
  }
  posteriors_ = std::make_unique<PosteriorSource>(model_.vae, vae_digest_, po);
  return absl::OkStatus();
}

void DreamBoothTrainer::Warn(const std::string& message) {
  warnings_.push_back(message);
  if (callbacks_.on_warning) callbacks_.on_warning(message);
}

void DreamBoothTrainer::Report(const TrainProgress& progress) {
  if (callbacks_.on_progress) callbacks_.on_progress(progress);
}

bool DreamBoothTrainer::Cancelled() const {
  return callbacks_.cancel != nullptr && callbacks_.cancel->load();
}

absl::StatusOr<ClassImageSet> DreamBoothTrainer::GenerateClassImages() {
  if (class_stage_done_ || !options_.with_prior_preservation) {
    class_stage_done_ = true;
    return class_set_;
  }
  const ClassImageOptions co = ClassImageOptionsFor(options_);
  TrainProgress p;
  p.stage = TrainStage::kGeneratingClassImages;
  p.total = options_.num_class_images;
  Report(p);
  // With a cache sync, images another machine generated under the same key come first.
  const std::string store_key = ClassImageStoreKey(model_.digest, co);
  const std::string store_dir = (fs::path(co.store_root) / store_key).string();
  CacheSyncCounts pulled;
  if (callbacks_.cache_sync != nullptr) {
    ASSIGN_OR_RETURN(pulled, callbacks_.cache_sync->PullClassImages(store_key, store_dir));
  }
  ASSIGN_OR_RETURN(class_set_, PrepareClassImages(model_, co, [&](int done, int total) {
                     TrainProgress q;
                     q.stage = TrainStage::kGeneratingClassImages;
                     q.step = done;
                     q.total = total;
                     q.peak_rss_bytes = PeakRssBytes();
                     Report(q);
                     return !Cancelled();
                   }));
  class_set_.downloaded = pulled.downloaded;
  if (callbacks_.cache_sync != nullptr) {
    ASSIGN_OR_RETURN(CacheSyncCounts pushed,
                     callbacks_.cache_sync->PushClassImages(store_key, store_dir));
    class_set_.uploaded = pushed.uploaded;
  }
  classes_.clear();
  for (const std::string& path : class_set_.paths) {
    ImageRecord r;
    r.path = path;
    if (auto known = options_.verified_image_digests.find(path);
        known != options_.verified_image_digests.end()) {
      r.digest = known->second;
    } else {
      ASSIGN_OR_RETURN(r.digest, Sha256File(path));
    }
    r.prompt = options_.class_prompt;
    classes_.push_back(std::move(r));
  }
  class_stage_done_ = true;
  return class_set_;
}

absl::StatusOr<LatentCacheStats> DreamBoothTrainer::PrepareLatents() {
  if (latent_stage_done_) return cache_stats_;
  RETURN_IF_ERROR(GenerateClassImages().status());
  std::vector<ImageRecord> all = instances_;
  all.insert(all.end(), classes_.begin(), classes_.end());
  if (options_.use_cached_latents) {
    TrainProgress p;
    p.stage = TrainStage::kCachingLatents;
    p.total = static_cast<int64_t>(all.size()) * (options_.random_flip ? 2 : 1);
    Report(p);
  }
  // With a cache sync, posteriors another machine encoded under the same keys come first.
  std::vector<LatentCacheKey> keys;
  CacheSyncCounts pulled;
  if (options_.use_cached_latents && callbacks_.cache_sync != nullptr) {
    keys = posteriors_->KeysFor(all);
    ASSIGN_OR_RETURN(pulled, callbacks_.cache_sync->PullLatents(posteriors_->cache(), keys));
  }
  ASSIGN_OR_RETURN(cache_stats_, posteriors_->Prepare(all, [&](int done, int total) {
    TrainProgress q;
    q.stage = TrainStage::kCachingLatents;
    q.step = done;
    q.total = total;
    q.peak_rss_bytes = PeakRssBytes();
    Report(q);
    return !Cancelled();
  }));
  cache_stats_.downloaded = pulled.downloaded;
  if (!keys.empty()) {
    ASSIGN_OR_RETURN(CacheSyncCounts pushed,
                     callbacks_.cache_sync->PushLatents(posteriors_->cache(), keys));
    cache_stats_.uploaded = pushed.uploaded;
  }
  latent_stage_done_ = true;
  return cache_stats_;
}

absl::StatusOr<at::Tensor> DreamBoothTrainer::PromptEmbeddings(const std::string& prompt) {
  // With precompute_text_embeddings the frozen encoder runs once per distinct prompt; without
  // it, every step (NeMo's behaviour). Either way no graph is kept.
  static constexpr size_t kMaxCached = 4096;
  auto& cache = prompt_cache_;
  if (options_.precompute_text_embeddings) {
    auto it = cache.find(prompt);
    if (it != cache.end()) return it->second;
  }
  return GuardTorch("text encoder", [&]() -> absl::StatusOr<at::Tensor> {
    at::NoGradGuard no_grad;
    at::Tensor ids = EncodeClipBatch(model_.tokenizer, {prompt}).to(device_);
    at::Tensor e = model_.text_encoder->forward(ids).last_hidden_state[0];
    if (options_.precompute_text_embeddings && cache.size() < kMaxCached) cache[prompt] = e;
    return e;
  });
}

absl::StatusOr<TrainResult> DreamBoothTrainer::Train() {
  RETURN_IF_ERROR(PrepareLatents().status());
  std::error_code ec;
  fs::create_directories(options_.output_dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create output_dir ", options_.output_dir, ": ", ec.message()));
  }
  if (!options_.train_text_encoder) model_.text_encoder->eval();
  internal::LoopContext ctx{options_,
                            model_,
                            callbacks_,
                            device_,
                            instances_,
                            classes_,
                            *posteriors_,
                            frozen_,
                            [this](const std::string& p) { return PromptEmbeddings(p); },
                            [this](const TrainProgress& p) { Report(p); }};
  ASSIGN_OR_RETURN(TrainResult result, internal::RunTrainingLoop(ctx));
  result.class_images = class_set_;
  result.latent_cache = cache_stats_;
  return result;
}

}  // namespace dreambooth::train
