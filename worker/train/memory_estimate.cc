#include "worker/train/memory_estimate.h"

#include <algorithm>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "worker/diffusion/models/tiny_model.h"
#include "worker/train/memory_estimate_arch.h"

namespace dreambooth::train {
namespace {

namespace mi = memory_internal;

// ---- Calibration (docs/memory.md: measured peaks on CPU, the caching CPU allocator active) ----
// RSS of an idle dbtool process with LibTorch loaded, the caching allocator installed and the
// first kernels run: VmRSS at the start of `dbtool memory` is 368 MiB; with the tiny model
// (13 MiB of weights, 13 MiB of load staging) loaded and its first images encoded, 429 MiB.
constexpr int64_t kCpuRuntimeBytes = 392LL << 20;
// The caching CPU allocator keeps freed blocks in per-size free lists, so what a training step
// creates and frees (every block's activations, once more in backward with checkpointing) stays
// resident: fitted as 1.2 x the full (non-checkpointed) activations. With
// DB_CPU_ALLOCATOR=system the mid model's peaks were 1-40 % lower (4839 -> 2917 MiB at 512).
constexpr double kCpuActivationRetention = 1.2;
// The loader reads each weight file into float32 tensors and copies them into the modules; the
// freed copies stay in the caching allocator's free lists (up to its idle cap,
// DB_CPU_ALLOCATOR_CACHE_MB, default 4096), except where later allocations of the same sizes
// reuse them: the gradients of fully trained modules (and the float32 masters of cast modules,
// which replace the cast-away originals one for one). Measured: loading the mid model (930 MiB)
// leaves 1.8 GiB resident.
constexpr int64_t kCpuAllocatorCacheCapBytes = 4096LL << 20;
// Bytes held per counted activation element in float32 beyond the counted tensors, and the
// factor for bf16/fp16 autocast (matmul and conv outputs in half precision, norms and softmax
// kept in float32).
constexpr double kActivationOverhead = 1.0;
constexpr double kHalfActivationFactor = 0.65;
// Fraction of the frozen base's activations a LoRA run keeps: a frozen layer needs only its
// weight for the input gradient, not its input.
constexpr double kLoraActivationFactor = 0.75;
// Working set of a no-grad UNet forward / VAE pass relative to the counted elements.
constexpr double kInferenceOverhead = 1.0;

// The trainer's attention choice (AttentionBackend::kAuto, attention.cc): on CPU training one
// score matrix below 512 x 512 entries per head; fused kernels otherwise.
bool CpuTrainingMath(int64_t nq, int64_t nk) { return nq * nk < 512 * 512; }
bool NeverMath(int64_t, int64_t) { return false; }

int64_t DtypeBytes(MixedPrecision p) { return p == MixedPrecision::kNo ? 4 : 2; }

absl::Status CheckResolution(const ModelConfigs& configs, int resolution) {
  const int64_t factor = int64_t{1} << (configs.vae.block_out_channels.size() - 1);
  if (resolution <= 0 || resolution % factor != 0) {
    return absl::InvalidArgumentError(absl::StrCat("resolution ", resolution,
                                                   " is not a positive multiple of the VAE's "
                                                   "downscale factor ",
                                                   factor));
  }
  return absl::OkStatus();
}

int64_t LatentSize(const ModelConfigs& configs, int resolution) {
  return resolution >> (configs.vae.block_out_channels.size() - 1);
}

// The no-grad working set of sampling `batch` images (UNet on the CFG batch, then VAE decode),
// in bytes of `dtype_bytes` elements.
int64_t SamplingWorkBytes(const ModelConfigs& configs, int resolution, int batch, bool cfg,
                          int64_t dtype_bytes) {
  const int64_t latent = LatentSize(configs, resolution);
  const mi::UNetActivations a = mi::CountUNetActivations(configs.unet, latent, latent, NeverMath);
  const double unet = a.inference * batch * (cfg ? 2 : 1);
  const double decode = mi::VaeDecodeElements(configs.vae, resolution, resolution) * batch;
  return static_cast<int64_t>(std::max(unet, decode) * dtype_bytes * kInferenceOverhead);
}

}  // namespace

absl::StatusOr<ModelConfigs> ModelConfigs::Load(const std::string& base_model) {
  ModelConfigs c;
  if (base_model == "tiny") {
    c.unet = diffusion::TinyUNetConfig();
    c.vae = diffusion::TinyVaeConfig();
    c.text_encoder = diffusion::TinyTextConfig();
    return c;
  }
  if (base_model == "toy") {
    c.unet = diffusion::ToyUNetConfig();
    c.vae = diffusion::ToyVaeConfig();
    c.text_encoder = diffusion::ToyTextConfig();
    return c;
  }
  namespace fs = std::filesystem;
  if (!fs::is_directory(base_model)) {
    if (fs::exists(base_model)) {
      return absl::UnimplementedError(
          absl::StrCat("memory estimate of a single-file model: ", base_model));
    }
    return absl::NotFoundError(absl::StrCat("no model folder ", base_model));
  }
  const fs::path dir(base_model);
  ASSIGN_OR_RETURN(
      c.unet, diffusion::UNet2DConditionConfig::FromFile((dir / "unet" / "config.json").string()));
  ASSIGN_OR_RETURN(
      c.vae, diffusion::AutoencoderKLConfig::FromFile((dir / "vae" / "config.json").string()));
  ASSIGN_OR_RETURN(c.text_encoder, diffusion::ClipTextConfig::FromFile(
                                       (dir / "text_encoder" / "config.json").string()));
  return c;
}

int64_t UNetParameterCount(const diffusion::UNet2DConditionConfig& config) {
  return mi::UNetLayers(config).Parameters();
}
int64_t VaeParameterCount(const diffusion::AutoencoderKLConfig& config) {
  return mi::VaeLayers(config).Parameters();
}
int64_t TextEncoderParameterCount(const diffusion::ClipTextConfig& config) {
  return mi::TextEncoderLayers(config).Parameters();
}

int64_t LoraParameterCount(const ModelConfigs& configs, int rank,
                           const std::vector<std::string>& unet_targets,
                           const std::vector<std::string>& text_targets) {
  return mi::LoraParameters(mi::UNetLayers(configs.unet), rank, unet_targets) +
         mi::LoraParameters(mi::TextEncoderLayers(configs.text_encoder), rank, text_targets);
}

std::string FormatBytes(int64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (b >= 1024.0 * 1024 * 1024) return absl::StrFormat("%.1f GiB", b / (1024.0 * 1024 * 1024));
  return absl::StrFormat("%.1f MiB", b / (1024.0 * 1024));
}

std::string MemoryEstimate::Describe() const {
  std::vector<std::string> parts = {absl::StrCat("weights ", FormatBytes(weights_bytes)),
                                    absl::StrCat("gradients ", FormatBytes(gradients_bytes)),
                                    absl::StrCat("optimizer ", FormatBytes(optimizer_bytes)),
                                    absl::StrCat("activations ", FormatBytes(activations_bytes))};
  if (class_generation_bytes > 0) {
    parts.push_back(absl::StrCat("class generation ", FormatBytes(class_generation_bytes)));
  }
  if (latent_caching_bytes > 0) {
    parts.push_back(absl::StrCat("latent caching ", FormatBytes(latent_caching_bytes)));
  }
  if (sampling_bytes > 0) parts.push_back(absl::StrCat("sampling ", FormatBytes(sampling_bytes)));
  if (overhead_bytes > 0) {
    parts.push_back(absl::StrCat("allocator overhead ", FormatBytes(overhead_bytes)));
  }
  if (runtime_bytes > 0) parts.push_back(absl::StrCat("runtime ", FormatBytes(runtime_bytes)));
  return absl::StrCat("estimated peak ", FormatBytes(total_bytes), " (", peak_phase,
                      "): ", absl::StrJoin(parts, ", "));
}

absl::StatusOr<MemoryEstimate> EstimateTrainingMemory(const TrainOptions& o,
                                                      const ModelConfigs& configs,
                                                      DeviceKind kind) {
  RETURN_IF_ERROR(configs.unet.Validate());
  RETURN_IF_ERROR(configs.vae.Validate());
  RETURN_IF_ERROR(configs.text_encoder.Validate());
  RETURN_IF_ERROR(CheckResolution(configs, o.resolution));
  if (o.train_batch_size < 1) return absl::InvalidArgumentError("train_batch_size must be >= 1");
  const bool cpu = kind == DeviceKind::kCpu;
  const bool half = o.mixed_precision != MixedPrecision::kNo;
  const int64_t dtype = DtypeBytes(o.mixed_precision);
  const bool lora = o.lora.enabled;
  const bool text_trained = o.train_text_encoder;

  // Weights. Trained modules stay float32; frozen ones are cast to the compute dtype under mixed
  // precision (FrozenModules), keeping a float32 master copy on the host; on CPU that copy is in
  // the budget, and the float32 storage the cast released stays in the caching allocator.
  const int64_t unet_p = UNetParameterCount(configs.unet);
  const int64_t vae_p = VaeParameterCount(configs.vae);
  const int64_t text_p = TextEncoderParameterCount(configs.text_encoder);
  const int64_t frozen_bytes = !half ? 4 : cpu ? 4 + 2 : 2;
  int64_t trained_p = 0;
  int64_t weights = vae_p * frozen_bytes;
  if (lora) {
    trained_p =
        LoraParameterCount(configs, o.lora.rank, o.lora.unet_targets,
                           text_trained ? o.lora.text_encoder_targets : std::vector<std::string>{});
    weights += (unet_p + text_p) * frozen_bytes + trained_p * 4;
  } else {
    trained_p = unet_p + (text_trained ? text_p : 0);
    weights += unet_p * 4 + text_p * (text_trained ? 4 : frozen_bytes);
  }

  MemoryEstimate e;
  e.runtime_bytes = cpu ? kCpuRuntimeBytes : 0;
  e.weights_bytes = weights;
  e.gradients_bytes = trained_p * 4;
  e.optimizer_bytes = trained_p * 8 + (o.use_ema && !lora ? unet_p * 4 : 0);

  // Activations of one micro-batch: train_batch_size instance (+ as many class) images.
  const int64_t batch = o.train_batch_size * (o.with_prior_preservation ? 2 : 1);
  const int64_t latent = LatentSize(configs, o.resolution);
  const mi::UNetActivations a =
      mi::CountUNetActivations(configs.unet, latent, latent, cpu ? CpuTrainingMath : NeverMath);
  // Bytes of `elements` per sample for the micro-batch in the activations' dtype.
  auto activation_bytes = [&](double elements) {
    elements += a.skips + 2 * a.largest_tensor;  // gradients in flight during backward
    if (text_trained) elements += mi::TextEncoderSavedElements(configs.text_encoder);
    double bytes = elements * batch * 4 * kActivationOverhead;
    if (half) bytes *= kHalfActivationFactor;
    if (lora) bytes *= kLoraActivationFactor;
    return bytes;
  };
  double act =
      activation_bytes(o.gradient_checkpointing ? a.checkpointed + a.largest_block : a.saved);
  // Every block's activations are created and freed once per step (with checkpointing, again
  // in backward): what the caching allocator retains follows the full set.
  const double churn = activation_bytes(a.saved);
  // Autocast caches a half copy of each float32 weight it casts (the trained modules).
  if (half && !lora) act += static_cast<double>(trained_p) * dtype;
  // Without cached latents the VAE encodes the micro-batch each step, before the UNet runs.
  const double encode =
      o.use_cached_latents
          ? 0
          : mi::VaeEncodeElements(configs.vae, o.resolution, o.resolution) * batch * dtype;
  e.activations_bytes = static_cast<int64_t>(std::max(act, encode));

  // Phases.
  const int64_t unet_dtype = lora && half ? 2 : 4;
  struct Phase {
    const char* name;
    int64_t bytes;
  };
  std::vector<Phase> phases;
  if (o.with_prior_preservation) {
    e.class_generation_bytes =
        SamplingWorkBytes(configs, o.resolution, std::max(1, o.num_images_per_prompt),
                          o.class_sampler.guidance_scale > 1.0, unet_dtype);
    phases.push_back({"class generation", e.runtime_bytes + weights + e.class_generation_bytes});
  }
  if (o.use_cached_latents) {
    e.latent_caching_bytes =
        static_cast<int64_t>(mi::VaeEncodeElements(configs.vae, o.resolution, o.resolution) *
                             dtype * kInferenceOverhead);
    phases.push_back({"latent caching", e.runtime_bytes + weights + e.latent_caching_bytes});
  }
  const int64_t state = e.runtime_bytes + weights + e.gradients_bytes + e.optimizer_bytes;
  if (cpu) {
    const int64_t staging = (unet_p + vae_p + text_p) * 4 - (lora ? 0 : trained_p * 4);
    e.overhead_bytes = std::min(staging, kCpuAllocatorCacheCapBytes) +
                       static_cast<int64_t>(kCpuActivationRetention * churn);
  }
  phases.push_back({"training", state + e.activations_bytes + e.overhead_bytes});
  // A LoRA run under mixed precision exports the merged model with float32 weights: every
  // module is restored to float32 next to its host master (the cast copies freed).
  if (lora && half) {
    const int64_t all_p = unet_p + vae_p + text_p;
    const int64_t staging = cpu ? std::min(all_p * 4, kCpuAllocatorCacheCapBytes) : 0;
    phases.push_back({"export", e.runtime_bytes + all_p * (cpu ? 4 + 4 + 2 : 4 + 2) + staging});
  }
  if (!o.validation_prompts.empty()) {
    e.sampling_bytes =
        SamplingWorkBytes(configs, o.resolution, std::max(1, o.num_validation_images),
                          o.validation_sampler.guidance_scale > 1.0, unet_dtype);
    phases.push_back({"validation", state + e.sampling_bytes});
  }
  for (const Phase& p : phases) {
    if (p.bytes > e.total_bytes) {
      e.total_bytes = p.bytes;
      e.peak_phase = p.name;
    }
  }
  return e;
}

absl::StatusOr<MemoryEstimate> EstimateSamplingMemory(const ModelConfigs& configs, int resolution,
                                                      int batch, double guidance_scale,
                                                      MixedPrecision precision, DeviceKind kind) {
  RETURN_IF_ERROR(configs.unet.Validate());
  RETURN_IF_ERROR(configs.vae.Validate());
  RETURN_IF_ERROR(configs.text_encoder.Validate());
  RETURN_IF_ERROR(CheckResolution(configs, resolution));
  if (batch < 1) return absl::InvalidArgumentError("batch must be >= 1");
  const int64_t dtype = DtypeBytes(precision);
  MemoryEstimate e;
  e.runtime_bytes = kind == DeviceKind::kCpu ? kCpuRuntimeBytes : 0;
  e.weights_bytes = (UNetParameterCount(configs.unet) + VaeParameterCount(configs.vae) +
                     TextEncoderParameterCount(configs.text_encoder)) *
                    dtype;
  e.sampling_bytes = SamplingWorkBytes(configs, resolution, batch, guidance_scale > 1.0, dtype);
  e.total_bytes = e.runtime_bytes + e.weights_bytes + e.sampling_bytes;
  e.peak_phase = "sampling";
  return e;
}

absl::StatusOr<MemoryPlan> PlanMemory(const TrainOptions& options, const ModelConfigs& configs,
                                      DeviceKind kind, int64_t budget_bytes, MemoryPolicy policy) {
  MemoryPlan plan;
  plan.options = options;
  ASSIGN_OR_RETURN(plan.estimate, EstimateTrainingMemory(plan.options, configs, kind));
  const std::string budget = FormatBytes(budget_bytes);
  std::vector<std::string> tried;
  // While over budget and `possible`, applies `change` and notes it as "<action>: ...".
  auto apply = [&](const std::string& action, const std::string& saver, auto&& possible,
                   auto&& change) -> absl::Status {
    while (plan.estimate.total_bytes > budget_bytes && possible(plan.options)) {
      TrainOptions next = plan.options;
      change(next);
      ASSIGN_OR_RETURN(MemoryEstimate est, EstimateTrainingMemory(next, configs, kind));
      if (tried.empty() || tried.back() != saver) tried.push_back(saver);
      plan.notes.push_back(absl::StrCat(action, ": estimated peak ",
                                        FormatBytes(plan.estimate.total_bytes), " > budget ",
                                        budget, "; now ", FormatBytes(est.total_bytes)));
      plan.options = std::move(next);
      plan.estimate = est;
    }
    return absl::OkStatus();
  };
  const int64_t initial = plan.estimate.total_bytes;
  if (initial > budget_bytes && policy == MemoryPolicy::kAdapt) {
    RETURN_IF_ERROR(apply(
        "turned on gradient checkpointing", "gradient checkpointing",
        [](const TrainOptions& o) { return !o.gradient_checkpointing; },
        [](TrainOptions& o) { o.gradient_checkpointing = true; }));
    // (2) memory-efficient attention: TrainOptions has no attention setting; see the header.
    RETURN_IF_ERROR(apply(
        "halved the class-generation batch (num_images_per_prompt)",
        "smaller class-generation batches",
        [](const TrainOptions& o) {
          return o.with_prior_preservation && o.num_images_per_prompt > 1;
        },
        [](TrainOptions& o) {
          o.num_images_per_prompt = std::max(1, o.num_images_per_prompt / 2);
        }));
  }
  if (plan.estimate.total_bytes > budget_bytes) {
    return absl::FailedPreconditionError(absl::StrCat(
        "estimated peak memory ", FormatBytes(plan.estimate.total_bytes), " (",
        plan.estimate.peak_phase, ") exceeds the budget ", budget,
        policy == MemoryPolicy::kRefuse
            ? " (memory policy: refuse)"
            : (tried.empty() ? std::string(" with no saver left to turn on")
                             : absl::StrCat(" after turning on ", absl::StrJoin(tried, ", "),
                                            " (from ", FormatBytes(initial), ")"))));
  }
  return plan;
}

}  // namespace dreambooth::train
