// Fused GroupNorm + SiLU, the UNet's commonest non-GEMM pattern (ResnetBlock2D's norm1 / norm2
// followed by nonlinearity): y = silu(group_norm(x, num_groups, gamma, beta, eps)).
//
// Shapes: x [N, C, *spatial] (at least 2-D), gamma and beta [C] or undefined (then 1 and 0),
// C divisible by num_groups > 0. Types: float64, float32, bfloat16, float16; half types are
// computed with float32 accumulation and the result is rounded to x's type. Bad arguments throw
// c10::Error (TORCH_CHECK) naming the op and the shapes. All functions are thread-safe.
#ifndef KERNELS_GROUP_NORM_SILU_H_
#define KERNELS_GROUP_NORM_SILU_H_

#include <ATen/ATen.h>

#include <cstdint>

namespace dreambooth::kernels {

// The plain composition of at:: ops (per-group mean and biased variance, normalise, affine,
// x * sigmoid(x)) on x's device, in float64 for float64 input and float32 otherwise. Autograd
// differentiates it like any composition of at:: ops. This is the specification the CUDA kernels
// are tested against.
at::Tensor GroupNormSiluReference(const at::Tensor& x, int64_t num_groups, const at::Tensor& gamma,
                                  const at::Tensor& beta, double eps);

// The same values, differentiable in x, gamma and beta (first order). On CUDA (float32, bfloat16,
// float16) forward and backward are the fused kernels of group_norm_silu.cu, run on the current
// stream; the backward yields grad_x in x's type and grad_gamma / grad_beta in the parameters'
// types. On CPU, and for float64 on CUDA, it is GroupNormSiluReference. A CUDA tensor in a build
// without nvcc throws c10::Error saying so.
at::Tensor GroupNormSilu(const at::Tensor& x, int64_t num_groups, const at::Tensor& gamma,
                         const at::Tensor& beta, double eps = 1e-5);

}  // namespace dreambooth::kernels

#endif  // KERNELS_GROUP_NORM_SILU_H_
