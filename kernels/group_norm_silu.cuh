// Host launchers of the fused GroupNorm + SiLU kernels (group_norm_silu.cu). No LibTorch here:
// callers pass raw device pointers into contiguous buffers and the stream to run on. x is viewed
// as [n, channels, spatial] (spatial = product of the trailing dims), grouped into `groups` groups
// of channels / groups consecutive channels. Element buffers (x, y, dy, dx) have `dtype`; gamma,
// beta, statistics and parameter gradients are float32. Statistics use float32 accumulation.
//
// Each launcher only enqueues work on `stream` and returns cudaGetLastError() (so a launch-config
// error surfaces at once, an execution error at the next synchronisation). Thread-safe.
#ifndef KERNELS_GROUP_NORM_SILU_CUH_
#define KERNELS_GROUP_NORM_SILU_CUH_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/kernel_dtype.h"

namespace dreambooth::kernels {

// y = silu((x - mean[n, g]) * rstd[n, g] * gamma[c] + beta[c]), with mean and the biased
// variance over each (n, g) group and rstd = 1 / sqrt(var + eps). Also writes mean and rstd
// ([n, groups] float32) for the backward. channels % groups must be 0.
cudaError_t LaunchGroupNormSiluForward(KernelDType dtype, const void* x, const float* gamma,
                                       const float* beta, int64_t n, int64_t channels,
                                       int64_t spatial, int64_t groups, float eps, void* y,
                                       float* mean, float* rstd, cudaStream_t stream);

// Floats of device scratch LaunchGroupNormSiluBackward needs.
inline int64_t GroupNormSiluBackwardWorkspaceFloats(int64_t n, int64_t channels, int64_t groups) {
  return 2 * n * channels + 2 * n * groups;
}

// Gradients of the forward above given dy (same layout as x) and the forward's mean and rstd:
// dx (dtype, like x), grad_gamma and grad_beta ([channels] float32, overwritten). `workspace`
// holds GroupNormSiluBackwardWorkspaceFloats(n, channels, groups) floats; its contents on entry
// do not matter.
cudaError_t LaunchGroupNormSiluBackward(KernelDType dtype, const void* dy, const void* x,
                                        const float* mean, const float* rstd, const float* gamma,
                                        const float* beta, int64_t n, int64_t channels,
                                        int64_t spatial, int64_t groups, void* dx,
                                        float* grad_gamma, float* grad_beta, float* workspace,
                                        cudaStream_t stream);

}  // namespace dreambooth::kernels

#endif  // KERNELS_GROUP_NORM_SILU_CUH_
