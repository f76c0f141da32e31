// kernels/group_norm_silu: the reference against LibTorch's silu(group_norm(...)) (values and
// gradients), the dispatcher on CPU against the reference, argument errors, and the fused CUDA
// forward and backward against a float64 reference (skipped without a GPU).
#include "kernels/group_norm_silu.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/cuda.h>

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

constexpr double kEps = 1e-5;

// One case: x's shape and the number of groups.
struct Shape {
  std::vector<int64_t> x;
  int64_t groups;
};

// Every group holds at least 4 elements: with 2, xhat is +-1 whatever x is, grad_x is pure
// rounding noise and no relative error measure means anything.
const std::vector<Shape>& Shapes() {
  static const std::vector<Shape> shapes = {
      {{4, 12}, 3},           // [N, C]
      {{2, 6, 7}, 3},         // [N, C, L]
      {{2, 32, 8, 8}, 8},     // [N, C, H, W]
      {{3, 12, 7, 5}, 4},     // odd spatial size
      {{1, 8, 3, 4, 5}, 2},   // [N, C, D, H, W]
      {{2, 64, 16, 16}, 32},  // the UNet's 32 groups
  };
  return shapes;
}

// Output and gradients (x, gamma, beta) of `f` for upstream gradient dy.
struct Result {
  at::Tensor y, dx, dgamma, dbeta;
};

template <typename F>
Result Run(F f, const at::Tensor& x, const at::Tensor& gamma, const at::Tensor& beta,
           const at::Tensor& dy) {
  at::Tensor xv = x.detach().clone().requires_grad_(true);
  at::Tensor gv = gamma.detach().clone().requires_grad_(true);
  at::Tensor bv = beta.detach().clone().requires_grad_(true);
  at::Tensor y = f(xv, gv, bv);
  const auto grads = torch::autograd::grad({y}, {xv, gv, bv}, {dy.to(y.options())});
  return {y.detach(), grads[0], grads[1], grads[2]};
}

Result RunComposite(const at::Tensor& x, int64_t groups, const at::Tensor& gamma,
                    const at::Tensor& beta, const at::Tensor& dy) {
  return Run(
      [&](const at::Tensor& xv, const at::Tensor& gv, const at::Tensor& bv) {
        return at::silu(at::group_norm(xv, groups, gv, bv, kEps));
      },
      x, gamma, beta, dy);
}

Result RunReference(const at::Tensor& x, int64_t groups, const at::Tensor& gamma,
                    const at::Tensor& beta, const at::Tensor& dy) {
  return Run([&](const at::Tensor& xv, const at::Tensor& gv,
                 const at::Tensor& bv) { return GroupNormSiluReference(xv, groups, gv, bv, kEps); },
             x, gamma, beta, dy);
}

Result RunDispatcher(const at::Tensor& x, int64_t groups, const at::Tensor& gamma,
                     const at::Tensor& beta, const at::Tensor& dy) {
  return Run([&](const at::Tensor& xv, const at::Tensor& gv,
                 const at::Tensor& bv) { return GroupNormSilu(xv, groups, gv, bv, kEps); },
             x, gamma, beta, dy);
}

// Inputs like a UNet activation: offset and scaled, with non-trivial affine parameters.
struct Inputs {
  at::Tensor x, gamma, beta, dy;
};

Inputs MakeInputs(const Shape& shape, at::ScalarType dtype, uint64_t seed) {
  const int64_t channels = shape.x[1];
  return {Random(shape.x, dtype, seed, 0.5, 2.0), Random({channels}, dtype, seed + 1, 1.0, 0.5),
          Random({channels}, dtype, seed + 2, 0.0, 0.5), Random(shape.x, dtype, seed + 3)};
}

std::string Describe(const Shape& shape) {
  return "x " + c10::str(at::IntArrayRef(shape.x)) + ", groups " + std::to_string(shape.groups);
}

TEST(GroupNormSiluReferenceTest, MatchesLibTorchCompositeInFloat64) {
  for (const Shape& shape : Shapes()) {
    SCOPED_TRACE(Describe(shape));
    const Inputs in = MakeInputs(shape, at::kDouble, 10);
    const Result ref = RunReference(in.x, shape.groups, in.gamma, in.beta, in.dy);
    const Result lib = RunComposite(in.x, shape.groups, in.gamma, in.beta, in.dy);
    EXPECT_EQ(ref.y.scalar_type(), at::kDouble);
    EXPECT_LT(MaxAbsDiff(ref.y, lib.y), 1e-12);
    EXPECT_LT(MaxAbsDiff(ref.dx, lib.dx), 1e-10);
    EXPECT_LT(MaxAbsDiff(ref.dgamma, lib.dgamma), 1e-10);
    EXPECT_LT(MaxAbsDiff(ref.dbeta, lib.dbeta), 1e-10);
  }
}

TEST(GroupNormSiluReferenceTest, MatchesLibTorchCompositeInFloat32) {
  for (const Shape& shape : Shapes()) {
    SCOPED_TRACE(Describe(shape));
    const Inputs in = MakeInputs(shape, at::kFloat, 20);
    const Result ref = RunReference(in.x, shape.groups, in.gamma, in.beta, in.dy);
    const Result lib = RunComposite(in.x, shape.groups, in.gamma, in.beta, in.dy);
    EXPECT_EQ(ref.y.scalar_type(), at::kFloat);
    EXPECT_LE(Nmse(ref.y, lib.y), 1e-7);
    EXPECT_LE(Nmse(ref.dx, lib.dx), 1e-7);
    EXPECT_LE(Nmse(ref.dgamma, lib.dgamma), 1e-7);
    EXPECT_LE(Nmse(ref.dbeta, lib.dbeta), 1e-7);
  }
}

TEST(GroupNormSiluReferenceTest, UndefinedAffineMeansIdentity) {
  const Shape shape{{2, 6, 5, 3}, 3};
  const Inputs in = MakeInputs(shape, at::kDouble, 30);
  const at::Tensor y = GroupNormSiluReference(in.x, shape.groups, {}, {}, kEps);
  const at::Tensor expected = at::silu(at::group_norm(in.x, shape.groups, {}, {}, kEps));
  EXPECT_LT(MaxAbsDiff(y, expected), 1e-12);
}

TEST(GroupNormSiluReferenceTest, HalfInputsComputeInFloat32AndRoundOnce) {
  const Shape shape{{2, 32, 8, 8}, 8};
  for (const at::ScalarType dtype : {at::kBFloat16, at::kHalf}) {
    SCOPED_TRACE(c10::toString(dtype));
    const Inputs in = MakeInputs(shape, dtype, 40);
    const at::Tensor y = GroupNormSiluReference(in.x, shape.groups, in.gamma, in.beta, kEps);
    EXPECT_EQ(y.scalar_type(), dtype);
    const at::Tensor exact =
        at::silu(at::group_norm(in.x.to(at::kDouble), shape.groups, in.gamma.to(at::kDouble),
                                in.beta.to(at::kDouble), kEps));
    EXPECT_LE(Nmse(y, exact), 1e-4);
    // Rounded once from float32: the float32 result rounded to `dtype` exactly.
    const at::Tensor from_float = GroupNormSiluReference(
        in.x.to(at::kFloat), shape.groups, in.gamma.to(at::kFloat), in.beta.to(at::kFloat), kEps);
    EXPECT_TRUE(at::equal(y, from_float.to(dtype)));
  }
}

TEST(GroupNormSiluTest, DispatcherOnCpuEqualsReference) {
  for (const at::ScalarType dtype : {at::kDouble, at::kFloat, at::kBFloat16}) {
    for (const Shape& shape : Shapes()) {
      SCOPED_TRACE(Describe(shape) + " " + c10::toString(dtype));
      const Inputs in = MakeInputs(shape, dtype, 50);
      const Result ref = RunReference(in.x, shape.groups, in.gamma, in.beta, in.dy);
      const Result got = RunDispatcher(in.x, shape.groups, in.gamma, in.beta, in.dy);
      EXPECT_TRUE(at::equal(got.y, ref.y));
      EXPECT_TRUE(at::equal(got.dx, ref.dx));
      EXPECT_TRUE(at::equal(got.dgamma, ref.dgamma));
      EXPECT_TRUE(at::equal(got.dbeta, ref.dbeta));
    }
  }
}

TEST(GroupNormSiluTest, RejectsBadArgumentsWithClearErrors) {
  const at::Tensor x = at::zeros({2, 6, 4, 4});
  const at::Tensor p6 = at::ones({6});
  for (const auto& op : {&GroupNormSilu, &GroupNormSiluReference}) {
    EXPECT_NE(ErrorOf([&] { op(x, 4, p6, p6, kEps); }).find("channels (6)"), std::string::npos);
    EXPECT_NE(ErrorOf([&] { op(x, 4, p6, p6, kEps); }).find("not divisible by num_groups (4)"),
              std::string::npos);
    EXPECT_NE(ErrorOf([&] { op(x, 3, at::ones({5}), p6, kEps); }).find("gamma must be [6]"),
              std::string::npos);
    EXPECT_NE(ErrorOf([&] {
                op(x, 3, p6, at::ones({2, 3}), kEps);
              }).find("beta must be [6]"),
              std::string::npos);
    EXPECT_NE(ErrorOf([&] { op(at::zeros({6}), 3, p6, p6, kEps); }).find("[N, C, *spatial]"),
              std::string::npos);
    EXPECT_NE(ErrorOf([&] { op(x, 0, p6, p6, kEps); }).find("num_groups must be positive"),
              std::string::npos);
    EXPECT_NE(ErrorOf([&] { op(x.to(at::kInt), 3, p6, p6, kEps); }).find("floating point"),
              std::string::npos);
    EXPECT_EQ(ErrorOf([&] { op(x, 3, p6, p6, kEps); }), "");
  }
}

// --- CUDA: the fused kernels against the float64 reference of the same (rounded) inputs. ---

TEST(GroupNormSiluCudaTest, ForwardAndBackwardMatchReference) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  if (!HaveCudaKernels()) GTEST_SKIP() << "db_kernels built without nvcc";
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    const double tolerance = dtype == at::kFloat ? 1e-7 : 1e-4;
    for (const Shape& shape : Shapes()) {
      SCOPED_TRACE(Describe(shape) + " " + c10::toString(dtype));
      const Inputs in = MakeInputs(shape, dtype, 60);
      const Result exact =
          RunReference(in.x.to(at::kDouble), shape.groups, in.gamma.to(at::kDouble),
                       in.beta.to(at::kDouble), in.dy.to(at::kDouble));
      const Result got =
          RunDispatcher(in.x.cuda(), shape.groups, in.gamma.cuda(), in.beta.cuda(), in.dy.cuda());
      ASSERT_TRUE(got.y.is_cuda());
      EXPECT_EQ(got.y.scalar_type(), dtype);
      EXPECT_EQ(got.dx.scalar_type(), dtype);
      EXPECT_EQ(got.dgamma.scalar_type(), dtype);
      EXPECT_LE(Nmse(got.y, exact.y), tolerance);
      EXPECT_LE(Nmse(got.dx, exact.dx), tolerance);
      EXPECT_LE(Nmse(got.dgamma, exact.dgamma), tolerance);
      EXPECT_LE(Nmse(got.dbeta, exact.dbeta), tolerance);
    }
  }
}

TEST(GroupNormSiluCudaTest, HalfInputsWithFloat32Parameters) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  if (!HaveCudaKernels()) GTEST_SKIP() << "db_kernels built without nvcc";
  const Shape shape{{2, 64, 16, 16}, 32};
  const Inputs in = MakeInputs(shape, at::kFloat, 70);
  const at::Tensor x = in.x.to(at::kBFloat16), dy = in.dy.to(at::kBFloat16);
  const Result exact = RunReference(x.to(at::kDouble), shape.groups, in.gamma.to(at::kDouble),
                                    in.beta.to(at::kDouble), dy.to(at::kDouble));
  const Result got =
      RunDispatcher(x.cuda(), shape.groups, in.gamma.cuda(), in.beta.cuda(), dy.cuda());
  EXPECT_EQ(got.y.scalar_type(), at::kBFloat16);
  EXPECT_EQ(got.dgamma.scalar_type(), at::kFloat);
  EXPECT_LE(Nmse(got.y, exact.y), 1e-4);
  EXPECT_LE(Nmse(got.dx, exact.dx), 1e-4);
  EXPECT_LE(Nmse(got.dgamma, exact.dgamma), 1e-6);
  EXPECT_LE(Nmse(got.dbeta, exact.dbeta), 1e-6);
}

TEST(GroupNormSiluCudaTest, NonContiguousInputAndFloat64Fallback) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  if (!HaveCudaKernels()) GTEST_SKIP() << "db_kernels built without nvcc";
  const Shape shape{{2, 32, 8, 8}, 8};
  const Inputs in = MakeInputs(shape, at::kFloat, 80);
  const at::Tensor exact = GroupNormSiluReference(
      in.x.to(at::kDouble), shape.groups, in.gamma.to(at::kDouble), in.beta.to(at::kDouble), kEps);
  const at::Tensor channels_last = in.x.cuda().contiguous(at::MemoryFormat::ChannelsLast);
  EXPECT_LE(
      Nmse(GroupNormSilu(channels_last, shape.groups, in.gamma.cuda(), in.beta.cuda()), exact),
      1e-7);
  const at::Tensor f64 =
      GroupNormSilu(in.x.to(at::kDouble).cuda(), shape.groups, in.gamma.to(at::kDouble).cuda(),
                    in.beta.to(at::kDouble).cuda());
  EXPECT_LT(MaxAbsDiff(f64, exact), 1e-10);
}

TEST(GroupNormSiluCudaTest, BuildWithoutNvccRejectsCudaTensors) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  if (HaveCudaKernels()) GTEST_SKIP() << "db_kernels built with nvcc";
  const at::Tensor x = at::zeros({2, 4, 3}).cuda(), p = at::ones({4}).cuda();
  EXPECT_NE(ErrorOf([&] { GroupNormSilu(x, 2, p, p); }).find("built without nvcc"),
            std::string::npos);
}

}  // namespace
}  // namespace dreambooth::kernels
