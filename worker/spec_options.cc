#include "worker/spec_options.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "spec/job_spec_rules.h"
#include "worker/diffusion/schedulers/scheduler.h"

namespace dreambooth::worker {
namespace {

std::string UpstreamName(v1::SchedulerKind kind) {
  switch (kind) {
    case v1::SCHEDULER_KIND_DDIM:
      return "ddim";
    case v1::SCHEDULER_KIND_PNDM:
      return "pndm";
    case v1::SCHEDULER_KIND_EULER:
      return "euler";
    case v1::SCHEDULER_KIND_EULER_ANCESTRAL:
      return "euler_ancestral";
    case v1::SCHEDULER_KIND_DPM_SOLVER_MULTISTEP:
      return "dpmpp_2m";
    case v1::SCHEDULER_KIND_DDPM:
      return "ddpm";
    default:
      return "ddim";
  }
}

absl::StatusOr<train::LrScheduleType> ToLrSchedule(v1::LrScheduler s) {
  switch (s) {
    case v1::LR_SCHEDULER_CONSTANT:
      return train::LrScheduleType::kConstant;
    case v1::LR_SCHEDULER_CONSTANT_WITH_WARMUP:
      return train::LrScheduleType::kConstantWithWarmup;
    case v1::LR_SCHEDULER_LINEAR:
      return train::LrScheduleType::kLinear;
    case v1::LR_SCHEDULER_COSINE:
      return train::LrScheduleType::kCosine;
    case v1::LR_SCHEDULER_COSINE_WITH_RESTARTS:
      return train::LrScheduleType::kCosineWithRestarts;
    case v1::LR_SCHEDULER_POLYNOMIAL:
      return train::LrScheduleType::kPolynomial;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("spec.lr_scheduler: unknown value ", static_cast<int>(s)));
  }
}

absl::StatusOr<train::TrainingMode> ToTrainingMode(v1::TrainingMode m) {
  switch (m) {
    case v1::TRAINING_MODE_DREAMBOOTH:
      return train::TrainingMode::kDreamBooth;
    case v1::TRAINING_MODE_TEXT_TO_IMAGE:
      return train::TrainingMode::kTextToImage;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("spec.training_mode: unknown value ", static_cast<int>(m)));
  }
}

absl::StatusOr<train::MixedPrecision> ToPrecision(v1::MixedPrecision p) {
  switch (p) {
    case v1::MIXED_PRECISION_NO:
      return train::MixedPrecision::kNo;
    case v1::MIXED_PRECISION_FP16:
      return train::MixedPrecision::kFp16;
    case v1::MIXED_PRECISION_BF16:
      return train::MixedPrecision::kBf16;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("spec.mixed_precision: unknown value ", static_cast<int>(p)));
  }
}

}  // namespace

std::string SchedulerName(v1::SchedulerKind kind, std::vector<std::string>* warnings) {
  const std::string name = UpstreamName(kind);
  const std::vector<std::string> known = diffusion::SchedulerNames();
  if (std::find(known.begin(), known.end(), name) != known.end()) return name;
  if (warnings != nullptr) {
    warnings->push_back(absl::StrCat("scheduler ", v1::SchedulerKind_Name(kind),
                                     " is not implemented by this worker; using DDIM instead"));
  }
  return "ddim";
}

train::SamplerOptions ToSamplerOptions(const v1::SamplerSettings& settings,
                                       std::vector<std::string>* warnings) {
  train::SamplerOptions out;
  out.scheduler = SchedulerName(settings.scheduler(), warnings);
  out.num_inference_steps = settings.num_inference_steps();
  out.guidance_scale = settings.guidance_scale();
  out.negative_prompt = settings.negative_prompt();
  out.eta = settings.eta();
  return out;
}

absl::StatusOr<train::TrainOptions> ToTrainOptions(const v1::JobSpec& spec, const TaskPaths& paths,
                                                   std::vector<std::string>* warnings) {
  RETURN_IF_ERROR(spec::CheckResolvedJobSpec(spec));
  train::TrainOptions o;
  // ---- Model and data ----
  ASSIGN_OR_RETURN(o.mode, ToTrainingMode(spec.training_mode()));
  o.base_model = paths.base_model;
  o.instance_dir = paths.instance_dir;
  o.instance_prompt = spec.instance_prompt();
  // ---- Prior preservation ----
  o.with_prior_preservation = spec.with_prior_preservation();
  o.prior_loss_weight = spec.prior_loss_weight();
  o.class_prompt = spec.regularization_prompt();
  o.class_dir = paths.class_dir;
  o.num_class_images = spec.num_reg_images();
  o.num_images_per_prompt = spec.num_images_per_prompt();
  o.class_sampler = ToSamplerOptions(spec.class_sampler(), warnings);
  o.class_cache_dir = paths.class_cache_dir;
  // ---- Data pipeline ----
  o.resolution = spec.resolution();
  o.center_crop = spec.center_crop();
  o.random_flip = spec.random_flip();
  o.use_cached_latents = spec.use_cached_latents();
  o.latent_cache_dir = paths.latent_cache_dir;
  // ---- Optimisation ----
  o.train_text_encoder = spec.train_text_encoder();
  o.text_encoder_learning_rate = spec.text_encoder_learning_rate();
  o.max_train_steps = spec.max_train_steps();
  o.learning_rate = spec.learning_rate();
  ASSIGN_OR_RETURN(o.lr_scheduler, ToLrSchedule(spec.lr_scheduler()));
  o.lr_warmup_steps = spec.lr_warmup_steps();
  o.lr_num_cycles = spec.lr_num_cycles();
  o.lr_power = spec.lr_power();
  o.train_batch_size = spec.train_batch_size();
  o.gradient_accumulation_steps = spec.gradient_accumulation_steps();
  o.max_grad_norm = spec.max_grad_norm();
  o.adam_beta1 = spec.adam_beta1();
  o.adam_beta2 = spec.adam_beta2();
  o.adam_weight_decay = spec.adam_weight_decay();
  o.adam_epsilon = spec.adam_epsilon();
  o.seed = spec.seed();
  ASSIGN_OR_RETURN(o.mixed_precision, ToPrecision(spec.mixed_precision()));
  o.gradient_checkpointing = spec.gradient_checkpointing();
  if (spec.has_lora()) {
    const v1::LoraSpec& lora = spec.lora();
    o.lora.enabled = true;
    o.lora.rank = lora.rank();
    o.lora.alpha = lora.alpha();
    o.lora.dropout = lora.dropout();
    o.lora.unet_targets.assign(lora.target_modules().begin(), lora.target_modules().end());
    o.lora.text_encoder_targets.assign(lora.text_encoder_target_modules().begin(),
                                       lora.text_encoder_target_modules().end());
    o.lora.learning_rate = lora.learning_rate();
  }
  // ---- Checkpoints and validation ----
  o.output_dir = paths.output_dir;
  o.checkpointing_steps = spec.checkpointing_steps();
  o.validation_prompts.assign(spec.validation_prompts().begin(), spec.validation_prompts().end());
  o.validation_steps = spec.validation_steps();
  o.num_validation_images = spec.num_validation_images();
  o.validation_sampler = ToSamplerOptions(spec.validation_sampler(), warnings);
  // ---- Runtime ----
  o.device = paths.device;
  o.num_threads = paths.num_threads;
  // ---- Devices (data parallel; specs stored before num_devices existed train on one) ----
  const int devices = spec.has_num_devices() ? spec.num_devices() : 1;
  const int nodes = spec.has_num_nodes() ? spec.num_nodes() : 1;
  o.world_size = devices * nodes;
  o.rank = paths.rank;
  o.rendezvous = paths.rendezvous;
  if (paths.collective_timeout_ms > 0) o.collective_timeout_ms = paths.collective_timeout_ms;
  o.rendezvous_timeout_ms = paths.rendezvous_timeout_ms;
  o.shard_preparation = o.world_size > 1;  // a worker's ranks share its caches
  o.ranks_per_node = devices;
  RETURN_IF_ERROR(train::ValidateTrainOptions(o));
  return o;
}

}  // namespace dreambooth::worker
