// The memory-efficient attention (log-sum-exp forward, chunk-wise recomputing backward) gives the
// plain single-matrix attention's output and gradients.
#include "worker/diffusion/memory_efficient_attention.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>

#include <string>
#include <vector>

#include "worker/diffusion/attention.h"

namespace dreambooth::diffusion {
namespace {

struct Result {
  at::Tensor out, dq, dk, dv;
};

// Output and gradients of sum(out * w) for attention computed by `fn`.
template <typename Fn>
Result RunAttention(Fn fn, at::ScalarType dtype, int64_t nq, int64_t nk) {
  at::manual_seed(7);
  at::Tensor q = at::randn({2, 3, nq, 8}, dtype).requires_grad_(true);
  at::Tensor k = at::randn({2, 3, nk, 8}, dtype).requires_grad_(true);
  at::Tensor v = at::randn({2, 3, nk, 8}, dtype).requires_grad_(true);
  at::Tensor w = at::randn({2, 3, nq, 8}, dtype);
  at::Tensor out = fn(q, k, v);
  std::vector<at::Tensor> g = torch::autograd::grad({(out * w).sum()}, {q, k, v});
  return {out.detach(), g[0], g[1], g[2]};
}

double MaxRel(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max()).item<double>();
}

at::Tensor Plain(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  return at::matmul(at::softmax(at::matmul(q, k.transpose(-1, -2)) * 0.35, -1), v);
}

TEST(MemoryEfficientAttentionTest, MatchesPlainAttentionAndItsGradients) {
  for (at::ScalarType dtype : {at::kDouble, at::kFloat}) {
    // Query lengths that are and are not a multiple of the chunk; self- and cross-attention.
    for (auto [nq, nk] : std::vector<std::pair<int64_t, int64_t>>{{300, 300}, {256, 77}}) {
      const Result ref = RunAttention(Plain, dtype, nq, nk);
      const Result got = RunAttention(
          [](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
            return MemoryEfficientAttention(q, k, v, 0.35, 64);
          },
          dtype, nq, nk);
      const double tol = dtype == at::kDouble ? 1e-12 : 2e-6;
      EXPECT_LE(MaxRel(got.out, ref.out), tol) << nq << "x" << nk;
      EXPECT_LE(MaxRel(got.dq, ref.dq), tol) << nq << "x" << nk;
      EXPECT_LE(MaxRel(got.dk, ref.dk), tol) << nq << "x" << nk;
      EXPECT_LE(MaxRel(got.dv, ref.dv), tol) << nq << "x" << nk;
    }
  }
}

// True when the autograd graph behind `t` (a few levels deep) holds a node whose name contains
// `name`.
bool GraphHasNode(const at::Tensor& t, const std::string& name) {
  std::vector<torch::autograd::Node*> frontier = {t.grad_fn().get()};
  for (int depth = 0; depth < 4 && !frontier.empty(); ++depth) {
    std::vector<torch::autograd::Node*> next;
    for (torch::autograd::Node* node : frontier) {
      if (node == nullptr) continue;
      if (node->name().find(name) != std::string::npos) return true;
      for (const auto& edge : node->next_edges()) next.push_back(edge.function.get());
    }
    frontier = next;
  }
  return false;
}

bool GraphHasMemoryEfficientNode(const at::Tensor& t) {
  return GraphHasNode(t, "MemoryEfficientAttention");
}

// The `chunked` backend takes it when autograd records, and inference never does. `auto` takes
// LibTorch's fused kernel (which keeps no probabilities either) from 512x512 scores when training
// on CPU and the single matrix below that.
TEST(MemoryEfficientAttentionTest, BackendsTakeItForLongTrainingSequences) {
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
  EXPECT_LE(MaxRel(got.dq, ref.dq), 1e-12);
  EXPECT_LE(MaxRel(got.dk, ref.dk), 1e-12);
}

}  // namespace
}  // namespace dreambooth::diffusion
