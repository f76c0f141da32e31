// The DreamBooth trainer: the public entry point of worker/train, used by the worker (issue 5)
// and by `dbtool train`. A run has stages the caller may drive one by one (to report them) or
// all at once with Run():
//   1. GenerateClassImages(): the regularization set (prior preservation only);
//   2. PrepareLatents(): the latent cache (use_cached_latents only) and prompt embeddings;
//   3. Train(): the optimizer steps, sampleable checkpoints, resume states, validation images,
//      and the final diffusers folder.
// Semantics follow NeMo's DreamBooth (defaults, class-image top-up, cached moments) and
// diffusers' train_dreambooth.py (loss, options); comments say where they differ.
#ifndef DREAMBOOTH_WORKER_TRAIN_DREAMBOOTH_TRAINER_H_
#define DREAMBOOTH_WORKER_TRAIN_DREAMBOOTH_TRAINER_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/train/class_images.h"
#include "worker/train/frozen_modules.h"
#include "worker/train/progress.h"
#include "worker/train/train_options.h"
#include "worker/train/training_data.h"

namespace dreambooth::train {

// One optimizer step's numbers.
struct StepLog {
  int64_t step = 0;  // 1-based optimizer step
  double loss = 0.0;
  double instance_loss = 0.0;
  double prior_loss = 0.0;  // 0 without prior preservation
  double grad_norm = 0.0;   // before clipping (of the last micro-batch's accumulated gradient)
  double lr = 0.0;
  bool skipped = false;  // fp16 step skipped for inf/NaN gradients
};

struct TrainResult {
  int64_t start_step = 0;  // > 0 when resumed
  int64_t end_step = 0;
  std::vector<StepLog> steps;   // the steps this call ran
  std::string final_model_dir;  // "" when cancelled before the end
  double seconds = 0.0;         // wall time of the training loop
  double steps_per_second = 0.0;
  int64_t peak_rss_bytes = 0;
  ClassImageSet class_images;
  LatentCacheStats latent_cache;
};

// Not thread-safe: one trainer per thread; the model it holds is modified in place.
class DreamBoothTrainer {
 public:
  // Validates `options`, loads options.base_model on options.device and scans the instance
  // folder. INVALID_ARGUMENT for bad options or an empty/unreadable instance folder, NOT_FOUND
  // for a missing folder or model.
  static absl::StatusOr<std::unique_ptr<DreamBoothTrainer>> Create(const TrainOptions& options,
                                                                   TrainCallbacks callbacks = {});
  // Same with an already loaded model (float32; it is trained in place).
  static absl::StatusOr<std::unique_ptr<DreamBoothTrainer>> Create(const TrainOptions& options,
                                                                   diffusion::StableDiffusion model,
                                                                   TrainCallbacks callbacks = {});

  // Stage 1. Without prior preservation does nothing. Idempotent.
  absl::StatusOr<ClassImageSet> GenerateClassImages();
  // Stage 2 (runs stage 1 first if needed). Idempotent.
  absl::StatusOr<LatentCacheStats> PrepareLatents();
  // Stage 3 (runs stages 1-2 first if needed): trains up to max_train_steps (resuming when
  // options.resume_from says so) and exports. CANCELLED when callbacks.cancel is raised (a
  // resume state is written first); other errors as the stages report them.
  absl::StatusOr<TrainResult> Train();
  // All stages.
  absl::StatusOr<TrainResult> Run() { return Train(); }

  diffusion::StableDiffusion& model() { return model_; }
  const TrainOptions& options() const { return options_; }
  const std::vector<ImageRecord>& instance_images() const { return instances_; }
  // Warnings so far (also sent to callbacks.on_warning).
  const std::vector<std::string>& warnings() const { return warnings_; }
  // ModuleDigest of the VAE as training holds it (its dtype included): the latent cache's key.
  const std::string& vae_digest() const { return vae_digest_; }

  ~DreamBoothTrainer();

 private:
  DreamBoothTrainer(TrainOptions options, diffusion::StableDiffusion model,
                    TrainCallbacks callbacks);
  absl::Status Init();
  void Warn(const std::string& message);
  void Report(const TrainProgress& progress);
  bool Cancelled() const;
  absl::StatusOr<at::Tensor> PromptEmbeddings(const std::string& prompt);

  TrainOptions options_;
  diffusion::StableDiffusion model_;
  TrainCallbacks callbacks_;
  at::Device device_ = at::kCPU;
  std::vector<std::string> warnings_;
  std::vector<ImageRecord> instances_;
  std::vector<ImageRecord> classes_;
  bool class_stage_done_ = false;
  bool latent_stage_done_ = false;
  ClassImageSet class_set_;
  LatentCacheStats cache_stats_;
  FrozenModules frozen_;
  std::string vae_digest_;
  std::unique_ptr<PosteriorSource> posteriors_;
  std::map<std::string, at::Tensor> prompt_cache_;  // frozen-encoder embeddings by prompt
};

}  // namespace dreambooth::train

#endif  // DREAMBOOTH_WORKER_TRAIN_DREAMBOOTH_TRAINER_H_
