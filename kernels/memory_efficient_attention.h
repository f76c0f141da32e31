// Differentiable attention that never keeps the [Nq, Nk] probabilities for backward: the forward
// stores each query row's log-sum-exp, the backward recomputes the probabilities one query chunk
// at a time from it (FlashAttention's backward recurrences, on CPU tensors). Peak memory per
// layer is O((Nq + Nk) * D) plus one [chunk, Nk] block per thread instead of O(Nq * Nk).
#ifndef DREAMBOOTH_KERNELS_MEMORY_EFFICIENT_ATTENTION_H_
#define DREAMBOOTH_KERNELS_MEMORY_EFFICIENT_ATTENTION_H_

#include <ATen/ATen.h>

#include <cstdint>

namespace dreambooth::kernels {

// softmax(q k^T * scale) v for q [B, H, Nq, D], k/v [B, H, Nk, D] (float32 or float64, no mask),
// differentiable in q, k and v (first order). Thread-safe; parallel over (batch * head).
at::Tensor MemoryEfficientAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    double scale, int64_t query_chunk);

}  // namespace dreambooth::kernels

#endif  // DREAMBOOTH_KERNELS_MEMORY_EFFICIENT_ATTENTION_H_
