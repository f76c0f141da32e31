// Tests of DreamBoothTrainer on the built-in tiny model: exact resume, cached vs online latents,
// gradient checkpointing, checkpoints and export, and bad input.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "tests/train/test_util.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/diffusion/io/safetensors.h"
#include "worker/diffusion/schedulers/scheduler.h"
#include "worker/train/dreambooth_loss.h"
#include "worker/train/dreambooth_trainer.h"
#include "worker/train/resume_state.h"

namespace dreambooth::train {
namespace {
namespace fs = std::filesystem;
using testing::TempDir;

// Instance + class images and options exercising most of the loop: prior preservation with
// generated class images, cached latents in both orientations, gradient accumulation, EMA,
// a warmup + cosine schedule and clipping.
TrainOptions ResumeOptions(const TempDir& tmp) {
  testing::WriteImageSet(tmp.Join("instances"), 3, 40, 32, 11);
  TrainOptions o = testing::SmallRunOptions(tmp.path(), tmp.Join("instances"));
  o.with_prior_preservation = true;
  o.class_prompt = "a photo of a dog";
  o.num_class_images = 4;
  o.num_images_per_prompt = 2;
  o.class_cache_dir = tmp.Join("class_store");
  o.latent_cache_dir = tmp.Join("latents");
  o.random_flip = true;
  o.gradient_accumulation_steps = 2;
  o.use_ema = true;
  o.ema_decay = 0.99;
  o.lr_scheduler = LrScheduleType::kCosine;
  o.lr_warmup_steps = 3;
  o.max_grad_norm = 0.5;
  o.max_train_steps = 20;
  o.checkpointing_steps = 10;
  return o;
}

diffusion::TensorMap UnetWeights(DreamBoothTrainer& t) {
  return diffusion::ModuleStateDict(*t.model().unet);
}

TEST(DreamBoothTrainerTest, TwentyStepsEqualTenPlusResumePlusTen) {
  TempDir tmp;
  TrainOptions o = ResumeOptions(tmp);
  testing::ResumeRuns runs = testing::TrainInterruptedAndResumed(o, tmp.Join("full"), 10);
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs.full_result.steps.size(), 20u);
  EXPECT_EQ(runs.resumed_result.start_step, 10);
  ASSERT_EQ(runs.resumed_result.steps.size(), 10u);
  for (size_t i = 0; i < 10; ++i) {
    EXPECT_EQ(runs.resumed_result.steps[i].loss, runs.full_result.steps[10 + i].loss)
        << "step " << 11 + i;
    EXPECT_EQ(runs.resumed_result.steps[i].lr, runs.full_result.steps[10 + i].lr);
  }
  const diffusion::TensorMap a = UnetWeights(*runs.full);
  const diffusion::TensorMap b = UnetWeights(*runs.resumed);
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) EXPECT_TRUE(at::equal(t, b.at(name))) << name;
  // The exported models (EMA weights) are identical too.
  auto fa = diffusion::ReadSafetensors(tmp.Join("full") +
                                       "/final/unet/diffusion_pytorch_model.safetensors");
  auto fb =
      diffusion::ReadSafetensors(o.FinalModelDir() + "/unet/diffusion_pytorch_model.safetensors");
  ASSERT_TRUE(fa.ok() && fb.ok());
  for (const auto& [name, t] : *fa) EXPECT_TRUE(at::equal(t, fb->at(name))) << name;
}

TEST(DreamBoothTrainerTest, ResumeRefusesDifferentSettings) {
  TempDir tmp;
  testing::WriteImageSet(tmp.Join("instances"), 2, 32, 32, 3);
  TrainOptions o = testing::SmallRunOptions(tmp.path(), tmp.Join("instances"));
  o.max_train_steps = 4;
  o.checkpointing_steps = 2;
  auto t = DreamBoothTrainer::Create(o);
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_TRUE((*t)->Train().ok());
  o.learning_rate = 5e-4;
  o.resume_from = "latest";
  auto r = DreamBoothTrainer::Create(o);
  ASSERT_TRUE(r.ok());
  absl::StatusOr<TrainResult> res = (*r)->Train();
  EXPECT_EQ(res.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(res.status().message().find("learning_rate"), std::string::npos);
}

TEST(DreamBoothTrainerTest, CachedLatentsTrainLikeOnlineEncoding) {
  TempDir tmp;
  testing::WriteImageSet(tmp.Join("instances"), 2, 48, 32, 5);
  TrainOptions o = testing::SmallRunOptions(tmp.path(), tmp.Join("instances"));
  o.max_train_steps = 3;
  o.use_cached_latents = true;
  auto cached = DreamBoothTrainer::Create(o);
  ASSERT_TRUE(cached.ok()) << cached.status();
  absl::StatusOr<TrainResult> a = (*cached)->Train();
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->latent_cache.misses, 2);
  o.use_cached_latents = false;
  o.output_dir = tmp.Join("online");
  auto online = DreamBoothTrainer::Create(o);
  ASSERT_TRUE(online.ok());
  absl::StatusOr<TrainResult> b = (*online)->Train();
  ASSERT_TRUE(b.ok()) << b.status();
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(a->steps[i].loss, b->steps[i].loss) << i;
}

// Gradient checkpointing recomputes blocks in backward: the gradients must not change. Checked in
// float32 (the whole gradient as one vector) and in float64 per parameter: in float32 a
// parameter whose gradient is a sum with heavy cancellation (a bias) differs at the 1e-6 level
// only because the residual branches' gradients are added in another order.
TEST(DreamBoothTrainerTest, CheckpointedBlocksGiveTheSameGradients) {
  absl::StatusOr<diffusion::TensorMap> golden =
      diffusion::ReadSafetensors(testing::GoldenPath("dreambooth_step"));
  ASSERT_TRUE(golden.ok()) << golden.status();
  diffusion::StableDiffusion model = testing::LoadTinyA();
  auto schedule = diffusion::DdpmTrainingSchedule::Create(model.scheduler_config);
  ASSERT_TRUE(schedule.ok());
  DreamBoothLossOptions lo;
  lo.with_prior_preservation = true;
  auto grads = [&](bool checkpointing, at::ScalarType dtype) {
    DreamBoothStepInputs in{golden->at("in.latents").to(dtype), golden->at("in.noise").to(dtype),
                            golden->at("in.timesteps"),
                            golden->at("in.encoder_hidden_states").to(dtype)};
    model.unet->to(dtype);
    model.unet->train();
    model.unet->set_gradient_checkpointing(checkpointing);
    for (auto& p : model.unet->parameters()) p.mutable_grad() = at::Tensor();
    auto out = ComputeDreamBoothLoss(model.unet, *schedule, in, lo);
    EXPECT_TRUE(out.ok()) << out.status();
    out->loss.backward();
    std::map<std::string, at::Tensor> g;
    for (const auto& item : model.unet->named_parameters()) {
      g[item.key()] = item.value().grad().to(at::kDouble);
    }
    return g;
  };
  for (at::ScalarType dtype : {at::kFloat, at::kDouble}) {
    const auto plain = grads(false, dtype);
    const auto checkpointed = grads(true, dtype);
    ASSERT_EQ(plain.size(), checkpointed.size());
    double diff_sq = 0.0;
    double norm_sq = 0.0;
    for (const auto& [name, g] : plain) {
      diff_sq += (checkpointed.at(name) - g).pow(2).sum().item<double>();
      norm_sq += g.pow(2).sum().item<double>();
    }
    const double rel = std::sqrt(diff_sq / norm_sq);
    // Per parameter: relative to its own gradient, or to the whole gradient's norm for
    // parameters whose gradient is zero up to rounding (a conv bias right before a GroupNorm).
    double worst = 0.0;
    std::string worst_name;
    for (const auto& [name, g] : plain) {
      const double d = (checkpointed.at(name) - g).norm().item<double>();
      const double r = d / std::max(g.norm().item<double>(), 1e-4 * std::sqrt(norm_sq));
      if (r > worst) {
        worst = r;
        worst_name = name;
      }
    }
    std::printf(
        "gradient checkpointing (%s): global relative difference %.3g, worst parameter "
        "%s %.3g\n",
        c10::toString(dtype), rel, worst_name.c_str(), worst);
    EXPECT_GT(norm_sq, 0.0);
    EXPECT_LE(rel, 1e-6);
    if (dtype == at::kDouble) {
      EXPECT_LE(worst, 1e-6) << worst_name;
    }
  }
  model.unet->to(at::kFloat);
}

TEST(DreamBoothTrainerTest, WritesCheckpointsValidationImagesAndALoadableModel) {
  TempDir tmp;
  testing::WriteImageSet(tmp.Join("instances"), 2, 32, 32, 9);
  TrainOptions o = testing::SmallRunOptions(tmp.path(), tmp.Join("instances"));
  o.max_train_steps = 6;
  o.checkpointing_steps = 2;
  o.checkpoints_total_limit = 1;
  o.resume_states_to_keep = 2;
  o.validation_prompts = {"a photo of sks dog in the snow"};
  o.validation_steps = 2;
  std::vector<CheckpointEvent> events;
  TrainCallbacks cb;
  cb.on_checkpoint = [&](const CheckpointEvent& e) { events.push_back(e); };
  auto t = DreamBoothTrainer::Create(o, cb);
  ASSERT_TRUE(t.ok()) << t.status();
  absl::StatusOr<TrainResult> r = (*t)->Train();
  ASSERT_TRUE(r.ok()) << r.status();
  // Sampleable checkpoints at steps 2 and 4 (keep 1), resume states at 2, 4, 6 (keep 2).
  EXPECT_EQ(ListStepFolders(o.CheckpointRoot(), "checkpoint-").size(), 1u);
  EXPECT_TRUE(fs::exists(o.CheckpointRoot() + "/checkpoint-4/validation/prompt-00-00.png"));
  auto states = ListStepFolders(o.ResumeRoot(), "step-");
  ASSERT_EQ(states.size(), 2u);
  EXPECT_EQ(states.back().first, 6);
  EXPECT_TRUE(fs::exists(o.output_dir + "/validation/step-6/prompt-00-00.png"));
  int finals = 0;
  for (const auto& e : events) finals += e.kind == CheckpointEvent::Kind::kFinal;
  EXPECT_EQ(finals, 1);
  // Both kinds of model folder load, and the export holds the trained weights.
  auto ckpt = diffusion::LoadStableDiffusion(o.CheckpointRoot() + "/checkpoint-4");
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  auto final_model = diffusion::LoadStableDiffusion(o.FinalModelDir());
  ASSERT_TRUE(final_model.ok()) << final_model.status();
  const auto trained = UnetWeights(**t);
  const auto exported = diffusion::ModuleStateDict(*final_model->unet);
  for (const auto& [name, w] : trained) EXPECT_TRUE(at::equal(w, exported.at(name))) << name;
}

TEST(DreamBoothTrainerTest, TextToImageTrainsOnEachImagesOwnCaption) {
  TempDir tmp;
  const std::string data = tmp.Join("captioned");
  testing::WriteImageSet(data, 2, 32, 32, 5);
  TrainOptions o = testing::SmallRunOptions(tmp.path(), data);
  o.mode = TrainingMode::kTextToImage;
  o.instance_prompt = "";
  o.max_train_steps = 2;
  std::ofstream(data + "/img-00.txt") << "a photo of a red circle";
  // One image without a caption: refused, naming the file.
  auto missing = DreamBoothTrainer::Create(o);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(missing.status().message().find("img-01.png"), std::string::npos) << missing.status();

  std::ofstream(data + "/img-01.txt") << "a blue square on a beach\n";
  auto trainer = DreamBoothTrainer::Create(o);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  absl::StatusOr<TrainResult> r = (*trainer)->Train();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->end_step, 2);
}

TEST(DreamBoothTrainerTest, BadInputGivesClearErrorsOrWarnings) {
  TempDir tmp;
  testing::WriteImageSet(tmp.Join("instances"), 1, 32, 32, 2);
  TrainOptions good = testing::SmallRunOptions(tmp.path(), tmp.Join("instances"));
  good.max_train_steps = 1;

  TrainOptions o = good;
  fs::create_directories(tmp.Join("empty"));
  o.instance_dir = tmp.Join("empty");
  auto no_images = DreamBoothTrainer::Create(o);
  EXPECT_EQ(no_images.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(no_images.status().message().find("instance_dir"), std::string::npos);

  o = good;
  o.resolution = 36;
  EXPECT_EQ(DreamBoothTrainer::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = good;
  o.max_train_steps = 0;
  EXPECT_EQ(DreamBoothTrainer::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
  o.max_train_steps = -3;
  EXPECT_EQ(DreamBoothTrainer::Create(o).status().code(), absl::StatusCode::kInvalidArgument);

  o = good;
  o.instance_dir = tmp.Join("broken");
  testing::WriteImageSet(o.instance_dir, 1, 32, 32, 4);
  std::ofstream(o.instance_dir + "/zz-corrupt.jpg") << "\xff\xd8 truncated jpeg";
  auto broken = DreamBoothTrainer::Create(o);
  ASSERT_TRUE(broken.ok()) << broken.status();
  absl::StatusOr<TrainResult> r = (*broken)->Train();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("zz-corrupt.jpg"), std::string::npos) << r.status();

  o = good;
  std::string long_prompt = "a photo of sks dog";
  for (int i = 0; i < 90; ++i) long_prompt += " very";
  o.instance_prompt = long_prompt;
  auto long_run = DreamBoothTrainer::Create(o);
  ASSERT_TRUE(long_run.ok()) << long_run.status();
  ASSERT_EQ((*long_run)->warnings().size(), 1u);
  EXPECT_NE((*long_run)->warnings()[0].find("truncated"), std::string::npos);
  EXPECT_TRUE((*long_run)->Train().ok());
}

}  // namespace
}  // namespace dreambooth::train
