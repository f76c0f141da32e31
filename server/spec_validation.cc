#include "server/spec_validation.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/status_macros.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace dreambooth::server {
namespace {

constexpr int kMaxPromptBytes = 1000;

absl::Status Invalid(const std::string& field, const std::string& expected,
                     const std::string& got) {
  return absl::InvalidArgumentError(absl::StrCat(field, " must be ", expected, ", got ", got));
}

// Resolves an optional int32 field in place: default when unset, then a range check.
template <typename Msg, typename Has, typename Get, typename Set>
absl::Status IntField(Msg* m, const char* name, Has has, Get get, Set set, int64_t def, int64_t lo,
                      int64_t hi) {
  if (!(m->*has)()) (m->*set)(static_cast<decltype((m->*get)())>(def));
  const int64_t v = (m->*get)();
  if (v < lo || v > hi) {
    return Invalid(absl::StrCat("spec.", name), absl::StrCat("in [", lo, ", ", hi, "]"),
                   absl::StrCat(v));
  }
  return absl::OkStatus();
}

// Same for floating-point fields; `lo_open` excludes the lower bound.
template <typename Msg, typename Has, typename Get, typename Set>
absl::Status RealField(Msg* m, const std::string& field, Has has, Get get, Set set, double def,
                       double lo, bool lo_open, double hi, bool hi_open) {
  if (!(m->*has)()) (m->*set)(static_cast<decltype((m->*get)())>(def));
  const double v = (m->*get)();
  const bool ok = std::isfinite(v) && (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  if (!ok) {
    return Invalid(field,
                   absl::StrCat("in ", lo_open ? "(" : "[", lo, ", ", hi, hi_open ? ")" : "]"),
                   absl::StrCat(v));
  }
  return absl::OkStatus();
}

bool IsValidUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = s[i];
    int extra = -1;
    if (c < 0x80) {
      extra = 0;
    } else if ((c >> 5) == 0x6) {
      extra = 1;
    } else if ((c >> 4) == 0xE) {
      extra = 2;
    } else if ((c >> 3) == 0x1E) {
      extra = 3;
    }
    if (extra < 0 || i + extra >= s.size() + (extra == 0 ? 1 : 0)) return false;
    for (int k = 1; k <= extra; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    }
    i += extra + 1;
  }
  return true;
}

absl::Status ValidateModelName(const std::string& name) {
  if (name.empty()) return absl::InvalidArgumentError("spec.base_model is required");
  if (name.size() > 128)
    return Invalid("spec.base_model", "at most 128 bytes", absl::StrCat(name.size()));
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    if (!ok || name == "." || name == "..") {
      return absl::InvalidArgumentError(absl::StrCat(
          "spec.base_model '", name, "' may only contain letters, digits, '-', '_' and '.'"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateSetId(const std::string& field, const std::string& id, bool required) {
  if (id.empty()) {
    if (required) return absl::InvalidArgumentError(absl::StrCat(field, " is required"));
    return absl::OkStatus();
  }
  if (id.size() > 64 || id.rfind("is_", 0) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " '", id.substr(0, 64), "' is not an image set id (is_...)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidatePrompt(const std::string& field, const std::string& prompt, bool required) {
  if (prompt.empty()) {
    return required ? absl::InvalidArgumentError(absl::StrCat(field, " is required"))
                    : absl::OkStatus();
  }
  if (prompt.size() > kMaxPromptBytes) {
    return Invalid(field, absl::StrCat("at most ", kMaxPromptBytes, " bytes"),
                   absl::StrCat(prompt.size(), " bytes"));
  }
  if (std::memchr(prompt.data(), '\0', prompt.size()) != nullptr || !IsValidUtf8(prompt)) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must be valid UTF-8 without NUL"));
  }
  return absl::OkStatus();
}

absl::Status ValidateAndResolveSampler(const std::string& field,
                                       v1::SchedulerKind default_scheduler,
                                       v1::SamplerSettings* s) {
  if (!v1::SchedulerKind_IsValid(s->scheduler())) {
    return Invalid(field + ".scheduler", "a known SchedulerKind", absl::StrCat(s->scheduler()));
  }
  if (s->scheduler() == v1::SCHEDULER_KIND_UNSPECIFIED) s->set_scheduler(default_scheduler);
  if (!s->has_num_inference_steps()) s->set_num_inference_steps(50);
  if (s->num_inference_steps() < 1 || s->num_inference_steps() > 1000) {
    return Invalid(field + ".num_inference_steps", "in [1, 1000]",
                   absl::StrCat(s->num_inference_steps()));
  }
  RETURN_IF_ERROR(RealField(s, field + ".guidance_scale", &v1::SamplerSettings::has_guidance_scale,
                            &v1::SamplerSettings::guidance_scale,
                            &v1::SamplerSettings::set_guidance_scale, 7.5, 1.0, false, 100.0,
                            false));
  if (!std::isfinite(s->eta()) || s->eta() < 0 || s->eta() > 1) {
    return Invalid(field + ".eta", "in [0, 1]", absl::StrCat(s->eta()));
  }
  return ValidatePrompt(field + ".negative_prompt", s->negative_prompt(), false);
}

absl::StatusOr<v1::JobSpec> ValidateAndResolveSpec(const v1::JobSpec& in) {
  using S = v1::JobSpec;
  S s = in;
  RETURN_IF_ERROR(ValidateModelName(s.base_model()));
  RETURN_IF_ERROR(ValidateSetId("spec.instance_image_set", s.instance_image_set(), true));
  RETURN_IF_ERROR(ValidatePrompt("spec.instance_prompt", s.instance_prompt(), true));

  RETURN_IF_ERROR(RealField(&s, "spec.prior_loss_weight", &S::has_prior_loss_weight,
                            &S::prior_loss_weight, &S::set_prior_loss_weight, 0.5, 0, false, 1000,
                            false));
  RETURN_IF_ERROR(ValidatePrompt("spec.regularization_prompt", s.regularization_prompt(),
                                 s.with_prior_preservation()));
  RETURN_IF_ERROR(
      ValidateSetId("spec.regularization_image_set", s.regularization_image_set(), false));
  RETURN_IF_ERROR(IntField(&s, "num_reg_images", &S::has_num_reg_images, &S::num_reg_images,
                           &S::set_num_reg_images, 10, 1, 10000));
  RETURN_IF_ERROR(IntField(&s, "num_images_per_prompt", &S::has_num_images_per_prompt,
                           &S::num_images_per_prompt, &S::set_num_images_per_prompt, 4, 1, 64));
  RETURN_IF_ERROR(ValidateAndResolveSampler("spec.class_sampler", v1::SCHEDULER_KIND_PNDM,
                                            s.mutable_class_sampler()));

  RETURN_IF_ERROR(IntField(&s, "resolution", &S::has_resolution, &S::resolution, &S::set_resolution,
                           512, 64, 2048));
  if (s.resolution() % 8 != 0) {
    return Invalid("spec.resolution", "a multiple of 8", absl::StrCat(s.resolution()));
  }
  if (!s.has_center_crop()) s.set_center_crop(true);
  if (!s.has_use_cached_latents()) s.set_use_cached_latents(true);

  RETURN_IF_ERROR(RealField(&s, "spec.learning_rate", &S::has_learning_rate, &S::learning_rate,
                            &S::set_learning_rate, 1e-6, 0, true, 1, false));
  RETURN_IF_ERROR(RealField(&s, "spec.text_encoder_learning_rate",
                            &S::has_text_encoder_learning_rate, &S::text_encoder_learning_rate,
                            &S::set_text_encoder_learning_rate, s.learning_rate(), 0, true, 1,
                            false));
  RETURN_IF_ERROR(IntField(&s, "max_train_steps", &S::has_max_train_steps, &S::max_train_steps,
                           &S::set_max_train_steps, 400, 1, 1000000));
  if (!v1::LrScheduler_IsValid(s.lr_scheduler())) {
    return Invalid("spec.lr_scheduler", "a known LrScheduler", absl::StrCat(s.lr_scheduler()));
  }
  if (s.lr_scheduler() == v1::LR_SCHEDULER_UNSPECIFIED) {
    s.set_lr_scheduler(v1::LR_SCHEDULER_CONSTANT);
  }
  RETURN_IF_ERROR(IntField(&s, "lr_warmup_steps", &S::has_lr_warmup_steps, &S::lr_warmup_steps,
                           &S::set_lr_warmup_steps, 0, 0, s.max_train_steps()));
  RETURN_IF_ERROR(IntField(&s, "lr_num_cycles", &S::has_lr_num_cycles, &S::lr_num_cycles,
                           &S::set_lr_num_cycles, 1, 1, 10000));
  RETURN_IF_ERROR(RealField(&s, "spec.lr_power", &S::has_lr_power, &S::lr_power, &S::set_lr_power,
                            1.0, 0, true, 100, false));
  RETURN_IF_ERROR(IntField(&s, "train_batch_size", &S::has_train_batch_size, &S::train_batch_size,
                           &S::set_train_batch_size, 1, 1, 256));
  RETURN_IF_ERROR(IntField(&s, "gradient_accumulation_steps", &S::has_gradient_accumulation_steps,
                           &S::gradient_accumulation_steps, &S::set_gradient_accumulation_steps, 1,
                           1, 1024));
  RETURN_IF_ERROR(RealField(&s, "spec.max_grad_norm", &S::has_max_grad_norm, &S::max_grad_norm,
                            &S::set_max_grad_norm, 1.0, 0, true, 1e6, false));
  RETURN_IF_ERROR(RealField(&s, "spec.adam_beta1", &S::has_adam_beta1, &S::adam_beta1,
                            &S::set_adam_beta1, 0.9, 0, false, 1, true));
  RETURN_IF_ERROR(RealField(&s, "spec.adam_beta2", &S::has_adam_beta2, &S::adam_beta2,
                            &S::set_adam_beta2, 0.999, 0, false, 1, true));
  RETURN_IF_ERROR(RealField(&s, "spec.adam_weight_decay", &S::has_adam_weight_decay,
                            &S::adam_weight_decay, &S::set_adam_weight_decay, 0.0, 0, false, 10,
                            false));
  RETURN_IF_ERROR(RealField(&s, "spec.adam_epsilon", &S::has_adam_epsilon, &S::adam_epsilon,
                            &S::set_adam_epsilon, 1e-8, 0, true, 1, false));
  if (!s.has_seed()) s.set_seed(std::stoull(RandomHex(7), nullptr, 16));
  if (!v1::MixedPrecision_IsValid(s.mixed_precision())) {
    return Invalid("spec.mixed_precision", "a known MixedPrecision",
                   absl::StrCat(s.mixed_precision()));
  }
  if (s.mixed_precision() == v1::MIXED_PRECISION_UNSPECIFIED) {
    s.set_mixed_precision(v1::MIXED_PRECISION_NO);
  }

  RETURN_IF_ERROR(IntField(&s, "checkpointing_steps", &S::has_checkpointing_steps,
                           &S::checkpointing_steps, &S::set_checkpointing_steps, 200, 0, 1000000));
  if (s.validation_prompts_size() > 16) {
    return Invalid("spec.validation_prompts", "at most 16 prompts",
                   absl::StrCat(s.validation_prompts_size()));
  }
  for (int i = 0; i < s.validation_prompts_size(); ++i) {
    RETURN_IF_ERROR(ValidatePrompt(absl::StrCat("spec.validation_prompts[", i, "]"),
                                   s.validation_prompts(i), true));
  }
  RETURN_IF_ERROR(IntField(&s, "validation_steps", &S::has_validation_steps, &S::validation_steps,
                           &S::set_validation_steps, 100, 1, 1000000));
  RETURN_IF_ERROR(IntField(&s, "num_validation_images", &S::has_num_validation_images,
                           &S::num_validation_images, &S::set_num_validation_images, 1, 1, 16));
  RETURN_IF_ERROR(ValidateAndResolveSampler("spec.validation_sampler", v1::SCHEDULER_KIND_DDIM,
                                            s.mutable_validation_sampler()));
  RETURN_IF_ERROR(IntField(&s, "max_attempts", &S::has_max_attempts, &S::max_attempts,
                           &S::set_max_attempts, 3, 1, 100));
  RETURN_IF_ERROR(IntField(&s, "max_infra_attempts", &S::has_max_infra_attempts,
                           &S::max_infra_attempts, &S::set_max_infra_attempts, 10, 1, 1000));
  return s;
}

std::string SpecFingerprint(const v1::JobSpec& spec) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    spec.SerializeToCodedStream(&coded);
  }
  return Sha256Hex(bytes);
}

}  // namespace dreambooth::server
