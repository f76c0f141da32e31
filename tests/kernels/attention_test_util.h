// Helpers of the attention tests: output and gradients of an attention function, the plain
// single-matrix reference, and a look into the autograd graph.
#ifndef DREAMBOOTH_TESTS_KERNELS_ATTENTION_TEST_UTIL_H_
#define DREAMBOOTH_TESTS_KERNELS_ATTENTION_TEST_UTIL_H_

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>

#include <string>
#include <vector>

namespace dreambooth::testing {

struct Result {
  at::Tensor out, dq, dk, dv;
};

// Output and gradients of sum(out * w) for attention computed by `fn`.
template <typename Fn>
inline Result RunAttention(Fn fn, at::ScalarType dtype, int64_t nq, int64_t nk) {
  at::manual_seed(7);
  at::Tensor q = at::randn({2, 3, nq, 8}, dtype).requires_grad_(true);
  at::Tensor k = at::randn({2, 3, nk, 8}, dtype).requires_grad_(true);
  at::Tensor v = at::randn({2, 3, nk, 8}, dtype).requires_grad_(true);
  at::Tensor w = at::randn({2, 3, nq, 8}, dtype);
  at::Tensor out = fn(q, k, v);
  std::vector<at::Tensor> g = torch::autograd::grad({(out * w).sum()}, {q, k, v});
  return {out.detach(), g[0], g[1], g[2]};
}

inline double MaxRel(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max()).item<double>();
}

inline at::Tensor Plain(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  return at::matmul(at::softmax(at::matmul(q, k.transpose(-1, -2)) * 0.35, -1), v);
}

// True when the autograd graph behind `t` (a few levels deep) holds a node whose name contains
// `name`.
inline bool GraphHasNode(const at::Tensor& t, const std::string& name) {
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

inline bool GraphHasMemoryEfficientNode(const at::Tensor& t) {
  return GraphHasNode(t, "MemoryEfficientAttention");
}

}  // namespace dreambooth::testing

#endif  // DREAMBOOTH_TESTS_KERNELS_ATTENTION_TEST_UTIL_H_
