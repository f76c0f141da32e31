// Does training learn? On the built-in tiny model: overfitting a few instance images halves
// their loss, and prior preservation limits how much the class images' loss rises compared
// with the same run without it. The numbers are printed (and recorded in
// docs/benchmarks-train.md).
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <cstdio>

#include "tests/train/test_util.h"
#include "worker/diffusion/schedulers/scheduler.h"
#include "worker/diffusion/tokenizer/clip_tokenizer_batch.h"
#include "worker/train/dreambooth_loss.h"
#include "worker/train/dreambooth_trainer.h"
#include "worker/train/image_dataset.h"

namespace dreambooth::train {
namespace {
using testing::TempDir;

// Mean denoising loss of `model` on `images` with `prompt`: posterior means (no sampling), and
// for each image the same 16 (noise, timestep) draws from a fixed seed, so two evaluations
// differ only through the weights.
double EvalLoss(diffusion::StableDiffusion& model, const std::vector<ImageRecord>& images,
                const std::string& prompt, int resolution) {
  at::NoGradGuard no_grad;
  model.unet->eval();
  auto schedule = diffusion::DdpmTrainingSchedule::Create(model.scheduler_config);
  EXPECT_TRUE(schedule.ok());
  at::Tensor ids = EncodeClipBatch(model.tokenizer, {prompt});
  at::Tensor text = model.text_encoder->forward(ids).last_hidden_state;  // [1, 77, D]
  at::Generator gen = at::detail::createCPUGenerator(99);
  double total = 0.0;
  int count = 0;
  for (const ImageRecord& image : images) {
    absl::StatusOr<at::Tensor> pixels =
        LoadTrainingImage(image.path, resolution, CropSpec{}, false);
    EXPECT_TRUE(pixels.ok());
    at::Tensor mean = model.vae->Encode(pixels->unsqueeze(0)).mean * model.vae->scaling_factor();
    at::Tensor latents = mean.expand({16, -1, -1, -1}).contiguous();
    at::Tensor noise = at::randn(latents.sizes(), gen);
    at::Tensor t = at::randint(0, 1000, {16}, gen, at::TensorOptions().dtype(at::kLong));
    DreamBoothStepInputs in{latents, noise, t, text.expand({16, -1, -1})};
    auto out = ComputeDreamBoothLoss(model.unet, *schedule, in, DreamBoothLossOptions{});
    EXPECT_TRUE(out.ok()) << out.status();
    total += out->loss.item<double>();
    ++count;
  }
  model.unet->train();
  return total / count;
}

struct RunNumbers {
  double instance_before = 0, instance_after = 0, class_before = 0, class_after = 0;
};

RunNumbers TrainAndEvaluate(const TempDir& tmp, bool prior, int steps) {
  TrainOptions o = testing::SmallRunOptions(tmp.path(), tmp.Join("instances"));
  o.output_dir = tmp.Join(prior ? "out_prior" : "out_plain");
  o.max_train_steps = steps;
  o.learning_rate = 2e-3;
  o.with_prior_preservation = prior;
  o.class_prompt = "a photo of a dog";
  o.class_dir = tmp.Join("classes");
  o.num_class_images = 4;
  o.prior_loss_weight = 1.0;
  auto t = DreamBoothTrainer::Create(o);
  EXPECT_TRUE(t.ok()) << t.status();
  absl::StatusOr<std::vector<ImageRecord>> classes =
      ScanImageFolder(o.class_dir, o.class_prompt, nullptr);
  EXPECT_TRUE(classes.ok());
  RunNumbers n;
  diffusion::StableDiffusion& model = (*t)->model();
  n.instance_before = EvalLoss(model, (*t)->instance_images(), o.instance_prompt, o.resolution);
  n.class_before = EvalLoss(model, *classes, o.class_prompt, o.resolution);
  absl::StatusOr<TrainResult> r = (*t)->Train();
  EXPECT_TRUE(r.ok()) << r.status();
  n.instance_after = EvalLoss(model, (*t)->instance_images(), o.instance_prompt, o.resolution);
  n.class_after = EvalLoss(model, *classes, o.class_prompt, o.resolution);
  return n;
}

TEST(LearningTest, InstanceLossHalvesAndPriorPreservationLimitsClassDrift) {
  TempDir tmp;
  testing::WriteImageSet(tmp.Join("instances"), 3, 32, 32, 41);
  testing::WriteImageSet(tmp.Join("classes"), 4, 32, 32, 42);
  constexpr int kSteps = 40;
  const RunNumbers plain = TrainAndEvaluate(tmp, /*prior=*/false, kSteps);
  const RunNumbers prior = TrainAndEvaluate(tmp, /*prior=*/true, kSteps);
  std::printf(
      "learning (tiny, %d steps, lr 2e-3): instance loss %.4f -> %.4f (ratio %.3f); class loss "
      "without prior %.4f -> %.4f (change %+.4f), with prior %.4f -> %.4f (change %+.4f)\n",
      kSteps, plain.instance_before, plain.instance_after,
      plain.instance_after / plain.instance_before, plain.class_before, plain.class_after,
      plain.class_after - plain.class_before, prior.class_before, prior.class_after,
      prior.class_after - prior.class_before);
  EXPECT_LE(plain.instance_after, 0.5 * plain.instance_before);
  EXPECT_DOUBLE_EQ(plain.class_before, prior.class_before);  // same base model and draws
  EXPECT_LT(prior.class_after - prior.class_before, plain.class_after - plain.class_before);
}

}  // namespace
}  // namespace dreambooth::train
