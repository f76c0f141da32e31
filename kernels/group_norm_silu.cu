// Fused GroupNorm + SiLU on CUDA (contract in group_norm_silu.cuh).
//
// Forward: one block per (n, g) reduces the group's mean and variance (Welford, float32), then
// an elementwise pass writes silu(x * scale + shift) without materialising the normalised tensor.
// Backward, with z = xhat * gamma + beta and dz = dy * silu'(z):
//   per (n, c):  A = sum_s dz,  B = sum_s dz * xhat          (one block per (n, c))
//   per c:       grad_beta = sum_n A,  grad_gamma = sum_n B
//   per (n, g):  ma = sum_{c in g} gamma A / M,  mb = sum_{c in g} gamma B / M   (M = D * S)
//   elementwise: dx = rstd * (gamma dz - ma - xhat mb)
#include <algorithm>

#include "kernels/cuda_common.cuh"
#include "kernels/group_norm_silu.cuh"

namespace dreambooth::kernels {
namespace {

using cuda::BlockSum;
using cuda::CeilDiv;
using cuda::FromFloat;
using cuda::Sigmoid;
using cuda::ToFloat;

constexpr int kStatsThreads = 512;
constexpr int kElementwiseThreads = 256;
constexpr int64_t kMaxGrid = 65536;  // grid-stride loops cover the rest

// Running count, mean and sum of squared deviations (trivial, so it may live in __shared__).
struct Welford {
  float count;
  float mean;
  float m2;
};

__device__ __forceinline__ Welford Combine(Welford a, const Welford& b) {
  const float count = a.count + b.count;
  if (count == 0.0f) return a;
  const float delta = b.mean - a.mean;
  const float wb = b.count / count;
  a.mean += delta * wb;
  a.m2 += b.m2 + delta * delta * a.count * wb;
  a.count = count;
  return a;
}

__device__ __forceinline__ Welford WarpCombine(Welford w) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    Welford other;
    other.count = __shfl_xor_sync(0xffffffffu, w.count, offset);
    other.mean = __shfl_xor_sync(0xffffffffu, w.mean, offset);
    other.m2 = __shfl_xor_sync(0xffffffffu, w.m2, offset);
    w = Combine(w, other);
  }
  return w;
}

// grid: n * groups blocks; each reduces the contiguous `group_size` elements of its group.
template <typename T>
__global__ void GroupStatsKernel(const T* __restrict__ x, int64_t group_size, float eps,
                                 float* __restrict__ mean, float* __restrict__ rstd) {
  __shared__ Welford partial[32];
  const T* group = x + static_cast<int64_t>(blockIdx.x) * group_size;
  Welford w{0.0f, 0.0f, 0.0f};
  for (int64_t i = threadIdx.x; i < group_size; i += blockDim.x) {
    const float v = ToFloat(group[i]);
    w.count += 1.0f;
    const float delta = v - w.mean;
    w.mean += delta / w.count;
    w.m2 += delta * (v - w.mean);
  }
  w = WarpCombine(w);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = w;
  __syncthreads();
  if (threadIdx.x < 32) {
    w = threadIdx.x < (blockDim.x >> 5) ? partial[threadIdx.x] : Welford{0.0f, 0.0f, 0.0f};
    w = WarpCombine(w);
    if (threadIdx.x == 0) {
      const float var = fmaxf(w.m2 / static_cast<float>(group_size), 0.0f);
      mean[blockIdx.x] = w.mean;
      rstd[blockIdx.x] = rsqrtf(var + eps);
    }
  }
}

template <typename T>
__global__ void ForwardApplyKernel(const T* __restrict__ x, const float* __restrict__ gamma,
                                   const float* __restrict__ beta, const float* __restrict__ mean,
                                   const float* __restrict__ rstd, int64_t total, int64_t channels,
                                   int64_t spatial, int64_t group_size, T* __restrict__ y) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = (i / spatial) % channels;
    const int64_t ng = i / group_size;
    const float scale = rstd[ng] * gamma[c];
    const float z = (ToFloat(x[i]) - mean[ng]) * scale + beta[c];
    y[i] = FromFloat<T>(z * Sigmoid(z));
  }
}

// dz = dy * silu'(z) for z = xhat * gamma + beta.
__device__ __forceinline__ float SiluGrad(float dy, float z) {
  const float s = Sigmoid(z);
  return dy * s * (1.0f + z * (1.0f - s));
}

// grid: n * channels blocks; writes sums[0][nc] = sum_s dz and sums[1][nc] = sum_s dz * xhat.
template <typename T>
__global__ void ChannelSumsKernel(const T* __restrict__ dy, const T* __restrict__ x,
                                  const float* __restrict__ mean, const float* __restrict__ rstd,
                                  const float* __restrict__ gamma, const float* __restrict__ beta,
                                  int64_t channels, int64_t spatial, int64_t channels_per_group,
                                  float* __restrict__ sum_dz, float* __restrict__ sum_dz_xhat) {
  __shared__ float scratch[32];
  const int64_t nc = blockIdx.x;
  const int64_t c = nc % channels;
  const int64_t ng = nc / channels_per_group;
  const float mu = mean[ng], r = rstd[ng], g = gamma[c], b = beta[c];
  const int64_t base = nc * spatial;
  float a = 0.0f, m = 0.0f;
  for (int64_t s = threadIdx.x; s < spatial; s += blockDim.x) {
    const float xhat = (ToFloat(x[base + s]) - mu) * r;
    const float dz = SiluGrad(ToFloat(dy[base + s]), xhat * g + b);
    a += dz;
    m += dz * xhat;
  }
  a = BlockSum(a, scratch);
  m = BlockSum(m, scratch);
  if (threadIdx.x == 0) {
    sum_dz[nc] = a;
    sum_dz_xhat[nc] = m;
  }
}

// One thread per channel (parameter gradients) and per (n, g) (the group means of dx's terms).
__global__ void BackwardFinalizeKernel(const float* __restrict__ sum_dz,
                                       const float* __restrict__ sum_dz_xhat,
                                       const float* __restrict__ gamma, int64_t n, int64_t channels,
                                       int64_t groups, int64_t group_size,
                                       float* __restrict__ grad_gamma,
                                       float* __restrict__ grad_beta, float* __restrict__ mean_a,
                                       float* __restrict__ mean_b) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < channels) {
    float gb = 0.0f, gg = 0.0f;
    for (int64_t k = 0; k < n; ++k) {
      gb += sum_dz[k * channels + i];
      gg += sum_dz_xhat[k * channels + i];
    }
    grad_beta[i] = gb;
    grad_gamma[i] = gg;
  }
  if (i < n * groups) {
    const int64_t d = channels / groups;
    const int64_t first = (i / groups) * channels + (i % groups) * d;  // (n, g * d)
    float a = 0.0f, b = 0.0f;
    for (int64_t k = 0; k < d; ++k) {
      const float g = gamma[(i % groups) * d + k];
      a += g * sum_dz[first + k];
      b += g * sum_dz_xhat[first + k];
    }
    mean_a[i] = a / static_cast<float>(group_size);
    mean_b[i] = b / static_cast<float>(group_size);
  }
}

template <typename T>
__global__ void BackwardApplyKernel(const T* __restrict__ dy, const T* __restrict__ x,
                                    const float* __restrict__ mean, const float* __restrict__ rstd,
                                    const float* __restrict__ gamma, const float* __restrict__ beta,
                                    const float* __restrict__ mean_a,
                                    const float* __restrict__ mean_b, int64_t total,
                                    int64_t channels, int64_t spatial, int64_t group_size,
                                    T* __restrict__ dx) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = (i / spatial) % channels;
    const int64_t ng = i / group_size;
    const float r = rstd[ng];
    const float xhat = (ToFloat(x[i]) - mean[ng]) * r;
    const float dz = SiluGrad(ToFloat(dy[i]), xhat * gamma[c] + beta[c]);
    dx[i] = FromFloat<T>(r * (gamma[c] * dz - mean_a[ng] - xhat * mean_b[ng]));
  }
}

int ElementwiseBlocks(int64_t total) {
  return static_cast<int>(std::min(CeilDiv(total, kElementwiseThreads), kMaxGrid));
}

// Threads for a block-per-row reduction over `len` elements: a power of two in [32, 512].
int ReductionThreads(int64_t len) {
  int threads = 32;
  while (threads < 512 && threads < len) threads *= 2;
  return threads;
}

bool ValidShape(int64_t n, int64_t channels, int64_t spatial, int64_t groups) {
  return n >= 0 && channels > 0 && spatial >= 0 && groups > 0 && channels % groups == 0 &&
         n * groups <= INT32_MAX && n * channels <= INT32_MAX;
}

}  // namespace

cudaError_t LaunchGroupNormSiluForward(KernelDType dtype, const void* x, const float* gamma,
                                       const float* beta, int64_t n, int64_t channels,
                                       int64_t spatial, int64_t groups, float eps, void* y,
                                       float* mean, float* rstd, cudaStream_t stream) {
  if (!ValidShape(n, channels, spatial, groups)) return cudaErrorInvalidValue;
  const int64_t total = n * channels * spatial;
  if (total == 0) return cudaSuccess;
  const int64_t group_size = (channels / groups) * spatial;
  return cuda::DispatchDType(dtype, [&](auto tag) {
    using T = decltype(tag);
    GroupStatsKernel<T><<<static_cast<unsigned>(n * groups), kStatsThreads, 0, stream>>>(
        static_cast<const T*>(x), group_size, eps, mean, rstd);
    ForwardApplyKernel<T><<<ElementwiseBlocks(total), kElementwiseThreads, 0, stream>>>(
        static_cast<const T*>(x), gamma, beta, mean, rstd, total, channels, spatial, group_size,
        static_cast<T*>(y));
    return cudaGetLastError();
  });
}

cudaError_t LaunchGroupNormSiluBackward(KernelDType dtype, const void* dy, const void* x,
                                        const float* mean, const float* rstd, const float* gamma,
                                        const float* beta, int64_t n, int64_t channels,
                                        int64_t spatial, int64_t groups, void* dx,
                                        float* grad_gamma, float* grad_beta, float* workspace,
                                        cudaStream_t stream) {
  if (!ValidShape(n, channels, spatial, groups)) return cudaErrorInvalidValue;
  const int64_t total = n * channels * spatial;
  if (total == 0) {  // no elements: the parameter gradients are zero
    cudaError_t err = cudaMemsetAsync(grad_gamma, 0, channels * sizeof(float), stream);
    if (err == cudaSuccess) err = cudaMemsetAsync(grad_beta, 0, channels * sizeof(float), stream);
    return err;
  }
  const int64_t channels_per_group = channels / groups;
  const int64_t group_size = channels_per_group * spatial;
  float* sum_dz = workspace;
  float* sum_dz_xhat = sum_dz + n * channels;
  float* mean_a = sum_dz_xhat + n * channels;
  float* mean_b = mean_a + n * groups;
  return cuda::DispatchDType(dtype, [&](auto tag) {
    using T = decltype(tag);
    const auto* dy_t = static_cast<const T*>(dy);
    const auto* x_t = static_cast<const T*>(x);
    ChannelSumsKernel<T>
        <<<static_cast<unsigned>(n * channels), ReductionThreads(spatial), 0, stream>>>(
            dy_t, x_t, mean, rstd, gamma, beta, channels, spatial, channels_per_group, sum_dz,
            sum_dz_xhat);
    const int64_t finalize_threads = std::max(channels, n * groups);
    BackwardFinalizeKernel<<<static_cast<unsigned>(CeilDiv(finalize_threads, 128)), 128, 0,
                             stream>>>(sum_dz, sum_dz_xhat, gamma, n, channels, groups, group_size,
                                       grad_gamma, grad_beta, mean_a, mean_b);
    BackwardApplyKernel<T><<<ElementwiseBlocks(total), kElementwiseThreads, 0, stream>>>(
        dy_t, x_t, mean, rstd, gamma, beta, mean_a, mean_b, total, channels, spatial, group_size,
        static_cast<T*>(dx));
    return cudaGetLastError();
  });
}

}  // namespace dreambooth::kernels
