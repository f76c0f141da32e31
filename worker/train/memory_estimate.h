// Peak-memory estimate of a DreamBooth job (issue 15, "memory admission"), and the plan that
// makes a job fit a memory budget by turning on savers that do not change what is trained.
//
// The model is deliberately simple: bytes of weights, gradients and AdamW state follow from the
// parameter counts of the configs; activations are counted per UNet block (resnets, transformers,
// attention score matrices) from the config, the resolution and the micro-batch, then scaled by
// factors calibrated against measured peaks (docs/memory.md has the table and the commands).
// All functions are pure (no filesystem access except ModelConfigs::Load) and thread-safe.
#ifndef DREAMBOOTH_WORKER_TRAIN_MEMORY_ESTIMATE_H_
#define DREAMBOOTH_WORKER_TRAIN_MEMORY_ESTIMATE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/diffusion/models/autoencoder_kl_config.h"
#include "worker/diffusion/models/clip_text_config.h"
#include "worker/diffusion/models/unet_2d_condition_config.h"
#include "worker/train/train_options.h"

namespace dreambooth::train {

// The architecture of a Stable Diffusion model: what the estimate needs to know about it.
struct ModelConfigs {
  diffusion::UNet2DConditionConfig unet;
  diffusion::AutoencoderKLConfig vae;
  diffusion::ClipTextConfig text_encoder;

  // The configs of `base_model` as TrainOptions::base_model names it: "tiny" (built in), "toy"
  // (the built-in architecture, no files needed) or a diffusers folder (unet/, vae/ and
  // text_encoder/config.json). NOT_FOUND / INVALID_ARGUMENT from the config readers;
  // UNIMPLEMENTED for a single .safetensors file.
  static absl::StatusOr<ModelConfigs> Load(const std::string& base_model);
};

// Where the job runs: on kCpu the host's RSS is the budget (fp32 master copies of cast modules
// and the process's own baseline count); on kCuda only device allocations count.
enum class DeviceKind { kCpu, kCuda };

// Parameter counts computed from the configs (equal to the modules' parameters().numel() sums).
int64_t UNetParameterCount(const diffusion::UNet2DConditionConfig& config);
int64_t VaeParameterCount(const diffusion::AutoencoderKLConfig& config);
int64_t TextEncoderParameterCount(const diffusion::ClipTextConfig& config);
// Parameters of LoRA adapters of `rank` on the layers named by `unet_targets` (resp. the text
// encoder's `text_targets`; pass {} when the text encoder is not adapted).
int64_t LoraParameterCount(const ModelConfigs& configs, int rank,
                           const std::vector<std::string>& unet_targets,
                           const std::vector<std::string>& text_targets);

// Estimated peak memory of a job, in bytes. A plain value type.
struct MemoryEstimate {
  int64_t weights_bytes = 0;      // all modules as held while training (+ host fp32 masters on CPU)
  int64_t gradients_bytes = 0;    // float32 gradients of the trained parameters
  int64_t optimizer_bytes = 0;    // AdamW's two float32 moments (+ the EMA copy with use_ema)
  int64_t activations_bytes = 0;  // one training micro-batch: saved activations + backward work
  int64_t class_generation_bytes = 0;  // class-image sampling working set (0 without prior)
  int64_t latent_caching_bytes = 0;    // VAE encode working set
  int64_t sampling_bytes = 0;          // validation sampling working set (0 without prompts)
  int64_t runtime_bytes = 0;           // CPU: RSS of an idle process with LibTorch loaded
  int64_t overhead_bytes = 0;  // CPU training: caching-allocator retention (load staging, churn)
  int64_t total_bytes = 0;     // the peak over the phases below
  std::string peak_phase;      // "training", "class generation", "latent caching", ...

  // One line: "estimated peak 3.2 GiB (training): weights 1.6 GiB, gradients ..., ...".
  std::string Describe() const;
};

// "3.2 GiB", "512.0 MiB": bytes for messages.
std::string FormatBytes(int64_t bytes);

// The peak over the job's phases: class-image generation (inference with classifier-free
// guidance, batch 2 x num_images_per_prompt; only with prior preservation, assuming the class
// images must be generated), latent caching (VAE encode, batch 1; with use_cached_latents),
// training (micro-batch train_batch_size, doubled with prior preservation) and validation
// sampling (when validation_prompts is set). Attention follows what the trainer runs
// (diffusion::AttentionBackend::kAuto): on CUDA the fused kernel; on CPU one score matrix per
// layer while training when a head's scores have fewer than 512x512 entries. INVALID_ARGUMENT
// for a resolution the VAE cannot encode or an invalid config.
absl::StatusOr<MemoryEstimate> EstimateTrainingMemory(const TrainOptions& options,
                                                      const ModelConfigs& configs, DeviceKind kind);

// Peak of sampling `batch` images at `resolution` with the given weights dtype (float32 when
// mixed_precision is kNo): the UNet runs on 2 x batch with classifier-free guidance
// (guidance_scale > 1), then the VAE decodes the batch. Includes weights and runtime.
absl::StatusOr<MemoryEstimate> EstimateSamplingMemory(const ModelConfigs& configs, int resolution,
                                                      int batch, double guidance_scale,
                                                      MixedPrecision precision, DeviceKind kind);

// What to do with a job whose estimate exceeds the budget.
enum class MemoryPolicy {
  kAdapt,   // turn on savers (below) until it fits
  kRefuse,  // fail at once
};

// The result of PlanMemory: the options to run with and what was changed.
struct MemoryPlan {
  TrainOptions options;            // the input options with the savers applied
  MemoryEstimate estimate;         // of `options`
  std::vector<std::string> notes;  // one per saver turned on, for the job's events
};

// Checks `options` against `budget_bytes`. With kAdapt, savers are turned on in this order until
// the estimate fits: (1) gradient_checkpointing; (2) memory-efficient attention: skipped, since
// TrainOptions has no attention setting (the trainer always runs kAuto, which already uses the
// fused kernel wherever score matrices are large); (3) num_images_per_prompt halved, down to 1
// (with prior preservation only). None changes the numbers a run produces (so mixed precision
// and LoRA are not savers). Each note reads "turned on gradient checkpointing: estimated peak
// 9.1 GiB > budget 8.0 GiB; now 6.3 GiB". FAILED_PRECONDITION naming the estimate, the budget and
// the savers tried when it does not fit (at once with kRefuse); errors of the estimate as is.
absl::StatusOr<MemoryPlan> PlanMemory(const TrainOptions& options, const ModelConfigs& configs,
                                      DeviceKind kind, int64_t budget_bytes, MemoryPolicy policy);

}  // namespace dreambooth::train

#endif  // DREAMBOOTH_WORKER_TRAIN_MEMORY_ESTIMATE_H_
