// GuidedDdimStep: argument checks, the at:: reference, and the call of the fused CUDA kernel
// (guided_ddim_step.cuh) on ATen's current stream.
#include "kernels/guided_ddim_step.h"

#include <cmath>
#include <optional>
#include <utility>

#include "kernels/cuda_dispatch.h"

#ifdef DB_HAVE_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include "kernels/guided_ddim_step.cuh"
#endif

namespace dreambooth::kernels {
namespace {

constexpr const char* kOp = "GuidedDdimStep";

void CheckArgs(const at::Tensor& x_t, const at::Tensor& out_uncond, const at::Tensor& out_text,
               double guidance_scale, double alpha_prod_t, double alpha_prod_prev) {
  TORCH_CHECK(x_t.defined() && out_uncond.defined() && out_text.defined(), kOp,
              ": x_t, out_uncond and out_text must all be defined");
  TORCH_CHECK(at::isFloatingType(x_t.scalar_type()), kOp, ": x_t must be floating point, got ",
              x_t.scalar_type());
  for (const auto& [name, t] :
       {std::pair{"out_uncond", &out_uncond}, std::pair{"out_text", &out_text}}) {
    TORCH_CHECK(t->sizes() == x_t.sizes(), kOp, ": ", name, " has shape ", t->sizes(),
                " but x_t has shape ", x_t.sizes());
    TORCH_CHECK(t->scalar_type() == x_t.scalar_type(), kOp, ": ", name, " is ", t->scalar_type(),
                " but x_t is ", x_t.scalar_type());
    TORCH_CHECK(t->device() == x_t.device(), kOp, ": ", name, " is on ", t->device(),
                " but x_t on ", x_t.device());
  }
  TORCH_CHECK(std::isfinite(guidance_scale), kOp, ": guidance_scale must be finite, got ",
              guidance_scale);
  TORCH_CHECK(alpha_prod_t > 0 && alpha_prod_t <= 1, kOp, ": alpha_prod_t must be in (0, 1], got ",
              alpha_prod_t);
  TORCH_CHECK(alpha_prod_prev >= 0 && alpha_prod_prev <= 1, kOp,
              ": alpha_prod_prev must be in [0, 1], got ", alpha_prod_prev);
}

}  // namespace

at::Tensor GuidedDdimStepReference(const at::Tensor& x_t, const at::Tensor& out_uncond,
                                   const at::Tensor& out_text, double guidance_scale,
                                   double alpha_prod_t, double alpha_prod_prev,
                                   PredictionType prediction_type) {
  CheckArgs(x_t, out_uncond, out_text, guidance_scale, alpha_prod_t, alpha_prod_prev);
  const at::ScalarType compute = x_t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor x = x_t.to(compute);
  const at::Tensor uncond = out_uncond.to(compute);
  const at::Tensor out = uncond + guidance_scale * (out_text.to(compute) - uncond);
  const double sqrt_alpha_t = std::sqrt(alpha_prod_t);
  const double sqrt_beta_t = std::sqrt(1 - alpha_prod_t);
  at::Tensor x0, eps;
  if (prediction_type == PredictionType::kVPrediction) {
    x0 = sqrt_alpha_t * x - sqrt_beta_t * out;
    eps = sqrt_alpha_t * out + sqrt_beta_t * x;
  } else {
    x0 = (x - sqrt_beta_t * out) / sqrt_alpha_t;
    eps = out;
  }
  const at::Tensor x_prev = std::sqrt(alpha_prod_prev) * x0 + std::sqrt(1 - alpha_prod_prev) * eps;
  return x_prev.to(x_t.scalar_type());
}

at::Tensor GuidedDdimStep(const at::Tensor& x_t, const at::Tensor& out_uncond,
                          const at::Tensor& out_text, double guidance_scale, double alpha_prod_t,
                          double alpha_prod_prev, PredictionType prediction_type) {
  CheckArgs(x_t, out_uncond, out_text, guidance_scale, alpha_prod_t, alpha_prod_prev);
  if (!x_t.is_cuda()) {
    return GuidedDdimStepReference(x_t, out_uncond, out_text, guidance_scale, alpha_prod_t,
                                   alpha_prod_prev, prediction_type);
  }
  CheckCudaKernelsBuilt(kOp);
#ifdef DB_HAVE_CUDA_KERNELS
  const std::optional<KernelDType> dtype = KernelDTypeOf(x_t.scalar_type());
  if (!dtype) {
    return GuidedDdimStepReference(x_t, out_uncond, out_text, guidance_scale, alpha_prod_t,
                                   alpha_prod_prev, prediction_type);
  }
  const c10::cuda::CUDAGuard guard(x_t.device());
  const at::Tensor x = x_t.contiguous();
  const at::Tensor uncond = out_uncond.contiguous();
  const at::Tensor text = out_text.contiguous();
  at::Tensor x_prev = at::empty_like(x);
  const GuidedDdimCoefficients coefficients{
      .guidance_scale = static_cast<float>(guidance_scale),
      .sqrt_alpha_t = static_cast<float>(std::sqrt(alpha_prod_t)),
      .sqrt_beta_t = static_cast<float>(std::sqrt(1 - alpha_prod_t)),
      .sqrt_alpha_prev = static_cast<float>(std::sqrt(alpha_prod_prev)),
      .sqrt_beta_prev = static_cast<float>(std::sqrt(1 - alpha_prod_prev)),
      .v_prediction = prediction_type == PredictionType::kVPrediction,
  };
  C10_CUDA_CHECK(LaunchGuidedDdimStep(*dtype, x.const_data_ptr(), uncond.const_data_ptr(),
                                      text.const_data_ptr(), x.numel(), coefficients,
                                      x_prev.mutable_data_ptr(), at::cuda::getCurrentCUDAStream()));
  return x_prev;
#else
  return at::Tensor();  // unreachable: CheckCudaKernelsBuilt threw
#endif
}

}  // namespace dreambooth::kernels
