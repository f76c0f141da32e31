// Fused classifier-free guidance + DDIM step on CUDA (contract in guided_ddim_step.cuh): one
// elementwise pass reading x_t and both model outputs and writing x_prev, with 16-byte vector
// loads and stores when every buffer is 16-byte aligned and a scalar loop for the rest.
#include <algorithm>

#include "kernels/cuda_common.cuh"
#include "kernels/guided_ddim_step.cuh"

namespace dreambooth::kernels {
namespace {

using cuda::CeilDiv;
using cuda::FromFloat;
using cuda::ToFloat;

constexpr int kThreads = 256;
constexpr int64_t kMaxGrid = 65536;  // grid-stride loops cover the rest

__device__ __forceinline__ float Step(float x, float out_u, float out_t,
                                      const GuidedDdimCoefficients& k) {
  const float out = out_u + k.guidance_scale * (out_t - out_u);
  float x0, eps;
  if (k.v_prediction) {
    x0 = k.sqrt_alpha_t * x - k.sqrt_beta_t * out;
    eps = k.sqrt_alpha_t * out + k.sqrt_beta_t * x;
  } else {
    x0 = (x - k.sqrt_beta_t * out) / k.sqrt_alpha_t;
    eps = out;
  }
  return k.sqrt_alpha_prev * x0 + k.sqrt_beta_prev * eps;
}

// kVec consecutive elements moved as one 16-byte load or store (kVec = 1: plain scalar).
template <typename T, int kVec>
struct alignas(sizeof(T) * kVec) Pack {
  T v[kVec];
};

// Elements [0, num_packs * kVec) as packs, then [num_packs * kVec, numel) one by one.
template <typename T, int kVec>
__global__ void GuidedDdimStepKernel(const T* __restrict__ x_t, const T* __restrict__ out_uncond,
                                     const T* __restrict__ out_text, int64_t numel,
                                     GuidedDdimCoefficients k, T* __restrict__ x_prev) {
  using P = Pack<T, kVec>;
  const int64_t num_packs = numel / kVec;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  for (int64_t p = first; p < num_packs; p += stride) {
    const P x = reinterpret_cast<const P*>(x_t)[p];
    const P u = reinterpret_cast<const P*>(out_uncond)[p];
    const P t = reinterpret_cast<const P*>(out_text)[p];
    P y;
#pragma unroll
    for (int j = 0; j < kVec; ++j) {
      y.v[j] = FromFloat<T>(Step(ToFloat(x.v[j]), ToFloat(u.v[j]), ToFloat(t.v[j]), k));
    }
    reinterpret_cast<P*>(x_prev)[p] = y;
  }
  for (int64_t i = num_packs * kVec + first; i < numel; i += stride) {
    x_prev[i] =
        FromFloat<T>(Step(ToFloat(x_t[i]), ToFloat(out_uncond[i]), ToFloat(out_text[i]), k));
  }
}

bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

cudaError_t LaunchGuidedDdimStep(KernelDType dtype, const void* x_t, const void* out_uncond,
                                 const void* out_text, int64_t numel,
                                 const GuidedDdimCoefficients& coefficients, void* x_prev,
                                 cudaStream_t stream) {
  if (numel < 0) return cudaErrorInvalidValue;
  if (numel == 0) return cudaSuccess;
  const bool vectorize =
      Aligned16(x_t) && Aligned16(out_uncond) && Aligned16(out_text) && Aligned16(x_prev);
  return cuda::DispatchDType(dtype, [&](auto tag) {
    using T = decltype(tag);
    constexpr int kVec = 16 / sizeof(T);
    const auto* x = static_cast<const T*>(x_t);
    const auto* u = static_cast<const T*>(out_uncond);
    const auto* t = static_cast<const T*>(out_text);
    auto* y = static_cast<T*>(x_prev);
    if (vectorize) {
      const int blocks =
          static_cast<int>(std::min(CeilDiv(CeilDiv(numel, kVec), kThreads), kMaxGrid));
      GuidedDdimStepKernel<T, kVec>
          <<<blocks, kThreads, 0, stream>>>(x, u, t, numel, coefficients, y);
    } else {
      const int blocks = static_cast<int>(std::min(CeilDiv(numel, kThreads), kMaxGrid));
      GuidedDdimStepKernel<T, 1><<<blocks, kThreads, 0, stream>>>(x, u, t, numel, coefficients, y);
    }
    return cudaGetLastError();
  });
}

}  // namespace dreambooth::kernels
