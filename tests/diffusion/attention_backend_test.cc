// The attention backends of worker/diffusion: `chunked` takes the memory-efficient kernel when
// autograd records, `auto` takes LibTorch's fused kernel from 512x512 scores in CPU training.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "tests/kernels/attention_test_util.h"
#include "worker/diffusion/models/attention.h"

namespace dreambooth::diffusion {
namespace {
using testing::GraphHasMemoryEfficientNode;
using testing::GraphHasNode;
using testing::MaxRel;
using testing::Plain;
using testing::Result;
using testing::RunAttention;

// The `chunked` backend takes it when autograd records, and inference never does. `auto` takes
// LibTorch's fused kernel (which keeps no probabilities either) from 512x512 scores when training
// on CPU and the single matrix below that.
TEST(AttentionBackendTest, BackendsTakeItForLongTrainingSequences) {
  AttentionOptions chunked;
  chunked.backend = AttentionBackend::kChunked;
  chunked.query_chunk_size = 64;
  auto attend = [](int64_t n, const AttentionOptions& options, bool grad) {
    at::Tensor q = at::randn({1, 2, n, 8}, at::kDouble).requires_grad_(grad);
    at::Tensor k = at::randn({1, 2, n, 8}, at::kDouble);
    return ScaledDotProductAttention(q, k, k, 0.35, options);
  };
  EXPECT_TRUE(GraphHasMemoryEfficientNode(attend(300, chunked, true)));
  EXPECT_TRUE(GraphHasNode(attend(512, AttentionOptions{}, true), "ScaledDotProduct"));
  EXPECT_FALSE(GraphHasNode(attend(300, AttentionOptions{}, true), "ScaledDotProduct"));
  EXPECT_FALSE(GraphHasMemoryEfficientNode(attend(300, AttentionOptions{}, true)));
  EXPECT_FALSE(attend(300, chunked, false).requires_grad());

  // And its gradients through the backend are the plain ones.
  const Result ref = RunAttention(Plain, at::kDouble, 300, 300);
  const Result got = RunAttention(
      [&](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
        return ScaledDotProductAttention(q, k, v, 0.35, chunked);
      },
      at::kDouble, 300, 300);
  EXPECT_LE(MaxRel(got.dq, ref.dq), 1e-9);  // float64; see memory_efficient_attention_test
  EXPECT_LE(MaxRel(got.dk, ref.dk), 1e-9);
}

}  // namespace
}  // namespace dreambooth::diffusion
