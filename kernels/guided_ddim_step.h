// Fused classifier-free guidance + DDIM step for sampling: diffusers' DDIMScheduler.step with
// eta = 0 and clip_sample = False, applied to the guided model output
//   out = out_uncond + guidance_scale * (out_text - out_uncond)
//   epsilon:      eps = out,  x0 = (x_t - sqrt(1 - a_t) * eps) / sqrt(a_t)
//   v_prediction: x0 = sqrt(a_t) * x_t - sqrt(1 - a_t) * out,  eps = sqrt(a_t) * out +
//                 sqrt(1 - a_t) * x_t
//   x_prev = sqrt(a_prev) * x0 + sqrt(1 - a_prev) * eps
// with a_t = alpha_prod_t and a_prev = alpha_prod_prev (the scheduler's alphas_cumprod entries,
// or its final alpha for the last step).
//
// x_t, out_uncond and out_text have one shape, dtype (float64, float32, bfloat16, float16) and
// device; the result is a new tensor like x_t. Half types are computed in float32. Bad arguments
// throw c10::Error naming the op. Not differentiable (sampling only). Thread-safe.
#ifndef KERNELS_GUIDED_DDIM_STEP_H_
#define KERNELS_GUIDED_DDIM_STEP_H_

#include <ATen/ATen.h>

namespace dreambooth::kernels {

// What the UNet predicts (diffusers' prediction_type).
enum class PredictionType {
  kEpsilon,      // "epsilon": the added noise
  kVPrediction,  // "v_prediction": v = sqrt(a_t) * noise - sqrt(1 - a_t) * x0
};

// The formula above as at:: ops on x_t's device (float64 for float64 input, else float32). The
// specification the CUDA kernel is tested against.
at::Tensor GuidedDdimStepReference(const at::Tensor& x_t, const at::Tensor& out_uncond,
                                   const at::Tensor& out_text, double guidance_scale,
                                   double alpha_prod_t, double alpha_prod_prev,
                                   PredictionType prediction_type);

// The same values; on CUDA (float32, bfloat16, float16) one fused elementwise kernel on the
// current stream, otherwise GuidedDdimStepReference. A CUDA tensor in a build without nvcc
// throws c10::Error saying so.
at::Tensor GuidedDdimStep(const at::Tensor& x_t, const at::Tensor& out_uncond,
                          const at::Tensor& out_text, double guidance_scale, double alpha_prod_t,
                          double alpha_prod_prev, PredictionType prediction_type);

}  // namespace dreambooth::kernels

#endif  // KERNELS_GUIDED_DDIM_STEP_H_
