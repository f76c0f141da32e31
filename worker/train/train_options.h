// Options of a DreamBooth fine-tune: the job spec (proto/dreambooth/v1/job_spec.proto) as a
// plain struct, with the spec's defaults (spec/job_spec_defaults.h), plus local paths and a few
// options the spec does not carry.
#ifndef DREAMBOOTH_WORKER_TRAIN_TRAIN_OPTIONS_H_
#define DREAMBOOTH_WORKER_TRAIN_TRAIN_OPTIONS_H_

#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "spec/job_spec_defaults.h"
#include "worker/train/lr_schedule.h"

namespace dreambooth::train {

enum class MixedPrecision { kNo, kFp16, kBf16 };

// kDreamBooth: every image is trained with the instance prompt (or its own caption), optionally
// with prior preservation. kTextToImage: diffusers' train_text_to_image: every image must have
// its own caption (<stem>.txt), there is no instance prompt and no prior loss.
enum class TrainingMode { kDreamBooth, kTextToImage };

absl::StatusOr<TrainingMode> ParseTrainingMode(
    const std::string& name);  // dreambooth|text-to-image
std::string TrainingModeName(TrainingMode mode);

absl::StatusOr<MixedPrecision> ParseMixedPrecision(const std::string& name);  // no|fp16|bf16
std::string MixedPrecisionName(MixedPrecision precision);

// Sampler settings for class-image generation and validation images.
struct SamplerOptions {
  // A diffusion::CreateScheduler name. The job spec's class-image default is PNDM (NeMo's PLMS);
  // this engine defaults to DDIM when used alone (dbtool train), the worker maps the spec's
  // choice.
  std::string scheduler = "ddim";
  int num_inference_steps = spec::kNumInferenceSteps;
  double guidance_scale = spec::kGuidanceScale;
  std::string negative_prompt;
  double eta = 0.0;
};

// DreamBooth-LoRA (diffusers' train_dreambooth_lora.py): the base model is frozen (held in the
// compute dtype under mixed precision) and only low-rank adapters train, in float32.
struct LoraTrainOptions {
  bool enabled = false;
  int rank = spec::kLoraRank;
  double alpha = 0;    // <= 0: rank (scale 1)
  double dropout = 0;  // on each adapter's input while training
  // peft target names (worker/diffusion/models/lora.h); the text encoder's only when
  // train_text_encoder is set.
  std::vector<std::string> unet_targets = {"to_q", "to_k", "to_v", "to_out.0"};
  std::vector<std::string> text_encoder_targets = {"q_proj", "k_proj", "v_proj", "out_proj"};
  double learning_rate = spec::kLoraLearningRate;  // of the adapters (replaces learning_rate)
  double Alpha() const { return alpha > 0 ? alpha : rank; }
};

struct TrainOptions {
  // ---- Model and data ----
  TrainingMode mode = TrainingMode::kDreamBooth;
  std::string base_model;          // "tiny", a diffusers folder or a single .safetensors file
  std::string base_model_variant;  // e.g. "fp16": weight-file variant to prefer
  std::string instance_dir;        // folder of instance images (+ optional <name>.txt captions)
  std::string instance_prompt;     // e.g. "a photo of sks dog"; unused in kTextToImage
  // SHA-256 hex of image files the caller has just verified (path -> digest; the worker fills
  // it for the images it downloaded): the trainer uses them instead of hashing those files again.
  std::map<std::string, std::string> verified_image_digests;
  // Facts about the run recorded in the checkpoints it writes (worker/train/provenance.h), e.g.
  // {"job_id": "job_...", "spec_sha256": "..."}; keys get a "dreambooth." prefix.
  std::map<std::string, std::string> provenance;

  // ---- Prior preservation ----
  bool with_prior_preservation = false;
  double prior_loss_weight = spec::kPriorLossWeight;
  std::string class_prompt;                    // the spec's regularization_prompt
  std::string class_dir;                       // user-supplied class images; may be empty or absent
  int num_class_images = spec::kNumRegImages;  // the spec's num_reg_images
  int num_images_per_prompt = spec::kNumImagesPerPrompt;  // class-generation batch
  SamplerOptions class_sampler;
  // Content-keyed store of generated class images shared across runs; default
  // <output_dir>/cache/class_images.
  std::string class_cache_dir;

  // ---- Data pipeline ----
  int resolution = spec::kResolution;  // multiple of 8 (and of the VAE's downscale factor)
  bool center_crop = spec::kCenterCrop;
  bool random_flip = false;
  // Encode every image once and sample from the cached posterior each step. Requires
  // center_crop; with random_flip both orientations are cached.
  bool use_cached_latents = spec::kCenterCrop;
  std::string latent_cache_dir;  // default <output_dir>/cache/latents

  // ---- Optimisation ----
  bool train_text_encoder = false;
  double text_encoder_learning_rate = 0.0;  // <= 0: learning_rate
  // With the text encoder frozen, prompt embeddings are computed once (not every step).
  bool precompute_text_embeddings = true;
  int max_train_steps = spec::kMaxTrainSteps;
  double learning_rate = spec::kLearningRate;
  LrScheduleType lr_scheduler = LrScheduleType::kConstant;
  int lr_warmup_steps = spec::kLrWarmupSteps;
  int lr_num_cycles = spec::kLrNumCycles;
  double lr_power = spec::kLrPower;
  int train_batch_size =
      spec::kTrainBatchSize;  // instance images per micro-batch (class images: the same number)
  int gradient_accumulation_steps = spec::kGradientAccumulationSteps;
  double max_grad_norm = spec::kMaxGradNorm;  // <= 0: no clipping
  double adam_beta1 = spec::kAdamBeta1;
  double adam_beta2 = spec::kAdamBeta2;
  double adam_weight_decay = spec::kAdamWeightDecay;
  double adam_epsilon = spec::kAdamEpsilon;
  uint64_t seed = 0;
  MixedPrecision mixed_precision = MixedPrecision::kNo;
  bool gradient_checkpointing = false;
  // Not in the job spec (diffusers options): min-SNR gamma (0 = off), offset noise (diffusers'
  // --offset_noise uses 0.1; 0 = off), EMA of the UNet weights (exported when enabled).
  double snr_gamma = 0.0;
  double offset_noise = 0.0;
  // Probability of training an instance draw with the empty prompt (kohya's caption dropout;
  // classifier-free guidance needs it when pretraining). Not in the job spec.
  double caption_dropout = 0.0;
  bool use_ema = false;  // checkpoints and the final export carry the EMA UNet weights
  LoraTrainOptions lora;
  double ema_decay = 0.9999;

  // ---- Checkpoints, resume, validation ----
  std::string output_dir;
  int checkpointing_steps = spec::kCheckpointingSteps;  // 0: only the final export
  int checkpoints_total_limit = 0;                      // sampleable checkpoints kept (0 = all)
  int resume_states_to_keep = 2;                        // resume states kept (the last K)
  // "" (start fresh), "latest" (newest resume state under output_dir, fresh if none) or the
  // path of a resume-state folder.
  std::string resume_from;
  std::vector<std::string> validation_prompts;
  int validation_steps = spec::kValidationSteps;
  int num_validation_images = spec::kNumValidationImages;
  SamplerOptions validation_sampler;

  // ---- Data parallel (docs/distributed.md) ----
  // One process per rank: each trains train_batch_size instance (+ class) images of every
  // micro-batch, so a step sees world_size x train_batch_size; gradients are averaged over the
  // ranks. Rank 0 alone reports progress and writes checkpoints, resume states and exports.
  int world_size = 1;
  int rank = 0;
  std::string rendezvous;                  // host:port of rank 0's TCPStore (world_size > 1)
  int rendezvous_listen_fd = -1;           // rank 0: an already listening socket for it (or -1)
  int64_t collective_timeout_ms = 60'000;  // a rank silent this long fails the run
  // How long the ranks wait for each other at the rendezvous (0: collective_timeout_ms); a
  // multi-node job's gang may take minutes to form.
  int64_t rendezvous_timeout_ms = 0;
  // The ranks share one class-image store and latent cache (one machine): rank r generates and
  // encodes every world_size-th item and waits (up to collective_timeout_ms) for the others'
  // files, instead of every rank preparing everything. Changes no result.
  bool shard_preparation = false;
  // With shard_preparation: how many consecutive ranks share one machine's store (0: all of
  // them); rank r then takes shard r % ranks_per_node of ranks_per_node.
  int ranks_per_node = 0;
  int PreparationShards() const { return ranks_per_node > 0 ? ranks_per_node : world_size; }
  int PreparationShard() const { return rank % PreparationShards(); }
  // Average each bucket of gradients as soon as backward has finished it, overlapping the
  // communication with the rest of backward (off: one all-reduce after backward). Same result.
  bool overlap_grad_reduction = true;
  // auto | ring | nccl (DistributedOptions::backend): auto is NCCL on CUDA when built with it.
  std::string collective_backend = "auto";

  // ---- Runtime ----
  std::string device = "cpu";  // "cpu", "cuda", "cuda:1", ...
  int num_threads = 0;         // intra-op threads on CPU; 0 leaves LibTorch's setting

  // The paths actually used (defaults filled in from output_dir).
  std::string ClassCacheDir() const;
  std::string LatentCacheDir() const;
  std::string ResumeRoot() const;      // <output_dir>/resume
  std::string CheckpointRoot() const;  // <output_dir>/checkpoints
  std::string FinalModelDir() const;   // <output_dir>/final
  // The learning rate of the UNet's trained parameters (the adapters' with LoRA).
  double UNetLearningRate() const { return lora.enabled ? lora.learning_rate : learning_rate; }
  double TextEncoderLearningRate() const {
    return text_encoder_learning_rate > 0 ? text_encoder_learning_rate : UNetLearningRate();
  }
};

// Checks the engine's own invariants (required fields, values it cannot run with, conflicts);
// the service's limits on a job (spec/job_spec_rules.h) are not repeated here. INVALID_ARGUMENT
// names the field and the bad value. Does not touch the filesystem (see the trainer).
absl::Status ValidateTrainOptions(const TrainOptions& options);

// The options that determine the numbers a run produces (everything but paths, device and
// retention), used to refuse resuming with different settings.
nlohmann::json TrainingFingerprint(const TrainOptions& options);

}  // namespace dreambooth::train

#endif  // DREAMBOOTH_WORKER_TRAIN_TRAIN_OPTIONS_H_
