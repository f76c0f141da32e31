// kernels/guided_ddim_step: the reference against hand-derived DDIM identities (an exact noise
// or v prediction recovers the DDIM target; guidance mixes linearly), the dispatcher on CPU
// against the reference, argument errors, and the CUDA kernel against a float64 reference
// (skipped without a GPU).
#include "kernels/guided_ddim_step.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/cuda_dispatch.h"
#include "tests/kernels/kernel_test_util.h"

namespace dreambooth::kernels {
namespace {

using testing::ErrorOf;
using testing::MaxAbsDiff;
using testing::Nmse;
using testing::Random;

constexpr PredictionType kBothTypes[] = {PredictionType::kEpsilon, PredictionType::kVPrediction};

// alphas_cumprod-like pairs (a_t, a_prev): early, middle and final (a_prev = 1) steps.
constexpr double kAlphas[][2] = {{0.0047, 0.0071}, {0.42, 0.51}, {0.9991, 1.0}};

std::string Name(PredictionType type) {
  return type == PredictionType::kEpsilon ? "epsilon" : "v_prediction";
}

TEST(GuidedDdimStepReferenceTest, ExactPredictionRecoversTheDdimTarget) {
  // x_t = sqrt(a_t) x0 + sqrt(1 - a_t) noise. A model that predicts exactly (both branches equal,
  // so guidance is moot) must give x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev) noise.
  const at::Tensor x0 = Random({2, 4, 8, 8}, at::kDouble, 1);
  const at::Tensor noise = Random({2, 4, 8, 8}, at::kDouble, 2);
  for (const auto& [a_t, a_prev] : kAlphas) {
    const at::Tensor x_t = std::sqrt(a_t) * x0 + std::sqrt(1 - a_t) * noise;
    const at::Tensor target = std::sqrt(a_prev) * x0 + std::sqrt(1 - a_prev) * noise;
    const at::Tensor v = std::sqrt(a_t) * noise - std::sqrt(1 - a_t) * x0;
    for (const PredictionType type : kBothTypes) {
      SCOPED_TRACE(Name(type) + " a_t " + std::to_string(a_t));
      const at::Tensor out = type == PredictionType::kEpsilon ? noise : v;
      const at::Tensor x_prev = GuidedDdimStepReference(x_t, out, out, 7.5, a_t, a_prev, type);
      EXPECT_EQ(x_prev.scalar_type(), at::kDouble);
      EXPECT_LT(MaxAbsDiff(x_prev, target), 1e-10);
    }
  }
}

TEST(GuidedDdimStepReferenceTest, MatchesHandComputedValues) {
  // One element: x_t = 1, uncond = 0.2, text = 0.6, s = 2 -> guided 1.0; a_t = 0.64, a_prev = 0.81.
  const at::Tensor x_t = at::full({1}, 1.0, at::kDouble);
  const at::Tensor uncond = at::full({1}, 0.2, at::kDouble);
  const at::Tensor text = at::full({1}, 0.6, at::kDouble);
  // epsilon: x0 = (1 - 0.6 * 1) / 0.8 = 0.5; x_prev = 0.9 * 0.5 + sqrt(0.19) * 1.
  EXPECT_NEAR(GuidedDdimStepReference(x_t, uncond, text, 2.0, 0.64, 0.81, PredictionType::kEpsilon)
                  .item<double>(),
              0.45 + std::sqrt(0.19), 1e-14);
  // v: x0 = 0.8 * 1 - 0.6 * 1 = 0.2; eps = 0.8 * 1 + 0.6 * 1 = 1.4; x_prev = 0.18 + sqrt(.19) 1.4.
  EXPECT_NEAR(
      GuidedDdimStepReference(x_t, uncond, text, 2.0, 0.64, 0.81, PredictionType::kVPrediction)
          .item<double>(),
      0.18 + std::sqrt(0.19) * 1.4, 1e-14);
}

TEST(GuidedDdimStepReferenceTest, GuidanceIsLinearInTheModelOutputs) {
  const at::Tensor x_t = Random({2, 4, 6, 6}, at::kDouble, 3);
  const at::Tensor uncond = Random({2, 4, 6, 6}, at::kDouble, 4);
  const at::Tensor text = Random({2, 4, 6, 6}, at::kDouble, 5);
  for (const PredictionType type : kBothTypes) {
    SCOPED_TRACE(Name(type));
    // s = 0 uses the unconditional output alone, s = 1 the text output alone.
    EXPECT_LT(MaxAbsDiff(GuidedDdimStepReference(x_t, uncond, text, 0.0, 0.3, 0.4, type),
                         GuidedDdimStepReference(x_t, uncond, uncond, 5.0, 0.3, 0.4, type)),
              1e-12);
    EXPECT_LT(MaxAbsDiff(GuidedDdimStepReference(x_t, uncond, text, 1.0, 0.3, 0.4, type),
                         GuidedDdimStepReference(x_t, text, text, 5.0, 0.3, 0.4, type)),
              1e-12);
    // s = 7.5 equals feeding the pre-mixed output uncond + 7.5 (text - uncond).
    const at::Tensor mixed = uncond + 7.5 * (text - uncond);
    EXPECT_LT(MaxAbsDiff(GuidedDdimStepReference(x_t, uncond, text, 7.5, 0.3, 0.4, type),
                         GuidedDdimStepReference(x_t, mixed, mixed, 1.0, 0.3, 0.4, type)),
              1e-12);
  }
}

TEST(GuidedDdimStepTest, DispatcherOnCpuEqualsReference) {
  for (const at::ScalarType dtype : {at::kDouble, at::kFloat, at::kBFloat16, at::kHalf}) {
    const at::Tensor x_t = Random({2, 4, 9, 7}, dtype, 6);
    const at::Tensor uncond = Random({2, 4, 9, 7}, dtype, 7);
    const at::Tensor text = Random({2, 4, 9, 7}, dtype, 8);
    for (const PredictionType type : kBothTypes) {
      SCOPED_TRACE(Name(type) + " " + c10::toString(dtype));
      const at::Tensor got = GuidedDdimStep(x_t, uncond, text, 7.5, 0.42, 0.51, type);
      EXPECT_EQ(got.scalar_type(), dtype);
      EXPECT_EQ(got.sizes(), x_t.sizes());
      EXPECT_TRUE(
          at::equal(got, GuidedDdimStepReference(x_t, uncond, text, 7.5, 0.42, 0.51, type)));
    }
  }
}

TEST(GuidedDdimStepTest, RejectsBadArgumentsWithClearErrors) {
  const at::Tensor x = at::zeros({1, 4, 8, 8});
  const auto eps = PredictionType::kEpsilon;
  for (const auto& op : {&GuidedDdimStep, &GuidedDdimStepReference}) {
    EXPECT_NE(ErrorOf([&] {
                op(x, at::zeros({1, 4, 8, 7}), x, 7.5, 0.5, 0.6, eps);
              }).find("out_uncond has shape [1, 4, 8, 7] but x_t has shape [1, 4, 8, 8]"),
              std::string::npos);
    EXPECT_NE(ErrorOf([&] {
                op(x, x, at::zeros({2, 4, 8, 8}), 7.5, 0.5, 0.6, eps);
              }).find("out_text has shape"),
              std::string::npos);
    EXPECT_NE(ErrorOf([&] { op(x, x.to(at::kHalf), x, 7.5, 0.5, 0.6, eps); }).find("out_uncond is"),
              std::string::npos);
    EXPECT_NE(ErrorOf([&] { op(x, x, x, 7.5, 0.0, 0.6, eps); }).find("alpha_prod_t must be in"),
              std::string::npos);
    EXPECT_NE(ErrorOf([&] { op(x, x, x, 7.5, 0.5, 1.5, eps); }).find("alpha_prod_prev must be in"),
              std::string::npos);
    EXPECT_NE(ErrorOf([&] { op(x, x, x, NAN, 0.5, 0.6, eps); }).find("guidance_scale"),
              std::string::npos);
    EXPECT_EQ(ErrorOf([&] { op(x, x, x, 7.5, 0.5, 0.6, eps); }), "");
  }
}

// --- CUDA: the fused kernel against the float64 reference of the same (rounded) inputs. ---

TEST(GuidedDdimStepCudaTest, MatchesReference) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  if (!HaveCudaKernels()) GTEST_SKIP() << "db_kernels built without nvcc";
  // 2*4*64*64: whole 16-byte vectors; 3*5*9*7 = 945: vectors and a scalar tail; 1: tail only.
  const std::vector<std::vector<int64_t>> shapes = {{2, 4, 64, 64}, {3, 5, 9, 7}, {1}};
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    const double tolerance = dtype == at::kFloat ? 1e-7 : 1e-4;
    for (const auto& shape : shapes) {
      const at::Tensor x_t = Random(shape, dtype, 9), uncond = Random(shape, dtype, 10, 0.1),
                       text = Random(shape, dtype, 11, -0.1);
      for (const PredictionType type : kBothTypes) {
        for (const auto& [a_t, a_prev] : kAlphas) {
          SCOPED_TRACE(Name(type) + " " + c10::toString(dtype) + " numel " +
                       std::to_string(x_t.numel()) + " a_t " + std::to_string(a_t));
          const at::Tensor exact =
              GuidedDdimStepReference(x_t.to(at::kDouble), uncond.to(at::kDouble),
                                      text.to(at::kDouble), 7.5, a_t, a_prev, type);
          const at::Tensor got =
              GuidedDdimStep(x_t.cuda(), uncond.cuda(), text.cuda(), 7.5, a_t, a_prev, type);
          ASSERT_TRUE(got.is_cuda());
          EXPECT_EQ(got.scalar_type(), dtype);
          EXPECT_LE(Nmse(got, exact), tolerance);
        }
      }
    }
  }
}

TEST(GuidedDdimStepCudaTest, UnalignedBuffersTakeTheScalarPath) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  if (!HaveCudaKernels()) GTEST_SKIP() << "db_kernels built without nvcc";
  // Views starting one element in: contiguous, but not 16-byte aligned.
  const at::Tensor base = Random({3, 4097}, at::kFloat, 12).cuda();
  const at::Tensor x_t = base[0].narrow(0, 1, 4096), uncond = base[1].narrow(0, 1, 4096),
                   text = base[2].narrow(0, 1, 4096);
  ASSERT_TRUE(x_t.is_contiguous());
  for (const PredictionType type : kBothTypes) {
    SCOPED_TRACE(Name(type));
    const at::Tensor exact = GuidedDdimStepReference(x_t.to(at::kDouble), uncond.to(at::kDouble),
                                                     text.to(at::kDouble), 7.5, 0.42, 0.51, type);
    EXPECT_LE(Nmse(GuidedDdimStep(x_t, uncond, text, 7.5, 0.42, 0.51, type), exact), 1e-7);
  }
}

TEST(GuidedDdimStepCudaTest, BuildWithoutNvccRejectsCudaTensors) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  if (HaveCudaKernels()) GTEST_SKIP() << "db_kernels built with nvcc";
  const at::Tensor x = at::zeros({4}).cuda();
  EXPECT_NE(ErrorOf([&] {
              GuidedDdimStep(x, x, x, 7.5, 0.5, 0.6, PredictionType::kEpsilon);
            }).find("built without nvcc"),
            std::string::npos);
}

}  // namespace
}  // namespace dreambooth::kernels
