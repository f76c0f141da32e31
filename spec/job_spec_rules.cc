#include "spec/job_spec_rules.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/status_macros.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "spec/job_spec_defaults.h"

namespace dreambooth::spec {
namespace {

constexpr int kMaxPromptBytes = 1000;
constexpr int kMaxValidationPrompts = 16;

// kResolve fills an unset field with its default; kCheck refuses it (the spec should have been
// resolved already). Both check every bound and conflict the same way.
enum class Mode { kResolve, kCheck };

absl::Status Invalid(const std::string& field, const std::string& expected,
                     const std::string& got) {
  return absl::InvalidArgumentError(absl::StrCat(field, " must be ", expected, ", got ", got));
}

// An optional scalar field of message `Msg`: default (or refusal) when unset, then a range check.
template <typename Msg, typename T>
struct Field {
  Msg* message;
  std::string name;
  bool (Msg::*has)() const;
  T (Msg::*get)() const;
  void (Msg::*set)(T);

  // Applies the default for `mode`; OK when the field is (now) set.
  absl::Status Default(Mode mode, double def) const {
    if ((message->*has)()) return absl::OkStatus();
    if (mode == Mode::kCheck) return UnresolvedFieldError(name);
    (message->*set)(static_cast<T>(def));
    return absl::OkStatus();
  }
  // Integer range [lo, hi].
  absl::Status Int(Mode mode, int64_t def, int64_t lo, int64_t hi) const {
    RETURN_IF_ERROR(Default(mode, static_cast<double>(def)));
    const int64_t v = (message->*get)();
    if (v < lo || v > hi) {
      return Invalid(name, absl::StrCat("in [", lo, ", ", hi, "]"), absl::StrCat(v));
    }
    return absl::OkStatus();
  }
  // Finite real in a range whose ends are open or closed.
  absl::Status Real(Mode mode, double def, double lo, bool lo_open, double hi, bool hi_open) const {
    RETURN_IF_ERROR(Default(mode, def));
    const double v = (message->*get)();
    const bool ok =
        std::isfinite(v) && (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
    if (!ok) {
      return Invalid(name,
                     absl::StrCat("in ", lo_open ? "(" : "[", lo, ", ", hi, hi_open ? ")" : "]"),
                     absl::StrCat(v));
    }
    return absl::OkStatus();
  }
};

template <typename Msg, typename T>
Field<Msg, T> F(Msg* message, const std::string& name, bool (Msg::*has)() const,
                T (Msg::*get)() const, void (Msg::*set)(T)) {
  return Field<Msg, T>{message, name, has, get, set};
}

// An enum field: must be a known value; *_UNSPECIFIED becomes `def` (or is refused).
template <typename E>
absl::Status EnumField(Mode mode, const std::string& name, bool (*is_valid)(int), E value,
                       E unspecified, E def, const std::function<void(E)>& set) {
  if (!is_valid(static_cast<int>(value))) {
    return Invalid(name, "a known value", absl::StrCat(static_cast<int>(value)));
  }
  if (value != unspecified) return absl::OkStatus();
  if (mode == Mode::kCheck) return UnresolvedFieldError(name);
  set(def);
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
  if (name.size() > 128) {
    return Invalid("spec.base_model", "at most 128 bytes", absl::StrCat(name.size()));
  }
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

absl::Status ApplySampler(Mode mode, const std::string& field, v1::SchedulerKind default_scheduler,
                          v1::SamplerSettings* s) {
  using S = v1::SamplerSettings;
  RETURN_IF_ERROR(EnumField<v1::SchedulerKind>(mode, field + ".scheduler",
                                               v1::SchedulerKind_IsValid, s->scheduler(),
                                               v1::SCHEDULER_KIND_UNSPECIFIED, default_scheduler,
                                               [s](v1::SchedulerKind k) { s->set_scheduler(k); }));
  RETURN_IF_ERROR(F(s, field + ".num_inference_steps", &S::has_num_inference_steps,
                    &S::num_inference_steps, &S::set_num_inference_steps)
                      .Int(mode, kNumInferenceSteps, 1, 1000));
  RETURN_IF_ERROR(F(s, field + ".guidance_scale", &S::has_guidance_scale, &S::guidance_scale,
                    &S::set_guidance_scale)
                      .Real(mode, kGuidanceScale, 1.0, false, 100.0, false));
  if (!std::isfinite(s->eta()) || s->eta() < 0 || s->eta() > 1) {
    return Invalid(field + ".eta", "in [0, 1]", absl::StrCat(s->eta()));
  }
  return ValidatePrompt(field + ".negative_prompt", s->negative_prompt(), false);
}

// Every rule of a JobSpec, in the order of job_spec.proto.
// A LoRA target list: empty => `defaults` (or refused when checking); each name among `allowed`,
// no repeats, at most kLoraMaxTargets.
template <size_t kAllowed, size_t kDefaults>
absl::Status ApplyLoraTargets(Mode mode, const std::string& field,
                              const std::array<std::string_view, kAllowed>& allowed,
                              const std::array<std::string_view, kDefaults>& defaults,
                              google::protobuf::RepeatedPtrField<std::string>* names) {
  if (names->empty()) {
    if (mode == Mode::kCheck) return UnresolvedFieldError(field);
    for (std::string_view name : defaults) names->Add(std::string(name));
  }
  if (names->size() > kLoraMaxTargets) {
    return Invalid(field, absl::StrCat("at most ", kLoraMaxTargets, " names"),
                   absl::StrCat(names->size()));
  }
  std::set<std::string> seen;
  for (int i = 0; i < names->size(); ++i) {
    const std::string& name = names->Get(i);
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      std::string list;
      for (std::string_view a : allowed)
        absl::StrAppend(&list, list.empty() ? "" : ", ", std::string(a));
      return Invalid(absl::StrCat(field, "[", i, "]"), absl::StrCat("one of ", list),
                     absl::StrCat("\"", name.substr(0, 64), "\""));
    }
    if (!seen.insert(name).second) {
      return Invalid(absl::StrCat(field, "[", i, "]"), "a name not listed before",
                     absl::StrCat("\"", name, "\" again"));
    }
  }
  return absl::OkStatus();
}

// The lora block (when set): defaults and bounds.
absl::Status ApplyLora(Mode mode, v1::JobSpec* s) {
  if (!s->has_lora()) return absl::OkStatus();
  using L = v1::LoraSpec;
  L* l = s->mutable_lora();
  RETURN_IF_ERROR(F(l, "spec.lora.rank", &L::has_rank, &L::rank, &L::set_rank)
                      .Int(mode, kLoraRank, 1, kLoraMaxRank));
  RETURN_IF_ERROR(F(l, "spec.lora.alpha", &L::has_alpha, &L::alpha, &L::set_alpha)
                      .Real(mode, l->rank(), 0, true, 1e6, false));
  if (!std::isfinite(l->dropout()) || l->dropout() < 0 || l->dropout() >= 1) {
    return Invalid("spec.lora.dropout", "in [0, 1)", absl::StrCat(l->dropout()));
  }
  if (l->dropout() > 0 && s->gradient_checkpointing()) {
    return absl::InvalidArgumentError(
        "spec.lora.dropout must be 0 when spec.gradient_checkpointing is set (the recomputed "
        "forward pass would draw other dropout masks)");
  }
  RETURN_IF_ERROR(ApplyLoraTargets(mode, "spec.lora.target_modules", kLoraUNetTargets,
                                   kLoraDefaultUNetTargets, l->mutable_target_modules()));
  RETURN_IF_ERROR(ApplyLoraTargets(mode, "spec.lora.text_encoder_target_modules",
                                   kLoraTextEncoderTargets, kLoraDefaultTextEncoderTargets,
                                   l->mutable_text_encoder_target_modules()));
  return F(l, "spec.lora.learning_rate", &L::has_learning_rate, &L::learning_rate,
           &L::set_learning_rate)
      .Real(mode, kLoraLearningRate, 0, true, 1, false);
}

absl::Status ApplyJobSpec(Mode mode, v1::JobSpec* s) {
  using S = v1::JobSpec;
  // ---- Model and data ----
  RETURN_IF_ERROR(ValidateModelName(s->base_model()));
  RETURN_IF_ERROR(ValidateSetId("spec.instance_image_set", s->instance_image_set(), true));
  RETURN_IF_ERROR(EnumField<v1::TrainingMode>(
      mode, "spec.training_mode", v1::TrainingMode_IsValid, s->training_mode(),
      v1::TRAINING_MODE_UNSPECIFIED, v1::TRAINING_MODE_DREAMBOOTH,
      [s](v1::TrainingMode v) { s->set_training_mode(v); }));
  // Text-to-image trains every image with its own caption: no instance prompt, no class prior.
  const bool text_to_image = s->training_mode() == v1::TRAINING_MODE_TEXT_TO_IMAGE;
  RETURN_IF_ERROR(ValidatePrompt("spec.instance_prompt", s->instance_prompt(), !text_to_image));
  if (text_to_image && s->with_prior_preservation()) {
    return absl::InvalidArgumentError(
        "spec.with_prior_preservation must be false when spec.training_mode is "
        "TRAINING_MODE_TEXT_TO_IMAGE (every image trains with its own caption; there is no class "
        "prior)");
  }
  // ---- Prior preservation ----
  RETURN_IF_ERROR(F(s, "spec.prior_loss_weight", &S::has_prior_loss_weight, &S::prior_loss_weight,
                    &S::set_prior_loss_weight)
                      .Real(mode, kPriorLossWeight, 0, false, 1000, false));
  RETURN_IF_ERROR(ValidatePrompt("spec.regularization_prompt", s->regularization_prompt(),
                                 s->with_prior_preservation()));
  RETURN_IF_ERROR(
      ValidateSetId("spec.regularization_image_set", s->regularization_image_set(), false));
  RETURN_IF_ERROR(F(s, "spec.num_reg_images", &S::has_num_reg_images, &S::num_reg_images,
                    &S::set_num_reg_images)
                      .Int(mode, kNumRegImages, 1, 10000));
  RETURN_IF_ERROR(F(s, "spec.num_images_per_prompt", &S::has_num_images_per_prompt,
                    &S::num_images_per_prompt, &S::set_num_images_per_prompt)
                      .Int(mode, kNumImagesPerPrompt, 1, 64));
  RETURN_IF_ERROR(
      ApplySampler(mode, "spec.class_sampler", kClassScheduler, s->mutable_class_sampler()));
  // ---- Data pipeline ----
  RETURN_IF_ERROR(F(s, "spec.resolution", &S::has_resolution, &S::resolution, &S::set_resolution)
                      .Int(mode, kResolution, 64, 2048));
  if (s->resolution() % 8 != 0) {
    return Invalid("spec.resolution", "a multiple of 8", absl::StrCat(s->resolution()));
  }
  RETURN_IF_ERROR(
      F(s, "spec.center_crop", &S::has_center_crop, &S::center_crop, &S::set_center_crop)
          .Default(mode, kCenterCrop));
  // The latent cache holds one crop per image: it defaults to on exactly when crops are centred,
  // and asking for both a random crop and cached latents is a conflict, not something to repair.
  RETURN_IF_ERROR(F(s, "spec.use_cached_latents", &S::has_use_cached_latents,
                    &S::use_cached_latents, &S::set_use_cached_latents)
                      .Default(mode, s->center_crop()));
  if (s->use_cached_latents() && !s->center_crop()) {
    return absl::InvalidArgumentError(
        "spec.use_cached_latents requires spec.center_crop (a random crop cannot be cached); "
        "set use_cached_latents to false or center_crop to true");
  }
  // ---- Optimisation ----
  RETURN_IF_ERROR(
      F(s, "spec.learning_rate", &S::has_learning_rate, &S::learning_rate, &S::set_learning_rate)
          .Real(mode, kLearningRate, 0, true, 1, false));
  RETURN_IF_ERROR(ApplyLora(mode, s));
  // The text encoder trains at the UNet's rate unless told otherwise (the adapters' with LoRA).
  RETURN_IF_ERROR(F(s, "spec.text_encoder_learning_rate", &S::has_text_encoder_learning_rate,
                    &S::text_encoder_learning_rate, &S::set_text_encoder_learning_rate)
                      .Real(mode, s->has_lora() ? s->lora().learning_rate() : s->learning_rate(), 0,
                            true, 1, false));
  RETURN_IF_ERROR(F(s, "spec.max_train_steps", &S::has_max_train_steps, &S::max_train_steps,
                    &S::set_max_train_steps)
                      .Int(mode, kMaxTrainSteps, 1, 1000000));
  RETURN_IF_ERROR(EnumField<v1::LrScheduler>(mode, "spec.lr_scheduler", v1::LrScheduler_IsValid,
                                             s->lr_scheduler(), v1::LR_SCHEDULER_UNSPECIFIED,
                                             v1::LR_SCHEDULER_CONSTANT,
                                             [s](v1::LrScheduler v) { s->set_lr_scheduler(v); }));
  RETURN_IF_ERROR(F(s, "spec.lr_warmup_steps", &S::has_lr_warmup_steps, &S::lr_warmup_steps,
                    &S::set_lr_warmup_steps)
                      .Int(mode, kLrWarmupSteps, 0, s->max_train_steps()));
  RETURN_IF_ERROR(
      F(s, "spec.lr_num_cycles", &S::has_lr_num_cycles, &S::lr_num_cycles, &S::set_lr_num_cycles)
          .Int(mode, kLrNumCycles, 1, 10000));
  RETURN_IF_ERROR(F(s, "spec.lr_power", &S::has_lr_power, &S::lr_power, &S::set_lr_power)
                      .Real(mode, kLrPower, 0, true, 100, false));
  RETURN_IF_ERROR(F(s, "spec.train_batch_size", &S::has_train_batch_size, &S::train_batch_size,
                    &S::set_train_batch_size)
                      .Int(mode, kTrainBatchSize, 1, 256));
  RETURN_IF_ERROR(F(s, "spec.gradient_accumulation_steps", &S::has_gradient_accumulation_steps,
                    &S::gradient_accumulation_steps, &S::set_gradient_accumulation_steps)
                      .Int(mode, kGradientAccumulationSteps, 1, 1024));
  RETURN_IF_ERROR(
      F(s, "spec.max_grad_norm", &S::has_max_grad_norm, &S::max_grad_norm, &S::set_max_grad_norm)
          .Real(mode, kMaxGradNorm, 0, true, 1e6, false));
  RETURN_IF_ERROR(F(s, "spec.adam_beta1", &S::has_adam_beta1, &S::adam_beta1, &S::set_adam_beta1)
                      .Real(mode, kAdamBeta1, 0, false, 1, true));
  RETURN_IF_ERROR(F(s, "spec.adam_beta2", &S::has_adam_beta2, &S::adam_beta2, &S::set_adam_beta2)
                      .Real(mode, kAdamBeta2, 0, false, 1, true));
  RETURN_IF_ERROR(F(s, "spec.adam_weight_decay", &S::has_adam_weight_decay, &S::adam_weight_decay,
                    &S::set_adam_weight_decay)
                      .Real(mode, kAdamWeightDecay, 0, false, 10, false));
  RETURN_IF_ERROR(
      F(s, "spec.adam_epsilon", &S::has_adam_epsilon, &S::adam_epsilon, &S::set_adam_epsilon)
          .Real(mode, kAdamEpsilon, 0, true, 1, false));
  if (!s->has_seed()) {
    if (mode == Mode::kCheck) return UnresolvedFieldError("spec.seed");
    s->set_seed(std::stoull(RandomHex(7), nullptr, 16));
  }
  RETURN_IF_ERROR(EnumField<v1::MixedPrecision>(
      mode, "spec.mixed_precision", v1::MixedPrecision_IsValid, s->mixed_precision(),
      v1::MIXED_PRECISION_UNSPECIFIED, v1::MIXED_PRECISION_NO,
      [s](v1::MixedPrecision v) { s->set_mixed_precision(v); }));
  // ---- Checkpoints and validation ----
  // The default is NeMo's 200, or 0 ("only the final checkpoint", the same run) when the run is
  // shorter, so a resolved spec stays in the documented range 0..max_train_steps and resolving
  // it again changes nothing.
  const bool explicit_checkpointing = s->has_checkpointing_steps();
  const int64_t default_checkpointing =
      s->max_train_steps() >= kCheckpointingSteps ? kCheckpointingSteps : 0;
  RETURN_IF_ERROR(F(s, "spec.checkpointing_steps", &S::has_checkpointing_steps,
                    &S::checkpointing_steps, &S::set_checkpointing_steps)
                      .Int(mode, default_checkpointing, 0, 1000000));
  // A value the caller gave must fit the run. (Not checked on resolved specs: those stored
  // before this rule may hold the old default above a shorter run, which means the same.)
  if (explicit_checkpointing && mode != Mode::kCheck &&
      s->checkpointing_steps() > s->max_train_steps()) {
    return Invalid("spec.checkpointing_steps",
                   absl::StrCat("in [0, spec.max_train_steps = ", s->max_train_steps(), "]"),
                   absl::StrCat(s->checkpointing_steps()));
  }
  // Retention, which the server applies at CommitCheckpoint. Specs stored before these fields
  // existed leave them unset, which means the defaults, so a check accepts them unset.
  if (mode != Mode::kCheck || s->has_checkpoints_total_limit()) {
    RETURN_IF_ERROR(F(s, "spec.checkpoints_total_limit", &S::has_checkpoints_total_limit,
                      &S::checkpoints_total_limit, &S::set_checkpoints_total_limit)
                        .Int(mode, kCheckpointsTotalLimit, 1, 1000));
  }
  if (mode != Mode::kCheck || s->has_resume_checkpoints_to_keep()) {
    RETURN_IF_ERROR(F(s, "spec.resume_checkpoints_to_keep", &S::has_resume_checkpoints_to_keep,
                      &S::resume_checkpoints_to_keep, &S::set_resume_checkpoints_to_keep)
                        .Int(mode, kResumeCheckpointsToKeep, 1, 10));
  }
  if (s->validation_prompts_size() > kMaxValidationPrompts) {
    return Invalid("spec.validation_prompts",
                   absl::StrCat("at most ", kMaxValidationPrompts, " prompts"),
                   absl::StrCat(s->validation_prompts_size()));
  }
  for (int i = 0; i < s->validation_prompts_size(); ++i) {
    RETURN_IF_ERROR(ValidatePrompt(absl::StrCat("spec.validation_prompts[", i, "]"),
                                   s->validation_prompts(i), true));
  }
  RETURN_IF_ERROR(F(s, "spec.validation_steps", &S::has_validation_steps, &S::validation_steps,
                    &S::set_validation_steps)
                      .Int(mode, kValidationSteps, 1, 1000000));
  RETURN_IF_ERROR(F(s, "spec.num_validation_images", &S::has_num_validation_images,
                    &S::num_validation_images, &S::set_num_validation_images)
                      .Int(mode, kNumValidationImages, 1, 16));
  RETURN_IF_ERROR(ApplySampler(mode, "spec.validation_sampler", kValidationScheduler,
                               s->mutable_validation_sampler()));
  // ---- Retries ----
  RETURN_IF_ERROR(
      F(s, "spec.max_attempts", &S::has_max_attempts, &S::max_attempts, &S::set_max_attempts)
          .Int(mode, kMaxAttempts, 1, 100));
  RETURN_IF_ERROR(F(s, "spec.max_infra_attempts", &S::has_max_infra_attempts,
                    &S::max_infra_attempts, &S::set_max_infra_attempts)
                      .Int(mode, kMaxInfraAttempts, 1, 1000));
  // ---- Devices, scheduling and memory ----
  // Specs stored before these fields existed leave num_devices unset, which means one device.
  if (mode != Mode::kCheck || s->has_num_devices()) {
    RETURN_IF_ERROR(
        F(s, "spec.num_devices", &S::has_num_devices, &S::num_devices, &S::set_num_devices)
            .Int(mode, kNumDevices, 1, kMaxNumDevices));
  }
  if (mode != Mode::kCheck || s->has_num_nodes()) {
    RETURN_IF_ERROR(F(s, "spec.num_nodes", &S::has_num_nodes, &S::num_nodes, &S::set_num_nodes)
                        .Int(mode, kNumNodes, 1, kMaxNumNodes));
  }
  if (s->priority() < -kMaxPriority || s->priority() > kMaxPriority) {
    return Invalid("spec.priority", absl::StrCat("in [", -kMaxPriority, ", ", kMaxPriority, "]"),
                   absl::StrCat(s->priority()));
  }
  // Stored before the field existed => UNSPECIFIED, which means ADAPT.
  if (mode != Mode::kCheck || s->memory_policy() != v1::MEMORY_POLICY_UNSPECIFIED) {
    RETURN_IF_ERROR(EnumField<v1::MemoryPolicy>(
        mode, "spec.memory_policy", v1::MemoryPolicy_IsValid, s->memory_policy(),
        v1::MEMORY_POLICY_UNSPECIFIED, v1::MEMORY_POLICY_ADAPT,
        [s](v1::MemoryPolicy v) { s->set_memory_policy(v); }));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status UnresolvedFieldError(const std::string& field) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, " is unset; the server resolves every field before a task is leased"));
}

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

absl::Status ResolveSampler(const std::string& field, v1::SchedulerKind default_scheduler,
                            v1::SamplerSettings* sampler) {
  return ApplySampler(Mode::kResolve, field, default_scheduler, sampler);
}

absl::Status CheckResolvedSampler(const std::string& field, const v1::SamplerSettings& sampler) {
  v1::SamplerSettings copy = sampler;
  return ApplySampler(Mode::kCheck, field, v1::SCHEDULER_KIND_UNSPECIFIED, &copy);
}

absl::StatusOr<std::string> NormalizeCaption(const std::string& field, const std::string& caption) {
  std::string trimmed(absl::StripAsciiWhitespace(caption));
  RETURN_IF_ERROR(ValidatePrompt(field, trimmed, false));
  return trimmed;
}

absl::StatusOr<v1::JobSpec> ResolveJobSpec(const v1::JobSpec& spec) {
  v1::JobSpec resolved = spec;
  RETURN_IF_ERROR(ApplyJobSpec(Mode::kResolve, &resolved));
  return resolved;
}

absl::Status CheckResolvedJobSpec(const v1::JobSpec& spec) {
  v1::JobSpec copy = spec;
  return ApplyJobSpec(Mode::kCheck, &copy);
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

}  // namespace dreambooth::spec
