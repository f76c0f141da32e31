// DreamBooth-LoRA runs of the trainer on the built-in tiny model: only adapters train, the
// files and the merged model come out, resume is bit-exact, and bad LoRA options are refused.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

#include "tests/train/test_util.h"
#include "worker/diffusion/io/lora_file.h"
#include "worker/diffusion/io/safetensors.h"
#include "worker/diffusion/models/lora.h"
#include "worker/train/dreambooth_trainer.h"
#include "worker/train/lora_export.h"
#include "worker/train/resume_state.h"

namespace dreambooth::train {
namespace {
namespace fs = std::filesystem;
using testing::TempDir;

TrainOptions LoraOptions(const TempDir& tmp) {
  testing::WriteImageSet(tmp.Join("instances"), 3, 40, 32, 21);
  TrainOptions o = testing::SmallRunOptions(tmp.path(), tmp.Join("instances"));
  o.lora.enabled = true;
  o.lora.rank = 2;
  o.lora.alpha = 4;
  o.lora.learning_rate = 1e-2;
  o.lora.unet_targets = {"to_q", "to_k", "to_v", "to_out.0", "conv1"};
  o.train_text_encoder = true;  // text-encoder adapters
  o.with_prior_preservation = true;
  o.class_prompt = "a photo of a dog";
  o.num_class_images = 2;
  o.num_images_per_prompt = 2;
  o.class_cache_dir = tmp.Join("class_store");
  o.latent_cache_dir = tmp.Join("latents");
  o.max_train_steps = 6;
  o.checkpointing_steps = 3;
  return o;
}

TEST(LoraTrainingTest, OnlyAdaptersTrainAndEveryFormatIsWritten) {
  TempDir tmp;
  TrainOptions o = LoraOptions(tmp);
  o.validation_prompts = {"a photo of sks dog"};
  o.validation_steps = 3;
  std::vector<CheckpointEvent> events;
  TrainCallbacks cb;
  cb.on_checkpoint = [&](const CheckpointEvent& e) { events.push_back(e); };
  auto t = DreamBoothTrainer::Create(o, cb);
  ASSERT_TRUE(t.ok()) << t.status();
  const diffusion::TensorMap base_unet = diffusion::ModuleStateDictOnHost(*(*t)->model().unet);
  const diffusion::TensorMap base_text =
      diffusion::ModuleStateDictOnHost(*(*t)->model().text_encoder);
  absl::StatusOr<TrainResult> r = (*t)->Train();
  ASSERT_TRUE(r.ok()) << r.status();
  // The base model is untouched (the merged export restored it).
  for (const auto& [name, w] : diffusion::ModuleStateDict(*(*t)->model().unet)) {
    ASSERT_TRUE(at::equal(w.cpu(), base_unet.at(name))) << name;
  }
  for (const auto& [name, w] : diffusion::ModuleStateDict(*(*t)->model().text_encoder)) {
    ASSERT_TRUE(at::equal(w.cpu(), base_text.at(name))) << name;
  }
  // Events: LoRA files at step 3 (diffusers with validation images, kohya), resume states, the
  // final LoRA files and the merged model.
  std::map<CheckpointEvent::Kind, std::vector<int64_t>> steps;
  for (const auto& e : events) steps[e.kind].push_back(e.step);
  EXPECT_EQ(steps[CheckpointEvent::Kind::kLoraDiffusers], (std::vector<int64_t>{3, 6}));
  EXPECT_EQ(steps[CheckpointEvent::Kind::kLoraKohya], (std::vector<int64_t>{3, 6}));
  EXPECT_EQ(steps[CheckpointEvent::Kind::kFinal], (std::vector<int64_t>{6}));
  EXPECT_EQ(steps[CheckpointEvent::Kind::kSampleable].size(), 1u);  // validation at step 6 only
  EXPECT_TRUE(fs::exists(o.CheckpointRoot() + "/lora-3/diffusers/validation/prompt-00-00.png"));
  EXPECT_TRUE(fs::exists(o.CheckpointRoot() + "/lora-3/kohya/lora-step3.safetensors"));

  // The final files hold trained adapters (up no longer zero) on the targeted layers.
  const std::string kohya = o.output_dir + "/lora/kohya/lora.safetensors";
  std::map<std::string, std::string> meta;
  auto kohya_tensors = diffusion::ReadSafetensors(kohya, &meta);
  ASSERT_TRUE(kohya_tensors.ok()) << kohya_tensors.status();
  EXPECT_EQ(meta.at("ss_network_dim"), "2");
  EXPECT_EQ(meta.at("ss_network_alpha"), "4");
  EXPECT_EQ(meta.at("ss_steps"), "6");
  EXPECT_NE(meta.at("ss_training_comment").find(o.instance_prompt), std::string::npos);
  auto file = diffusion::ReadLoraFile(kohya, (*t)->model());
  ASSERT_TRUE(file.ok()) << file.status();
  // Adapters on exactly the targeted layers of both models, all trained (up no longer zero).
  diffusion::LoraTargets targets;
  targets.unet = o.lora.unet_targets;
  targets.text_encoder = o.lora.text_encoder_targets;
  auto fresh = diffusion::LoraAdapterSet::Create((*t)->model(), targets, 2, 4,
                                                 at::detail::createCPUGenerator(0));
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  ASSERT_EQ(file->adapters.size(), fresh->weights().size());
  for (const auto& [layer, w] : file->adapters) {
    EXPECT_TRUE(fresh->weights().count(layer)) << layer;
    EXPECT_GT(w.up.abs().max().item<float>(), 0.0f) << layer;
    EXPECT_EQ(w.alpha, 4.0);
  }
  // The merged model equals the base with the adapters applied.
  auto merged = diffusion::LoadStableDiffusion(o.FinalModelDir());
  ASSERT_TRUE(merged.ok()) << merged.status();
  auto single = diffusion::LoadStableDiffusion(o.FinalModelDir() + "/" + kMergedSingleFileName);
  ASSERT_TRUE(single.ok()) << single.status();
  // The merged export carries the provenance and model card of a full fine-tune's FINAL.
  for (const std::string& file :
       {std::string(kMergedSingleFileName), std::string("unet/diffusion_pytorch_model.safetensors"),
        std::string("vae/diffusion_pytorch_model.safetensors")}) {
    std::map<std::string, std::string> provenance;
    ASSERT_TRUE(diffusion::ReadSafetensorsHeader(o.FinalModelDir() + "/" + file, &provenance).ok());
    EXPECT_EQ(provenance["dreambooth.step"], "6") << file;
    EXPECT_EQ(provenance["dreambooth.instance_prompt"], o.instance_prompt) << file;
    EXPECT_FALSE(provenance["dreambooth.training"].empty()) << file;
  }
  std::ifstream card(o.FinalModelDir() + "/README.md");
  const std::string card_text((std::istreambuf_iterator<char>(card)), {});
  EXPECT_NE(card_text.find("# DreamBooth fine-tune of"), std::string::npos) << card_text;
  EXPECT_NE(card_text.find(o.instance_prompt), std::string::npos);
  auto adapters = diffusion::LoraAdapterSet::Bind((*t)->model(), file->adapters);
  ASSERT_TRUE(adapters.ok()) << adapters.status();
  at::NoGradGuard no_grad;
  (*t)->model().unet->eval();
  merged->unet->eval();
  single->unet->eval();
  const at::Tensor x = at::randn({1, 4, 8, 8});
  const at::Tensor ts = at::tensor({500}, at::kLong);
  const at::Tensor ehs = at::randn({1, 77, (*t)->model().unet_config.cross_attention_dim.front()});
  at::Tensor with_adapters;
  {
    diffusion::ScopedLora scope({&*adapters});
    with_adapters = (*t)->model().unet->forward(x, ts, ehs);
  }
  EXPECT_TRUE(at::allclose(merged->unet->forward(x, ts, ehs), with_adapters, 1e-4, 1e-5));
  EXPECT_TRUE(at::allclose(single->unet->forward(x, ts, ehs), with_adapters, 1e-4, 1e-5));
}

TEST(LoraTrainingTest, Bf16HoldsTheBaseInBf16AndExportsTheFloat32BaseMerged) {
  TempDir tmp;
  TrainOptions o = LoraOptions(tmp);
  o.mixed_precision = MixedPrecision::kBf16;
  o.validation_prompts = {"a photo of sks dog"};
  o.validation_steps = 3;
  auto t = DreamBoothTrainer::Create(o);
  ASSERT_TRUE(t.ok()) << t.status();
  absl::StatusOr<TrainResult> r = (*t)->Train();
  ASSERT_TRUE(r.ok()) << r.status();
  for (const auto& p : (*t)->model().unet->parameters()) {
    ASSERT_EQ(p.scalar_type(), at::kBFloat16);  // the frozen base, in the compute dtype
  }
  // The merged export is the float32 base (not its bf16 copy) plus the adapters.
  auto merged = diffusion::LoadStableDiffusion(o.FinalModelDir());
  ASSERT_TRUE(merged.ok()) << merged.status();
  auto base = diffusion::LoadStableDiffusion("tiny");
  ASSERT_TRUE(base.ok()) << base.status();
  auto file = diffusion::ReadLoraFile(o.output_dir + "/lora/kohya/lora.safetensors", *base);
  ASSERT_TRUE(file.ok()) << file.status();
  auto adapters = diffusion::LoraAdapterSet::Bind(*base, file->adapters);
  ASSERT_TRUE(adapters.ok()) << adapters.status();
  ASSERT_TRUE(adapters->MergeInto(1.0).ok());
  const auto expected = diffusion::ModuleStateDict(*base->unet);
  for (const auto& [name, w] : diffusion::ModuleStateDict(*merged->unet)) {
    ASSERT_EQ(w.scalar_type(), at::kFloat) << name;
    EXPECT_TRUE(at::allclose(w, expected.at(name), 1e-6, 1e-7)) << name;
  }
  EXPECT_TRUE(fs::exists(o.CheckpointRoot() + "/lora-3/diffusers/validation/prompt-00-00.png"));
}

TEST(LoraTrainingTest, SixStepsEqualThreePlusResumePlusThree) {
  TempDir tmp;
  TrainOptions o = LoraOptions(tmp);
  testing::ResumeRuns runs = testing::TrainInterruptedAndResumed(o, tmp.Join("full"), 3);
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs.resumed_result.steps.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(runs.resumed_result.steps[i].loss, runs.full_result.steps[3 + i].loss) << i;
  }
  auto a = diffusion::ReadSafetensors(tmp.Join("full") + "/lora/kohya/lora.safetensors");
  auto b = diffusion::ReadSafetensors(o.output_dir + "/lora/kohya/lora.safetensors");
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->size(), b->size());
  for (const auto& [name, t] : *a) EXPECT_TRUE(at::equal(t, b->at(name))) << name;
}

TEST(LoraTrainingTest, DropoutResumesExactlyToo) {
  TempDir tmp;
  TrainOptions o = LoraOptions(tmp);
  o.lora.dropout = 0.3;
  o.train_text_encoder = false;
  o.with_prior_preservation = false;
  testing::ResumeRuns runs = testing::TrainInterruptedAndResumed(o, tmp.Join("full"), 3);
  ASSERT_TRUE(runs.ok());
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(runs.resumed_result.steps[i].loss, runs.full_result.steps[3 + i].loss) << i;
  }
}

TEST(LoraTrainingTest, BadLoraOptionsAreRefusedNamingTheField) {
  TempDir tmp;
  const TrainOptions good = LoraOptions(tmp);
  auto expect_invalid = [&](TrainOptions o, const std::string& field) {
    absl::Status st = ValidateTrainOptions(o);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_NE(st.message().find(field), std::string::npos) << st;
  };
  TrainOptions o = good;
  o.lora.rank = 0;
  expect_invalid(o, "lora.rank");
  o = good;
  o.lora.dropout = 1.0;
  expect_invalid(o, "lora.dropout");
  o = good;
  o.lora.dropout = 0.1;
  o.gradient_checkpointing = true;
  expect_invalid(o, "lora.dropout");
  o = good;
  o.lora.unet_targets.clear();
  expect_invalid(o, "lora.target_modules");
  o = good;
  o.use_ema = true;
  expect_invalid(o, "use_ema");
  // A target that matches nothing fails when the run sets up, naming the target.
  o = good;
  o.lora.unet_targets = {"to_qq"};
  auto t = DreamBoothTrainer::Create(o);
  ASSERT_TRUE(t.ok()) << t.status();
  absl::StatusOr<TrainResult> r = (*t)->Train();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("to_qq"), std::string::npos) << r.status();
}

}  // namespace
}  // namespace dreambooth::train
