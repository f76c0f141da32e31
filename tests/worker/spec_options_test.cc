#include "worker/spec_options.h"

#include <gtest/gtest.h>

#include "spec/job_spec_rules.h"

namespace dreambooth::worker {
namespace {

v1::JobSpec FullSpec() {
  v1::JobSpec spec;
  spec.set_base_model("tiny");
  spec.set_instance_image_set("is_1");
  spec.set_instance_prompt("a photo of sks dog");
  spec.set_with_prior_preservation(true);
  spec.set_prior_loss_weight(0.75f);
  spec.set_regularization_prompt("a photo of a dog");
  spec.set_num_reg_images(6);
  spec.set_num_images_per_prompt(3);
  spec.mutable_class_sampler()->set_scheduler(v1::SCHEDULER_KIND_EULER);
  spec.mutable_class_sampler()->set_num_inference_steps(7);
  spec.mutable_class_sampler()->set_guidance_scale(5.0f);
  spec.mutable_class_sampler()->set_negative_prompt("blurry");
  spec.set_resolution(64);
  spec.set_center_crop(true);
  spec.set_random_flip(true);
  spec.set_use_cached_latents(true);
  spec.set_train_text_encoder(true);
  spec.set_text_encoder_learning_rate(2e-6);
  spec.set_max_train_steps(12);
  spec.set_learning_rate(5e-6);
  spec.set_lr_scheduler(v1::LR_SCHEDULER_COSINE);
  spec.set_lr_warmup_steps(2);
  spec.set_lr_num_cycles(1);
  spec.set_lr_power(1.0f);
  spec.set_train_batch_size(2);
  spec.set_gradient_accumulation_steps(3);
  spec.set_max_grad_norm(0.5f);
  spec.set_adam_beta1(0.8f);
  spec.set_adam_beta2(0.99f);
  spec.set_adam_weight_decay(0.01f);
  spec.set_adam_epsilon(1e-7f);
  spec.set_seed(42);
  spec.set_mixed_precision(v1::MIXED_PRECISION_BF16);
  spec.set_gradient_checkpointing(true);
  spec.set_checkpointing_steps(4);
  spec.add_validation_prompts("a photo of sks dog on a beach");
  spec.set_validation_steps(6);
  spec.set_num_validation_images(2);
  spec.set_max_attempts(3);
  spec.set_max_infra_attempts(10);
  return *spec::ResolveJobSpec(spec);  // the validation sampler takes the rules' defaults
}

TaskPaths Paths() {
  TaskPaths p;
  p.base_model = "tiny";
  p.instance_dir = "/w/instance";
  p.class_dir = "/w/class";
  p.output_dir = "/w/out";
  p.class_cache_dir = "/w/classcache";
  p.latent_cache_dir = "/w/latents";
  return p;
}

TEST(SpecOptionsTest, MapsEveryField) {
  std::vector<std::string> warnings;
  absl::StatusOr<train::TrainOptions> o = ToTrainOptions(FullSpec(), Paths(), &warnings);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->mode, train::TrainingMode::kDreamBooth);  // UNSPECIFIED resolves to DreamBooth
  EXPECT_EQ(o->base_model, "tiny");
  EXPECT_EQ(o->instance_dir, "/w/instance");
  EXPECT_EQ(o->instance_prompt, "a photo of sks dog");
  EXPECT_TRUE(o->with_prior_preservation);
  EXPECT_FLOAT_EQ(o->prior_loss_weight, 0.75);
  EXPECT_EQ(o->class_prompt, "a photo of a dog");
  EXPECT_EQ(o->class_dir, "/w/class");
  EXPECT_EQ(o->num_class_images, 6);
  EXPECT_EQ(o->num_images_per_prompt, 3);
  EXPECT_EQ(o->class_sampler.scheduler, "euler");
  EXPECT_EQ(o->class_sampler.num_inference_steps, 7);
  EXPECT_DOUBLE_EQ(o->class_sampler.guidance_scale, 5.0);
  EXPECT_EQ(o->class_sampler.negative_prompt, "blurry");
  EXPECT_EQ(o->class_cache_dir, "/w/classcache");
  EXPECT_EQ(o->resolution, 64);
  EXPECT_TRUE(o->center_crop);
  EXPECT_TRUE(o->random_flip);
  EXPECT_TRUE(o->use_cached_latents);
  EXPECT_EQ(o->latent_cache_dir, "/w/latents");
  EXPECT_TRUE(o->train_text_encoder);
  EXPECT_DOUBLE_EQ(o->text_encoder_learning_rate, 2e-6);
  EXPECT_EQ(o->max_train_steps, 12);
  EXPECT_DOUBLE_EQ(o->learning_rate, 5e-6);
  EXPECT_EQ(o->lr_scheduler, train::LrScheduleType::kCosine);
  EXPECT_EQ(o->lr_warmup_steps, 2);
  EXPECT_EQ(o->train_batch_size, 2);
  EXPECT_EQ(o->gradient_accumulation_steps, 3);
  EXPECT_FLOAT_EQ(o->max_grad_norm, 0.5);
  EXPECT_FLOAT_EQ(o->adam_beta1, 0.8);
  EXPECT_FLOAT_EQ(o->adam_beta2, 0.99);
  EXPECT_FLOAT_EQ(o->adam_weight_decay, 0.01);
  EXPECT_FLOAT_EQ(o->adam_epsilon, 1e-7);
  EXPECT_EQ(o->seed, 42u);
  EXPECT_EQ(o->mixed_precision, train::MixedPrecision::kBf16);
  EXPECT_TRUE(o->gradient_checkpointing);
  EXPECT_EQ(o->output_dir, "/w/out");
  EXPECT_EQ(o->checkpointing_steps, 4);
  ASSERT_EQ(o->validation_prompts.size(), 1u);
  EXPECT_EQ(o->validation_steps, 6);
  EXPECT_EQ(o->num_validation_images, 2);
  // Validation sampler unset => DDIM, 50 steps, guidance 7.5.
  EXPECT_EQ(o->validation_sampler.scheduler, "ddim");
  EXPECT_EQ(o->validation_sampler.num_inference_steps, 50);
  EXPECT_DOUBLE_EQ(o->validation_sampler.guidance_scale, 7.5);
  EXPECT_TRUE(warnings.empty());
}

TEST(SpecOptionsTest, ServerDefaultsReachTheTrainerUnchanged) {
  v1::JobSpec minimal;
  minimal.set_base_model("tiny");
  minimal.set_instance_image_set("is_1");
  minimal.set_instance_prompt("a photo of sks dog");
  minimal.set_center_crop(false);  // => no cached latents
  absl::StatusOr<v1::JobSpec> resolved = spec::ResolveJobSpec(minimal);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  std::vector<std::string> warnings;
  absl::StatusOr<train::TrainOptions> o = ToTrainOptions(*resolved, Paths(), &warnings);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->class_sampler.scheduler, "pndm");
  EXPECT_EQ(o->validation_sampler.scheduler, "ddim");
  EXPECT_FALSE(o->use_cached_latents);
  EXPECT_EQ(o->resolution, resolved->resolution());
  EXPECT_EQ(o->seed, resolved->seed());
  EXPECT_TRUE(warnings.empty());
}

TEST(SpecOptionsTest, TextToImageModeReachesTheTrainerWithoutAnInstancePrompt) {
  v1::JobSpec t2i;
  t2i.set_base_model("tiny");
  t2i.set_instance_image_set("is_1");
  t2i.set_training_mode(v1::TRAINING_MODE_TEXT_TO_IMAGE);
  absl::StatusOr<v1::JobSpec> resolved = spec::ResolveJobSpec(t2i);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  absl::StatusOr<train::TrainOptions> o = ToTrainOptions(*resolved, Paths(), nullptr);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->mode, train::TrainingMode::kTextToImage);
  EXPECT_EQ(o->instance_prompt, "");
  EXPECT_FALSE(o->with_prior_preservation);
  // An unresolved mode is refused, not defaulted.
  resolved->set_training_mode(v1::TRAINING_MODE_UNSPECIFIED);
  o = ToTrainOptions(*resolved, Paths(), nullptr);
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(o.status().message().find("spec.training_mode is unset"), std::string::npos)
      << o.status();
  // Prior preservation in text-to-image mode is a conflict the worker refuses too.
  v1::JobSpec prior = FullSpec();
  prior.set_training_mode(v1::TRAINING_MODE_TEXT_TO_IMAGE);
  o = ToTrainOptions(prior, Paths(), nullptr);
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(o.status().message().find("spec.with_prior_preservation"), std::string::npos)
      << o.status();
}

TEST(SpecOptionsTest, AConflictIsRefusedNotRepaired) {
  v1::JobSpec spec = FullSpec();
  spec.set_center_crop(false);  // with use_cached_latents=true
  absl::StatusOr<train::TrainOptions> o = ToTrainOptions(spec, Paths(), nullptr);
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(o.status().message().find("spec.use_cached_latents requires spec.center_crop"),
            std::string::npos)
      << o.status();
}

TEST(SpecOptionsTest, UnresolvedFieldsAreRefused) {
  v1::JobSpec spec = FullSpec();
  spec.mutable_class_sampler()->set_scheduler(v1::SCHEDULER_KIND_UNSPECIFIED);
  absl::StatusOr<train::TrainOptions> o = ToTrainOptions(spec, Paths(), nullptr);
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(o.status().message().find("spec.class_sampler.scheduler is unset"), std::string::npos)
      << o.status();
}

TEST(SpecOptionsTest, UnresolvedSeedIsRefused) {
  v1::JobSpec spec = FullSpec();
  spec.clear_seed();
  absl::StatusOr<train::TrainOptions> o = ToTrainOptions(spec, Paths(), nullptr);
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(o.status().message().find("spec.seed"), std::string::npos);
}

}  // namespace
}  // namespace dreambooth::worker
