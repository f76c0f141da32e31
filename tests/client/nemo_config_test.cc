// client/nemo_config.h: NeMo DreamBooth YAML (tests/data/nemo/) mapped onto a JobSpec, field by
// field, with every key it cannot map listed with its reason, and the errors that name the NeMo
// key of a bad value.
#include "client/nemo_config.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

#ifndef DB_SOURCE_DIR
#define DB_SOURCE_DIR "."
#endif

namespace dreambooth::client {
namespace {

std::string DataPath(const std::string& name) {
  return absl::StrCat(DB_SOURCE_DIR, "/tests/data/nemo/", name);
}

// key -> reason, for lookups; the mapping's list keeps the file's order.
std::map<std::string, std::string> Reasons(const NemoMapping& mapping) {
  std::map<std::string, std::string> reasons;
  for (const NemoUnmappedKey& key : mapping.unmapped) reasons[key.key] = key.reason;
  return reasons;
}

TEST(NemoConfigTest, FullConfigMapsEveryFieldWithAnEquivalent) {
  absl::StatusOr<NemoMapping> mapping = LoadNemoConfig(DataPath("dreambooth_full.yaml"));
  ASSERT_TRUE(mapping.ok()) << mapping.status();
  const v1::JobSpec& s = mapping->spec;
  EXPECT_EQ(s.num_devices(), 2);                             // trainer.devices
  EXPECT_EQ(s.num_nodes(), 1);                               // trainer.num_nodes
  EXPECT_EQ(s.mixed_precision(), v1::MIXED_PRECISION_FP16);  // trainer.precision 16-mixed
  EXPECT_EQ(s.max_train_steps(), 800);                       // trainer.max_steps
  EXPECT_FLOAT_EQ(s.max_grad_norm(), 0.5f);                  // trainer.gradient_clip_val
  EXPECT_EQ(s.checkpointing_steps(), 100);                   // every_n_train_steps
  EXPECT_EQ(s.train_batch_size(), 2);                        // model.micro_batch_size
  EXPECT_EQ(s.gradient_accumulation_steps(), 2);             // global 8 / (2 x 2 x 1)
  EXPECT_TRUE(s.with_prior_preservation());                  // model.with_prior_preservation
  ASSERT_TRUE(s.has_use_cached_latents());                   // model.use_cached_latents
  EXPECT_FALSE(s.use_cached_latents());
  EXPECT_FLOAT_EQ(s.prior_loss_weight(), 0.75f);                       // model.prior_loss_weight
  EXPECT_TRUE(s.train_text_encoder());                                 // model.train_text_encoder
  EXPECT_TRUE(s.gradient_checkpointing());                             // unet_config.use_checkpoint
  EXPECT_EQ(s.seed(), 4321u);                                          // model.seed
  EXPECT_DOUBLE_EQ(s.learning_rate(), 2e-6);                           // model.optim.lr
  EXPECT_FLOAT_EQ(s.adam_weight_decay(), 0.01f);                       // model.optim.weight_decay
  EXPECT_FLOAT_EQ(s.adam_beta1(), 0.85f);                              // model.optim.betas[0]
  EXPECT_FLOAT_EQ(s.adam_beta2(), 0.995f);                             // model.optim.betas[1]
  EXPECT_EQ(s.lr_scheduler(), v1::LR_SCHEDULER_CONSTANT_WITH_WARMUP);  // WarmupHoldPolicy
  EXPECT_EQ(s.lr_warmup_steps(), 10);                                  // sched.warmup_steps
  EXPECT_EQ(s.instance_prompt(), "a photo of a zwx cat");              // model.data.instance_prompt
  EXPECT_EQ(s.regularization_prompt(), "a photo of a cat");            // regularization_prompt
  EXPECT_EQ(s.num_reg_images(), 20);                                   // model.data.num_reg_images
  EXPECT_EQ(s.num_images_per_prompt(), 2);                             // num_images_per_prompt
  EXPECT_EQ(s.resolution(), 256);                                      // model.data.resolution
  ASSERT_TRUE(s.has_center_crop());                                    // model.data.center_crop
  EXPECT_FALSE(s.center_crop());
  EXPECT_EQ(s.class_sampler().scheduler(), v1::SCHEDULER_KIND_DDIM);  // infer.sampler_type
  EXPECT_EQ(s.class_sampler().num_inference_steps(), 30);             // infer.inference_steps
  EXPECT_FLOAT_EQ(s.class_sampler().guidance_scale(), 6.0f);  // unconditional_guidance_scale
  EXPECT_FLOAT_EQ(s.class_sampler().eta(), 0.0f);             // infer.eta
  // infer.prompts is ${model.data.regularization_prompt}: the class prompt, not validation.
  EXPECT_EQ(s.validation_prompts_size(), 0);
  // NeMo names paths on its own host, not server resources.
  EXPECT_TRUE(s.base_model().empty());
  EXPECT_TRUE(s.instance_image_set().empty());
  // Not in the file: left unset for the server's defaults.
  EXPECT_FALSE(s.has_adam_epsilon());
  EXPECT_FALSE(s.has_checkpoints_total_limit());
  EXPECT_TRUE(s.regularization_image_set().empty());
}

TEST(NemoConfigTest, FullConfigListsEveryUnmappedKeyWithItsReason) {
  absl::StatusOr<NemoMapping> mapping = LoadNemoConfig(DataPath("dreambooth_full.yaml"));
  ASSERT_TRUE(mapping.ok()) << mapping.status();
  std::vector<std::string> keys;
  for (const NemoUnmappedKey& key : mapping->unmapped) keys.push_back(key.key);
  const std::vector<std::string> expected = {
      "name",
      "trainer.accelerator",
      "trainer.logger",
      "trainer.enable_checkpointing",
      "trainer.use_distributed_sampler",
      "trainer.max_epochs",
      "trainer.log_every_n_steps",
      "trainer.accumulate_grad_batches",
      "trainer.benchmark",
      "trainer.enable_model_summary",
      "trainer.limit_val_batches",
      "exp_manager.exp_dir",
      "exp_manager.name",
      "exp_manager.checkpoint_callback_params.monitor",
      "exp_manager.checkpoint_callback_params.filename",
      "exp_manager.checkpoint_callback_params.save_top_k",
      "exp_manager.resume_if_exists",
      "exp_manager.ema.enable",
      "model.precision",
      "model.restore_from_path",
      "model.timesteps",
      "model.scale_factor",
      "model.text_embedding_dropout_rate",
      "model.unet_config.from_pretrained",
      "model.unet_config.channel_mult",
      "model.resume_from_checkpoint",
      "model.data.name",
      "model.data.num_workers",
      "model.data.instance_dir",
      "model.data.regularization_dir",
      "model.data.cached_instance_dir",
      "infer.output_type",
      "infer.save_to_file",
      "infer.out_path",
  };
  EXPECT_EQ(keys, expected);
  std::map<std::string, std::string> reasons = Reasons(*mapping);
  EXPECT_EQ(reasons["name"], "ignored: NeMo internal");
  EXPECT_EQ(reasons["model.text_embedding_dropout_rate"],
            "no equivalent (the trainer never drops the text conditioning)");
  EXPECT_TRUE(absl::StartsWith(reasons["exp_manager.checkpoint_callback_params.save_top_k"],
                               "unsupported value -1"));
  EXPECT_TRUE(absl::StrContains(reasons["model.data.instance_dir"], "--image-set"));
  EXPECT_TRUE(absl::StrContains(reasons["model.restore_from_path"], "--base-model"));
  EXPECT_TRUE(absl::StrContains(reasons["model.unet_config.from_pretrained"], "--base-model"));
  // ${trainer.precision} resolves to the same value: nothing is lost.
  EXPECT_TRUE(absl::StartsWith(reasons["model.precision"], "ignored: NeMo internal"));
}

// NeMo's own defaults (its dreambooth.yaml's values) where they differ from the JobSpec's: the
// mapping carries NeMo's value, as the proto comments say.
TEST(NemoConfigTest, NemoDefaultsThatDifferFromTheJobSpecsAreCarriedOver) {
  absl::StatusOr<NemoMapping> mapping = MapNemoConfig(R"(
trainer: {devices: 1, num_nodes: 1, precision: bf16-mixed, max_steps: 400}
exp_manager: {checkpoint_callback_params: {every_n_train_steps: 200}}
model:
  micro_batch_size: 2
  global_batch_size: 2
  use_cached_latents: False
  seed: 1234
  optim: {name: fused_adam, lr: 1e-6, sched: {name: WarmupHoldPolicy, warmup_steps: 1,
          hold_steps: 10000000000000}}
  data: {instance_prompt: a photo of a sks dog}
)");
  ASSERT_TRUE(mapping.ok()) << mapping.status();
  const v1::JobSpec& s = mapping->spec;
  EXPECT_EQ(s.train_batch_size(), 2);
  EXPECT_EQ(s.gradient_accumulation_steps(), 1);
  EXPECT_EQ(s.mixed_precision(), v1::MIXED_PRECISION_BF16);
  EXPECT_EQ(s.lr_scheduler(), v1::LR_SCHEDULER_CONSTANT_WITH_WARMUP);
  EXPECT_EQ(s.lr_warmup_steps(), 1);
  ASSERT_TRUE(s.has_use_cached_latents());
  EXPECT_FALSE(s.use_cached_latents());
  EXPECT_EQ(s.seed(), 1234u);
  EXPECT_TRUE(mapping->unmapped.empty());
}

TEST(NemoConfigTest, UnsupportedValuesAndUnresolvedInterpolationsAreListed) {
  absl::StatusOr<NemoMapping> mapping = LoadNemoConfig(DataPath("unsupported.yaml"));
  ASSERT_TRUE(mapping.ok()) << mapping.status();
  std::map<std::string, std::string> reasons = Reasons(*mapping);
  EXPECT_TRUE(absl::StartsWith(reasons["trainer.precision"], "unsupported value bf16-true"));
  EXPECT_TRUE(absl::StartsWith(reasons["trainer.devices"], "unsupported value auto"));
  EXPECT_TRUE(absl::StartsWith(reasons["model.optim.name"], "unsupported value sgd"));
  EXPECT_TRUE(absl::StartsWith(reasons["model.optim.sched.name"],
                               "unsupported value InverseSquareRootAnnealing"));
  EXPECT_TRUE(absl::StartsWith(reasons["infer.sampler_type"], "unsupported value DPM"));
  EXPECT_EQ(reasons["model.data.instance_prompt"], "unresolved interpolation ${oc.env:PROMPT}");
  EXPECT_EQ(mapping->unmapped.size(), 6u);
  const v1::JobSpec& s = mapping->spec;
  EXPECT_EQ(s.mixed_precision(), v1::MIXED_PRECISION_UNSPECIFIED);
  EXPECT_FALSE(s.has_num_devices());
  EXPECT_EQ(s.max_train_steps(), 300);
  EXPECT_DOUBLE_EQ(s.learning_rate(), 1e-5);
  EXPECT_EQ(s.lr_scheduler(), v1::LR_SCHEDULER_UNSPECIFIED);
  EXPECT_TRUE(s.instance_prompt().empty());
  // infer.prompts other than the class prompt render as validation images.
  ASSERT_EQ(s.validation_prompts_size(), 2);
  EXPECT_EQ(s.validation_prompts(0), "a zwx cat on the beach");
  EXPECT_EQ(s.validation_prompts(1), "a zwx cat in a bucket");
}

TEST(NemoConfigTest, InterpolationChainsResolveAndCyclesDoNot) {
  absl::StatusOr<NemoMapping> mapping = MapNemoConfig(R"(
base_steps: 250
trainer: {max_steps: '${model.steps}'}
model: {steps: '${base_steps}', seed: '${model.seed}'}
)");
  ASSERT_TRUE(mapping.ok()) << mapping.status();
  EXPECT_EQ(mapping->spec.max_train_steps(), 250);
  EXPECT_FALSE(mapping->spec.has_seed());
  std::map<std::string, std::string> reasons = Reasons(*mapping);
  EXPECT_EQ(reasons["base_steps"], "no equivalent");
  EXPECT_EQ(reasons["model.steps"], "no equivalent");
  EXPECT_TRUE(absl::StartsWith(reasons["model.seed"], "unresolved interpolation"));
}

TEST(NemoConfigTest, BadValuesFailNamingTheNemoKey) {
  const std::map<std::string, std::string> cases = {
      {"bad_resolution.yaml", "model.data.resolution: spec.resolution must be a multiple of 8"},
      {"bad_lr.yaml", "model.optim.lr: spec.learning_rate must be"},
      {"bad_type.yaml", "trainer.max_steps: expected an integer, got 'many'"},
      {"bad_global_batch.yaml",
       "model.global_batch_size: must be a positive multiple of model.micro_batch_size x "
       "trainer.devices x trainer.num_nodes (4), got 6"},
      {"not_yaml.yaml", "not valid YAML"},
      {"not_mapping.yaml", "the top level must be a mapping"},
  };
  for (const auto& [file, message] : cases) {
    absl::StatusOr<NemoMapping> mapping = LoadNemoConfig(DataPath(file));
    ASSERT_FALSE(mapping.ok()) << file;
    EXPECT_EQ(mapping.status().code(), absl::StatusCode::kInvalidArgument) << file;
    EXPECT_TRUE(absl::StrContains(mapping.status().message(), message))
        << file << ": " << mapping.status();
    EXPECT_TRUE(absl::StartsWith(mapping.status().message(), DataPath(file))) << file;
  }
  absl::StatusOr<NemoMapping> missing = LoadNemoConfig(DataPath("no_such_file.yaml"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

TEST(NemoConfigTest, WarmupLongerThanTheRunNamesTheNemoKey) {
  absl::StatusOr<NemoMapping> mapping =
      MapNemoConfig("trainer: {max_steps: 10}\nmodel: {optim: {sched: {warmup_steps: 20}}}\n");
  ASSERT_FALSE(mapping.ok());
  EXPECT_TRUE(absl::StartsWith(mapping.status().message(), "model.optim.sched.warmup_steps: "))
      << mapping.status();
}

}  // namespace
}  // namespace dreambooth::client
