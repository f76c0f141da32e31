// Mixed precision on CPU: a bf16 run tracks the float32 run and still learns, a bf16 run resumes
// bit-exactly, and the dynamic loss scaler skips steps whose gradients hold inf/NaN and backs off.
#include "worker/train/precision.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "tests/train/test_util.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/train/class_images.h"
#include "worker/train/dreambooth_trainer.h"

namespace dreambooth::train {
namespace {
using testing::TempDir;

TrainOptions Bf16Options(const TempDir& tmp, int steps) {
  testing::WriteImageSet(tmp.Join("instances"), 2, 32, 32, 5);
  TrainOptions o = testing::SmallRunOptions(tmp.path(), tmp.Join("instances"));
  o.latent_cache_dir = tmp.Join("latents");
  o.max_train_steps = steps;
  o.mixed_precision = MixedPrecision::kBf16;
  return o;
}

std::vector<StepLog> RunTraining(const TrainOptions& o) {
  auto trainer = DreamBoothTrainer::Create(o);
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  if (!trainer.ok()) return {};
  absl::StatusOr<TrainResult> result = (*trainer)->Train();
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? result->steps : std::vector<StepLog>{};
}

double Mean(const std::vector<StepLog>& steps, size_t begin, size_t end) {
  double sum = 0;
  for (size_t i = begin; i < end; ++i) sum += steps[i].loss;
  return sum / static_cast<double>(end - begin);
}

// bf16 autocast keeps float32 master weights, so the run follows the float32 one: every step's
// loss within 0.01 absolute or 2% relative of float32's (bf16 has 8 mantissa bits, ~0.4% per
// rounding), and the loss falls just as it does in float32.
TEST(MixedPrecisionTest, Bf16RunTracksFloat32AndLearns) {
  TempDir tmp;
  TrainOptions bf16 = Bf16Options(tmp, 20);
  bf16.output_dir = tmp.Join("bf16");
  TrainOptions fp32 = bf16;
  fp32.mixed_precision = MixedPrecision::kNo;
  fp32.output_dir = tmp.Join("fp32");
  const std::vector<StepLog> a = RunTraining(bf16);
  const std::vector<StepLog> b = RunTraining(fp32);
  ASSERT_EQ(a.size(), 20u);
  ASSERT_EQ(b.size(), 20u);
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_TRUE(std::isfinite(a[i].loss)) << "step " << i + 1;
    EXPECT_FALSE(a[i].skipped);
    const double diff = std::abs(a[i].loss - b[i].loss);
    worst = std::max(worst, diff);
    EXPECT_TRUE(diff <= 0.01 || diff <= 0.02 * std::abs(b[i].loss))
        << "step " << i + 1 << ": bf16 " << a[i].loss << " vs fp32 " << b[i].loss;
  }
  std::printf("bf16 vs fp32: worst per-step loss difference %.5f\n", worst);
  // Learns: the last five steps' mean loss is well below the first five's, as in float32.
  EXPECT_LT(Mean(a, 15, 20), 0.7 * Mean(a, 0, 5));
  EXPECT_LT(Mean(b, 15, 20), 0.7 * Mean(b, 0, 5));
}

TEST(MixedPrecisionTest, Bf16ResumeIsBitExact) {
  TempDir tmp;
  TrainOptions o = Bf16Options(tmp, 8);
  o.checkpointing_steps = 4;
  testing::ResumeRuns runs = testing::TrainInterruptedAndResumed(o, tmp.Join("full"), 4);
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs.resumed_result.start_step, 4);
  ASSERT_EQ(runs.resumed_result.steps.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(runs.resumed_result.steps[i].loss, runs.full_result.steps[4 + i].loss)
        << "step " << 5 + i;
  }
  const diffusion::TensorMap a = diffusion::ModuleStateDict(*runs.full->model().unet);
  const diffusion::TensorMap b = diffusion::ModuleStateDict(*runs.resumed->model().unet);
  for (const auto& [name, t] : a) EXPECT_TRUE(at::equal(t, b.at(name))) << name;
}

// diffusers' weight_dtype rule: the frozen VAE and text encoder compute in bf16, the trained UNet
// keeps float32 master weights, the latent cache keys bf16 posteriors apart from float32 ones,
// and the exported folder holds the frozen modules' float32 weights exactly as loaded.
TEST(MixedPrecisionTest, FrozenModulesRunInBf16AndExportTheirFloat32Weights) {
  TempDir tmp;
  TrainOptions o = Bf16Options(tmp, 2);
  o.with_prior_preservation = true;
  o.class_prompt = "a photo of a dog";
  o.num_class_images = 1;
  auto trainer = DreamBoothTrainer::Create(o);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  diffusion::StableDiffusion& model = (*trainer)->model();
  EXPECT_EQ(model.vae->parameters().front().scalar_type(), at::kBFloat16);
  EXPECT_EQ(model.text_encoder->parameters().front().scalar_type(), at::kBFloat16);
  EXPECT_EQ(model.unet->parameters().front().scalar_type(), at::kFloat);

  TrainOptions fp32 = o;
  fp32.mixed_precision = MixedPrecision::kNo;
  auto fp32_trainer = DreamBoothTrainer::Create(fp32);
  ASSERT_TRUE(fp32_trainer.ok()) << fp32_trainer.status();
  EXPECT_NE((*trainer)->vae_digest(), (*fp32_trainer)->vae_digest());
  EXPECT_NE(ClassImageStoreKey(model.digest, ClassImageOptionsFor(o)),
            ClassImageStoreKey(model.digest, ClassImageOptionsFor(fp32)));

  absl::StatusOr<TrainResult> result = (*trainer)->Train();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->class_images.generated, 1);
  // Still bf16 after the export put the float32 weights in place and took them out again.
  EXPECT_EQ(model.vae->parameters().front().scalar_type(), at::kBFloat16);

  absl::StatusOr<diffusion::StableDiffusion> base = diffusion::LoadStableDiffusion("tiny", {});
  ASSERT_TRUE(base.ok()) << base.status();
  absl::StatusOr<diffusion::StableDiffusion> exported =
      diffusion::LoadStableDiffusion(o.FinalModelDir(), {});
  ASSERT_TRUE(exported.ok()) << exported.status();
  auto expect_equal = [](const torch::nn::Module& want, const torch::nn::Module& got,
                         const char* what) {
    const diffusion::TensorMap a = diffusion::ModuleStateDict(want);
    const diffusion::TensorMap b = diffusion::ModuleStateDict(got);
    ASSERT_EQ(a.size(), b.size()) << what;
    for (const auto& [name, t] : a) {
      EXPECT_EQ(b.at(name).scalar_type(), at::kFloat) << what << " " << name;
      EXPECT_TRUE(at::equal(t, b.at(name))) << what << " " << name;
    }
  };
  expect_equal(*base->vae, *exported->vae, "vae");
  expect_equal(*base->text_encoder, *exported->text_encoder, "text_encoder");
}

std::vector<at::Tensor> ParamsWithGrads(std::vector<at::Tensor> grads) {
  std::vector<at::Tensor> params;
  for (at::Tensor& g : grads) {
    at::Tensor p = at::zeros_like(g);
    p.mutable_grad() = g;
    params.push_back(p);
  }
  return params;
}

TEST(DynamicLossScalerTest, UnscalesFiniteGradientsAndGrowsAfterTheInterval) {
  DynamicLossScaler scaler(1024.0);
  std::vector<at::Tensor> params =
      ParamsWithGrads({at::full({3}, 2048.0), at::full({2, 2}, -512.0)});
  EXPECT_TRUE(scaler.Unscale(params));
  EXPECT_TRUE(at::equal(params[0].grad(), at::full({3}, 2.0)));
  EXPECT_TRUE(at::equal(params[1].grad(), at::full({2, 2}, -0.5)));
  for (int i = 0; i < 1999; ++i) scaler.Update(false);
  EXPECT_EQ(scaler.scale(), 1024.0);
  scaler.Update(false);  // the 2000th finite step
  EXPECT_EQ(scaler.scale(), 2048.0);
  EXPECT_EQ(scaler.growth_tracker(), 0);
}

TEST(DynamicLossScalerTest, InfOrNanGradientsAreFoundAndTheScaleBacksOff) {
  for (float bad : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                    std::numeric_limits<float>::quiet_NaN()}) {
    DynamicLossScaler scaler(65536.0);
    at::Tensor g = at::ones({4});
    g[2] = bad;
    std::vector<at::Tensor> params = ParamsWithGrads({at::ones({5}), g});
    EXPECT_FALSE(scaler.Unscale(params)) << bad;
    scaler.Update(true);
    EXPECT_EQ(scaler.scale(), 32768.0) << bad;
    for (int i = 0; i < 10; ++i) scaler.Update(false);
    EXPECT_EQ(scaler.growth_tracker(), 10);
    scaler.Update(true);  // a bad step resets the growth count and halves again
    EXPECT_EQ(scaler.scale(), 16384.0);
    EXPECT_EQ(scaler.growth_tracker(), 0);
  }
}

TEST(MixedPrecisionTest, Fp16OnCpuIsRefusedWithAClearMessage) {
  TempDir tmp;
  TrainOptions o = Bf16Options(tmp, 2);
  o.mixed_precision = MixedPrecision::kFp16;
  auto trainer = DreamBoothTrainer::Create(o);
  absl::Status status = trainer.ok() ? (*trainer)->Train().status() : trainer.status();
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("fp16 needs a CUDA device"), std::string::npos) << status;
}

}  // namespace
}  // namespace dreambooth::train
