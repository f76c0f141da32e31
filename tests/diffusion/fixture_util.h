// Test helpers: paths of the golden fixtures and loading fixture weights into a module.
#ifndef TESTS_DIFFUSION_FIXTURE_UTIL_H_
#define TESTS_DIFFUSION_FIXTURE_UTIL_H_

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/module.h>

#include <set>
#include <string>

#include "worker/diffusion/io/safetensors.h"

namespace dreambooth::diffusion::testing {

inline std::string TinyFixtureDir() { return DB_TEST_DATA_DIR "/fixtures/tiny-a"; }

inline std::string TinyFixture(const std::string& relative) {
  return TinyFixtureDir() + "/" + relative;
}

// Reads a safetensors file; fails the test when it cannot be read.
inline TensorMap ReadOrDie(const std::string& path) {
  absl::StatusOr<TensorMap> map = ReadSafetensors(path);
  EXPECT_TRUE(map.ok()) << map.status();
  return map.ok() ? *std::move(map) : TensorMap{};
}

// Copies `weights` into `module` by parameter name and checks that the key sets and shapes
// match exactly (so the module's names equal the upstream names).
inline void LoadExactly(torch::nn::Module& module, const TensorMap& weights) {
  at::NoGradGuard no_grad;
  std::set<std::string> seen;
  for (auto& p : module.named_parameters(/*recurse=*/true)) {
    auto it = weights.find(p.key());
    ASSERT_NE(it, weights.end()) << "missing in file: " << p.key();
    ASSERT_EQ(it->second.sizes(), p.value().sizes()) << p.key();
    p.value().copy_(it->second);
    seen.insert(p.key());
  }
  for (const auto& [name, tensor] : weights) {
    EXPECT_TRUE(seen.count(name)) << "unexpected in file: " << name;
  }
}

// Largest absolute difference (float64).
inline double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  if (a.sizes() != b.sizes()) return 1e30;
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

}  // namespace dreambooth::diffusion::testing

#endif  // TESTS_DIFFUSION_FIXTURE_UTIL_H_
