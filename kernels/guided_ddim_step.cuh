// Host launcher of the fused classifier-free guidance + DDIM (eta = 0) step (guided_ddim_step.cu).
// No LibTorch here: callers pass raw device pointers into contiguous buffers of `numel` elements
// of `dtype` and the stream to run on; arithmetic is float32. The launcher only enqueues work and
// returns cudaGetLastError(). Thread-safe.
#ifndef KERNELS_GUIDED_DDIM_STEP_CUH_
#define KERNELS_GUIDED_DDIM_STEP_CUH_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/kernel_dtype.h"

namespace dreambooth::kernels {

// Per-step scalars, computed on the host from the scheduler's alphas.
struct GuidedDdimCoefficients {
  float guidance_scale;   // s in out = out_u + s * (out_t - out_u)
  float sqrt_alpha_t;     // sqrt(alpha_prod_t)
  float sqrt_beta_t;      // sqrt(1 - alpha_prod_t)
  float sqrt_alpha_prev;  // sqrt(alpha_prod_prev)
  float sqrt_beta_prev;   // sqrt(1 - alpha_prod_prev)
  bool v_prediction;      // model outputs are v (else epsilon)
};

// x_prev = sqrt_alpha_prev * x0 + sqrt_beta_prev * eps with, for the guided output o,
//   epsilon:      eps = o,  x0 = (x_t - sqrt_beta_t * o) / sqrt_alpha_t
//   v_prediction: x0 = sqrt_alpha_t * x_t - sqrt_beta_t * o,  eps = sqrt_alpha_t * o +
//                 sqrt_beta_t * x_t.
// x_prev must not overlap the inputs.
cudaError_t LaunchGuidedDdimStep(KernelDType dtype, const void* x_t, const void* out_uncond,
                                 const void* out_text, int64_t numel,
                                 const GuidedDdimCoefficients& coefficients, void* x_prev,
                                 cudaStream_t stream);

}  // namespace dreambooth::kernels

#endif  // KERNELS_GUIDED_DDIM_STEP_CUH_
