// The rules of a JobSpec: defaults, bounds and conflicts, resolved (server) and checked (worker).
#include "spec/job_spec_rules.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace dreambooth::spec {
namespace {

v1::JobSpec Minimal() {
  v1::JobSpec spec;
  spec.set_base_model("tiny");
  spec.set_instance_image_set("is_0123");
  spec.set_instance_prompt("a photo of sks dog");
  return spec;
}

TEST(JobSpecRules, ResolvesTheDocumentedDefaults) {
  auto spec = ResolveJobSpec(Minimal());
  ASSERT_TRUE(spec.ok()) << spec.status();
  // NeMo's DreamBooth config.
  EXPECT_FALSE(spec->with_prior_preservation());
  EXPECT_FLOAT_EQ(spec->prior_loss_weight(), 0.5f);
  EXPECT_DOUBLE_EQ(spec->learning_rate(), 1e-6);
  EXPECT_EQ(spec->lr_scheduler(), v1::LR_SCHEDULER_CONSTANT);
  EXPECT_EQ(spec->max_train_steps(), 400);
  EXPECT_EQ(spec->checkpointing_steps(), 200);
  EXPECT_EQ(spec->num_images_per_prompt(), 4);
  EXPECT_EQ(spec->num_reg_images(), 10);
  EXPECT_EQ(spec->resolution(), 512);
  EXPECT_TRUE(spec->center_crop());
  EXPECT_TRUE(spec->use_cached_latents());
  EXPECT_EQ(spec->class_sampler().scheduler(), v1::SCHEDULER_KIND_PNDM);
  EXPECT_EQ(spec->class_sampler().num_inference_steps(), 50);
  EXPECT_FLOAT_EQ(spec->class_sampler().guidance_scale(), 7.5f);
  // diffusers defaults where NeMo has none.
  EXPECT_EQ(spec->train_batch_size(), 1);
  EXPECT_EQ(spec->gradient_accumulation_steps(), 1);
  EXPECT_FLOAT_EQ(spec->max_grad_norm(), 1.0f);
  EXPECT_FLOAT_EQ(spec->adam_beta1(), 0.9f);
  EXPECT_FLOAT_EQ(spec->adam_beta2(), 0.999f);
  EXPECT_FLOAT_EQ(spec->adam_weight_decay(), 0.0f);
  EXPECT_FLOAT_EQ(spec->adam_epsilon(), 1e-8f);
  EXPECT_EQ(spec->lr_warmup_steps(), 0);
  EXPECT_EQ(spec->validation_steps(), 100);
  EXPECT_EQ(spec->validation_sampler().scheduler(), v1::SCHEDULER_KIND_DDIM);
  EXPECT_EQ(spec->mixed_precision(), v1::MIXED_PRECISION_NO);
  EXPECT_DOUBLE_EQ(spec->text_encoder_learning_rate(), spec->learning_rate());
  EXPECT_EQ(spec->max_attempts(), 3);
  EXPECT_EQ(spec->max_infra_attempts(), 10);
  EXPECT_TRUE(spec->has_seed());
  EXPECT_EQ(spec->training_mode(), v1::TRAINING_MODE_DREAMBOOTH);
  // Devices, scheduling and memory.
  EXPECT_EQ(spec->num_devices(), 1);
  EXPECT_EQ(spec->priority(), 0);
  EXPECT_EQ(spec->memory_policy(), v1::MEMORY_POLICY_ADAPT);
}

TEST(JobSpecRules, AShortRunDefaultsToOnlyTheFinalCheckpointAndResolvesToItself) {
  v1::JobSpec in = Minimal();
  in.set_max_train_steps(10);
  auto spec = ResolveJobSpec(in);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->checkpointing_steps(), 0);  // NeMo's 200 is past the run
  // A resolved spec sent back (e.g. a job cloned from Job.spec) resolves to itself.
  auto again = ResolveJobSpec(*spec);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->SerializeAsString(), spec->SerializeAsString());
  EXPECT_TRUE(CheckResolvedJobSpec(*spec).ok());
}

TEST(JobSpecRules, KeepsExplicitValues) {
  v1::JobSpec in = Minimal();
  in.set_center_crop(false);  // cached latents then default to off
  in.set_prior_loss_weight(1.0f);
  in.set_seed(1234);
  in.set_max_train_steps(50);
  in.set_checkpointing_steps(0);
  auto spec = ResolveJobSpec(in);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_FALSE(spec->center_crop());
  EXPECT_FALSE(spec->use_cached_latents());
  EXPECT_FLOAT_EQ(spec->prior_loss_weight(), 1.0f);
  EXPECT_EQ(spec->seed(), 1234u);
  EXPECT_EQ(spec->max_train_steps(), 50);
  EXPECT_EQ(spec->checkpointing_steps(), 0);
}

TEST(JobSpecRules, NamesTheOffendingField) {
  struct Case {
    std::function<void(v1::JobSpec*)> edit;
    std::string message;
  };
  const Case cases[] = {
      {[](auto* s) { s->clear_instance_image_set(); }, "spec.instance_image_set is required"},
      {[](auto* s) { s->set_instance_image_set("job_1"); }, "spec.instance_image_set 'job_1'"},
      {[](auto* s) { s->set_instance_prompt(std::string(1001, 'a')); },
       "spec.instance_prompt must be at most 1000 bytes"},
      {[](auto* s) { s->set_instance_prompt("bad \xff utf8"); }, "spec.instance_prompt"},
      {[](auto* s) { s->set_prior_loss_weight(-1); }, "spec.prior_loss_weight"},
      {[](auto* s) { s->set_num_reg_images(0); }, "spec.num_reg_images"},
      {[](auto* s) { s->set_resolution(4096); }, "spec.resolution must be in [64, 2048]"},
      {[](auto* s) { s->set_train_batch_size(0); }, "spec.train_batch_size"},
      {[](auto* s) { s->set_adam_beta1(1.0f); }, "spec.adam_beta1"},
      {[](auto* s) { s->set_max_grad_norm(0); }, "spec.max_grad_norm"},
      {[](auto* s) { s->set_learning_rate(std::nan("")); }, "spec.learning_rate"},
      {[](auto* s) { s->add_validation_prompts(""); }, "spec.validation_prompts[0] is required"},
      {[](auto* s) { s->mutable_validation_sampler()->set_num_inference_steps(0); },
       "spec.validation_sampler.num_inference_steps"},
      {[](auto* s) { s->set_mixed_precision(static_cast<v1::MixedPrecision>(9)); },
       "spec.mixed_precision"},
      {[](auto* s) { s->set_max_attempts(0); }, "spec.max_attempts"},
      {[](auto* s) {
         s->set_max_train_steps(1000);
         s->set_checkpointing_steps(1001);
       },
       "spec.checkpointing_steps must be in [0, spec.max_train_steps = 1000], got 1001"},
      {[](auto* s) { s->set_training_mode(static_cast<v1::TrainingMode>(7)); },
       "spec.training_mode must be a known value, got 7"},
      {[](auto* s) {
         s->set_center_crop(false);
         s->set_use_cached_latents(true);
       },
       "spec.use_cached_latents requires spec.center_crop"},
      {[](auto* s) { s->set_num_devices(0); }, "spec.num_devices must be in [1, 64], got 0"},
      {[](auto* s) { s->set_num_devices(65); }, "spec.num_devices must be in [1, 64], got 65"},
      {[](auto* s) { s->set_priority(1001); }, "spec.priority must be in [-1000, 1000], got 1001"},
      {[](auto* s) { s->set_memory_policy(static_cast<v1::MemoryPolicy>(5)); },
       "spec.memory_policy must be a known value, got 5"},
  };
  for (const Case& c : cases) {
    v1::JobSpec spec = Minimal();
    c.edit(&spec);
    auto result = ResolveJobSpec(spec);
    ASSERT_FALSE(result.ok()) << c.message;
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(result.status().message().find(c.message), std::string::npos)
        << result.status().message();
  }
}

TEST(JobSpecRules, AResolvedSpecPassesTheCheck) {
  absl::StatusOr<v1::JobSpec> resolved = ResolveJobSpec(Minimal());
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_TRUE(CheckResolvedJobSpec(*resolved).ok()) << CheckResolvedJobSpec(*resolved);
  // Resolving is idempotent: nothing left to default, the seed is kept.
  absl::StatusOr<v1::JobSpec> again = ResolveJobSpec(*resolved);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->SerializeAsString(), resolved->SerializeAsString());
}

TEST(JobSpecRules, TheCheckRefusesWhatItWouldHaveToDefault) {
  const v1::JobSpec resolved = *ResolveJobSpec(Minimal());
  const std::vector<std::pair<std::function<void(v1::JobSpec*)>, std::string>> edits = {
      {[](v1::JobSpec* s) { s->clear_resolution(); }, "spec.resolution is unset"},
      {[](v1::JobSpec* s) { s->clear_seed(); }, "spec.seed is unset"},
      {[](v1::JobSpec* s) { s->clear_use_cached_latents(); }, "spec.use_cached_latents is unset"},
      {[](v1::JobSpec* s) { s->set_lr_scheduler(v1::LR_SCHEDULER_UNSPECIFIED); },
       "spec.lr_scheduler is unset"},
      {[](v1::JobSpec* s) { s->set_training_mode(v1::TRAINING_MODE_UNSPECIFIED); },
       "spec.training_mode is unset"},
      {[](v1::JobSpec* s) { s->mutable_class_sampler()->clear_guidance_scale(); },
       "spec.class_sampler.guidance_scale is unset"},
      {[](v1::JobSpec* s) { s->set_resolution(4096); }, "spec.resolution must be in [64, 2048]"},
  };
  for (const auto& [edit, message] : edits) {
    v1::JobSpec spec = resolved;
    edit(&spec);
    const absl::Status status = CheckResolvedJobSpec(spec);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << message;
    EXPECT_NE(status.message().find(message), std::string::npos) << status.message();
  }
}

TEST(JobSpecRules, TextToImageNeedsNoInstancePromptAndResolvesAndChecks) {
  v1::JobSpec in = Minimal();
  in.clear_instance_prompt();
  in.set_training_mode(v1::TRAINING_MODE_TEXT_TO_IMAGE);
  absl::StatusOr<v1::JobSpec> resolved = ResolveJobSpec(in);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->training_mode(), v1::TRAINING_MODE_TEXT_TO_IMAGE);
  EXPECT_EQ(resolved->instance_prompt(), "");
  EXPECT_TRUE(CheckResolvedJobSpec(*resolved).ok()) << CheckResolvedJobSpec(*resolved);
  // An explicit DreamBooth mode is kept, and still needs its instance prompt.
  in.set_training_mode(v1::TRAINING_MODE_DREAMBOOTH);
  EXPECT_EQ(ResolveJobSpec(in).status().message(), "spec.instance_prompt is required");
  // A prompt given in text-to-image mode is still bounded.
  in.set_training_mode(v1::TRAINING_MODE_TEXT_TO_IMAGE);
  in.set_instance_prompt(std::string(1001, 'a'));
  EXPECT_EQ(ResolveJobSpec(in).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(JobSpecRules, TextToImageWithPriorPreservationNamesBothFields) {
  const auto conflict = [](v1::JobSpec* s) {
    s->set_training_mode(v1::TRAINING_MODE_TEXT_TO_IMAGE);
    s->set_with_prior_preservation(true);
    s->set_regularization_prompt("a photo of a dog");
  };
  v1::JobSpec submitted = Minimal();
  conflict(&submitted);
  v1::JobSpec leased = *ResolveJobSpec(Minimal());
  conflict(&leased);
  for (const absl::Status& status :
       {ResolveJobSpec(submitted).status(), CheckResolvedJobSpec(leased)}) {
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(status.message().find("spec.with_prior_preservation"), std::string::npos) << status;
    EXPECT_NE(status.message().find("spec.training_mode"), std::string::npos) << status;
  }
}

TEST(JobSpecRules, CaptionsAreTrimmedAndBoundedLikePrompts) {
  EXPECT_EQ(*NormalizeCaption("file.caption", "  a red toy\n"), "a red toy");
  EXPECT_EQ(*NormalizeCaption("file.caption", " \t\n"), "");
  EXPECT_EQ(*NormalizeCaption("file.caption", ""), "");
  EXPECT_EQ(NormalizeCaption("file.caption", std::string(1000, 'c'))->size(), 1000u);
  const std::pair<std::string, std::string> bad[] = {
      {std::string(1001, 'c'), "file.caption must be at most 1000 bytes, got 1001 bytes"},
      {std::string("a\0b", 3), "file.caption must be valid UTF-8 without NUL"},
      {"bad \xff utf8", "file.caption must be valid UTF-8 without NUL"},
  };
  for (const auto& [caption, message] : bad) {
    absl::StatusOr<std::string> result = NormalizeCaption("file.caption", caption);
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << message;
    EXPECT_EQ(result.status().message(), message);
  }
}

TEST(JobSpecRules, FingerprintIsStableAndBodySensitive) {
  const v1::JobSpec a = Minimal();
  v1::JobSpec b = Minimal();
  EXPECT_EQ(SpecFingerprint(a), SpecFingerprint(b));
  b.set_max_train_steps(401);
  EXPECT_NE(SpecFingerprint(a), SpecFingerprint(b));
  // The mode is part of the body: the same request_id with another mode is another request.
  v1::JobSpec c = Minimal();
  c.set_training_mode(v1::TRAINING_MODE_TEXT_TO_IMAGE);
  EXPECT_NE(SpecFingerprint(a), SpecFingerprint(c));
}

}  // namespace
}  // namespace dreambooth::spec
