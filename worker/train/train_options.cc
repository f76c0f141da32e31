#include "worker/train/train_options.h"

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace dreambooth::train {
namespace {

absl::Status Invalid(const std::string& field, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(field, " ", why));
}

std::string Join(const std::string& a, const std::string& b) {
  return (std::filesystem::path(a) / b).string();
}

absl::Status ValidateSampler(const std::string& field, const SamplerOptions& s) {
  if (s.num_inference_steps < 1) {
    return Invalid(field + ".num_inference_steps",
                   absl::StrCat("must be >= 1, got ", s.num_inference_steps));
  }
  if (!(s.guidance_scale >= 1.0)) {
    return Invalid(field + ".guidance_scale", absl::StrCat("must be >= 1, got ", s.guidance_scale));
  }
  if (s.scheduler.empty()) return Invalid(field + ".scheduler", "must not be empty");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TrainingMode> ParseTrainingMode(const std::string& name) {
  if (name == "dreambooth" || name.empty()) return TrainingMode::kDreamBooth;
  if (name == "text-to-image") return TrainingMode::kTextToImage;
  return absl::InvalidArgumentError(
      absl::StrCat("mode: unknown value '", name, "' (expected dreambooth or text-to-image)"));
}

std::string TrainingModeName(TrainingMode mode) {
  return mode == TrainingMode::kTextToImage ? "text-to-image" : "dreambooth";
}

absl::StatusOr<MixedPrecision> ParseMixedPrecision(const std::string& name) {
  if (name == "no" || name == "fp32" || name.empty()) return MixedPrecision::kNo;
  if (name == "fp16") return MixedPrecision::kFp16;
  if (name == "bf16") return MixedPrecision::kBf16;
  return absl::InvalidArgumentError(
      absl::StrCat("mixed_precision: unknown value '", name, "' (expected no, fp16 or bf16)"));
}

std::string MixedPrecisionName(MixedPrecision precision) {
  switch (precision) {
    case MixedPrecision::kFp16:
      return "fp16";
    case MixedPrecision::kBf16:
      return "bf16";
    case MixedPrecision::kNo:
      break;
  }
  return "no";
}

std::string TrainOptions::ClassCacheDir() const {
  return class_cache_dir.empty() ? Join(output_dir, "cache/class_images") : class_cache_dir;
}
std::string TrainOptions::LatentCacheDir() const {
  return latent_cache_dir.empty() ? Join(output_dir, "cache/latents") : latent_cache_dir;
}
std::string TrainOptions::ResumeRoot() const { return Join(output_dir, "resume"); }
std::string TrainOptions::CheckpointRoot() const { return Join(output_dir, "checkpoints"); }
std::string TrainOptions::FinalModelDir() const { return Join(output_dir, "final"); }

absl::Status ValidateTrainOptions(const TrainOptions& o) {
  if (o.base_model.empty()) return Invalid("base_model", "is required");
  if (o.instance_dir.empty()) return Invalid("instance_dir", "is required");
  if (o.mode == TrainingMode::kDreamBooth && o.instance_prompt.empty()) {
    return Invalid("instance_prompt", "is required");
  }
  if (!(o.caption_dropout >= 0.0 && o.caption_dropout <= 1.0)) {
    return Invalid("caption_dropout", absl::StrCat("must be in [0, 1], got ", o.caption_dropout));
  }
  if (o.mode == TrainingMode::kTextToImage && o.with_prior_preservation) {
    return Invalid("with_prior_preservation",
                   "has no meaning in text-to-image mode (every image has its own caption)");
  }
  if (o.output_dir.empty()) return Invalid("output_dir", "is required");
  if (o.resolution < 8 || o.resolution % 8 != 0) {
    return Invalid("resolution",
                   absl::StrCat("must be a positive multiple of 8, got ", o.resolution));
  }
  if (o.with_prior_preservation) {
    if (o.class_prompt.empty()) {
      return Invalid("class_prompt", "is required with prior preservation");
    }
    if (o.num_class_images < 1) {
      return Invalid("num_class_images", absl::StrCat("must be >= 1, got ", o.num_class_images));
    }
    if (o.num_images_per_prompt < 1) {
      return Invalid("num_images_per_prompt",
                     absl::StrCat("must be >= 1, got ", o.num_images_per_prompt));
    }
    if (!(o.prior_loss_weight >= 0.0)) {
      return Invalid("prior_loss_weight", absl::StrCat("must be >= 0, got ", o.prior_loss_weight));
    }
    if (absl::Status st = ValidateSampler("class_sampler", o.class_sampler); !st.ok()) return st;
  }
  if (o.use_cached_latents && !o.center_crop) {
    return Invalid("use_cached_latents",
                   "requires center_crop (a random crop cannot be cached); disable one of them");
  }
  if (o.max_train_steps <= 0) {
    return Invalid("max_train_steps", absl::StrCat("must be >= 1, got ", o.max_train_steps));
  }
  if (!(o.learning_rate > 0.0) || !std::isfinite(o.learning_rate)) {
    return Invalid("learning_rate", absl::StrCat("must be > 0, got ", o.learning_rate));
  }
  if (!(o.text_encoder_learning_rate >= 0.0) || !std::isfinite(o.text_encoder_learning_rate)) {
    return Invalid(
        "text_encoder_learning_rate",
        absl::StrCat("must be >= 0 (0: learning_rate), got ", o.text_encoder_learning_rate));
  }
  if (o.lr_warmup_steps < 0 || o.lr_warmup_steps > o.max_train_steps) {
    return Invalid("lr_warmup_steps",
                   absl::StrCat("must be in 0..max_train_steps, got ", o.lr_warmup_steps));
  }
  if (o.lr_num_cycles < 1) {
    return Invalid("lr_num_cycles", absl::StrCat("must be >= 1, got ", o.lr_num_cycles));
  }
  if (!(o.lr_power > 0.0))
    return Invalid("lr_power", absl::StrCat("must be > 0, got ", o.lr_power));
  if (o.train_batch_size < 1) {
    return Invalid("train_batch_size", absl::StrCat("must be >= 1, got ", o.train_batch_size));
  }
  if (o.gradient_accumulation_steps < 1) {
    return Invalid("gradient_accumulation_steps",
                   absl::StrCat("must be >= 1, got ", o.gradient_accumulation_steps));
  }
  if (!std::isfinite(o.max_grad_norm)) return Invalid("max_grad_norm", "must be finite");
  if (!(o.adam_beta1 >= 0.0 && o.adam_beta1 < 1.0)) {
    return Invalid("adam_beta1", absl::StrCat("must be in [0, 1), got ", o.adam_beta1));
  }
  if (!(o.adam_beta2 >= 0.0 && o.adam_beta2 < 1.0)) {
    return Invalid("adam_beta2", absl::StrCat("must be in [0, 1), got ", o.adam_beta2));
  }
  if (!(o.adam_weight_decay >= 0.0)) {
    return Invalid("adam_weight_decay", absl::StrCat("must be >= 0, got ", o.adam_weight_decay));
  }
  if (!(o.adam_epsilon > 0.0)) {
    return Invalid("adam_epsilon", absl::StrCat("must be > 0, got ", o.adam_epsilon));
  }
  if (!(o.snr_gamma >= 0.0)) return Invalid("snr_gamma", "must be >= 0 (0 disables it)");
  if (!(o.offset_noise >= 0.0)) return Invalid("offset_noise", "must be >= 0 (0 disables it)");
  if (o.use_ema && !(o.ema_decay > 0.0 && o.ema_decay < 1.0)) {
    return Invalid("ema_decay", absl::StrCat("must be in (0, 1), got ", o.ema_decay));
  }
  if (o.lora.enabled) {
    if (o.lora.rank < 1 || o.lora.rank > spec::kLoraMaxRank) {
      return Invalid("lora.rank",
                     absl::StrCat("must be in [1, ", spec::kLoraMaxRank, "], got ", o.lora.rank));
    }
    if (!(o.lora.alpha >= 0.0) || !std::isfinite(o.lora.alpha)) {
      return Invalid("lora.alpha", absl::StrCat("must be > 0 (0: the rank), got ", o.lora.alpha));
    }
    if (!(o.lora.dropout >= 0.0 && o.lora.dropout < 1.0)) {
      return Invalid("lora.dropout", absl::StrCat("must be in [0, 1), got ", o.lora.dropout));
    }
    if (o.lora.dropout > 0 && o.gradient_checkpointing) {
      return Invalid("lora.dropout",
                     "must be 0 with gradient_checkpointing (the recomputed forward would draw "
                     "other dropout masks)");
    }
    if (!(o.lora.learning_rate > 0.0) || !std::isfinite(o.lora.learning_rate)) {
      return Invalid("lora.learning_rate", absl::StrCat("must be > 0, got ", o.lora.learning_rate));
    }
    if (o.lora.unet_targets.empty()) return Invalid("lora.target_modules", "must not be empty");
    if (o.train_text_encoder && o.lora.text_encoder_targets.empty()) {
      return Invalid("lora.text_encoder_target_modules",
                     "must not be empty when train_text_encoder is set");
    }
    if (o.use_ema) return Invalid("use_ema", "is not supported with LoRA");
  }
  if (o.checkpointing_steps < 0) {
    return Invalid("checkpointing_steps", absl::StrCat("must be >= 0 (0: final export only), got ",
                                                       o.checkpointing_steps));
  }
  if (o.checkpoints_total_limit < 0) return Invalid("checkpoints_total_limit", "must be >= 0");
  if (o.resume_states_to_keep < 1) return Invalid("resume_states_to_keep", "must be >= 1");
  if (!o.validation_prompts.empty()) {
    if (o.validation_steps < 1) {
      return Invalid("validation_steps", absl::StrCat("must be >= 1, got ", o.validation_steps));
    }
    if (o.num_validation_images < 1) {
      return Invalid("num_validation_images",
                     absl::StrCat("must be >= 1, got ", o.num_validation_images));
    }
    if (absl::Status st = ValidateSampler("validation_sampler", o.validation_sampler); !st.ok()) {
      return st;
    }
  }
  if (o.num_threads < 0) return Invalid("num_threads", "must be >= 0");
  if (o.world_size < 1 || o.world_size > 1024) {
    return Invalid("world_size", absl::StrCat("must be in [1, 1024], got ", o.world_size));
  }
  if (o.rank < 0 || o.rank >= o.world_size) {
    return Invalid("rank",
                   absl::StrCat("must be in [0, world_size = ", o.world_size, "), got ", o.rank));
  }
  if (o.world_size > 1 && o.rendezvous.empty()) {
    return Invalid("rendezvous", "must be host:port when world_size > 1");
  }
  if (o.collective_timeout_ms < 1) return Invalid("collective_timeout_ms", "must be >= 1");
  if (o.rendezvous_timeout_ms < 0) return Invalid("rendezvous_timeout_ms", "must be >= 0");
  if (o.ranks_per_node < 0 || (o.ranks_per_node > 0 && o.world_size % o.ranks_per_node != 0)) {
    return Invalid("ranks_per_node", absl::StrCat("must be 0 or divide world_size = ", o.world_size,
                                                  ", got ", o.ranks_per_node));
  }
  return absl::OkStatus();
}

nlohmann::json TrainingFingerprint(const TrainOptions& o) {
  nlohmann::json j;
  j["base_model"] = o.base_model;
  j["mode"] = TrainingModeName(o.mode);
  j["caption_dropout"] = o.caption_dropout;
  j["instance_prompt"] = o.instance_prompt;
  j["with_prior_preservation"] = o.with_prior_preservation;
  j["prior_loss_weight"] = o.prior_loss_weight;
  j["class_prompt"] = o.class_prompt;
  j["num_class_images"] = o.num_class_images;
  j["resolution"] = o.resolution;
  j["center_crop"] = o.center_crop;
  j["random_flip"] = o.random_flip;
  j["use_cached_latents"] = o.use_cached_latents;
  j["train_text_encoder"] = o.train_text_encoder;
  j["text_encoder_learning_rate"] = o.TextEncoderLearningRate();
  j["max_train_steps"] = o.max_train_steps;
  j["learning_rate"] = o.learning_rate;
  j["lr_scheduler"] = LrScheduleTypeName(o.lr_scheduler);
  j["lr_warmup_steps"] = o.lr_warmup_steps;
  j["lr_num_cycles"] = o.lr_num_cycles;
  j["lr_power"] = o.lr_power;
  j["train_batch_size"] = o.train_batch_size;
  j["gradient_accumulation_steps"] = o.gradient_accumulation_steps;
  j["max_grad_norm"] = o.max_grad_norm;
  j["adam"] = {o.adam_beta1, o.adam_beta2, o.adam_weight_decay, o.adam_epsilon};
  j["seed"] = o.seed;
  j["mixed_precision"] = MixedPrecisionName(o.mixed_precision);
  j["snr_gamma"] = o.snr_gamma;
  j["offset_noise"] = o.offset_noise;
  j["use_ema"] = o.use_ema;
  j["ema_decay"] = o.ema_decay;
  if (o.world_size > 1) j["world_size"] = o.world_size;  // resume needs the same world size
  if (o.lora.enabled) {  // absent for full fine-tunes, so their older resume states still match
    j["lora"] = {{"rank", o.lora.rank},
                 {"alpha", o.lora.Alpha()},
                 {"dropout", o.lora.dropout},
                 {"unet_targets", o.lora.unet_targets},
                 {"text_encoder_targets",
                  o.train_text_encoder ? o.lora.text_encoder_targets : std::vector<std::string>{}},
                 {"learning_rate", o.lora.learning_rate}};
  }
  return j;
}

}  // namespace dreambooth::train
