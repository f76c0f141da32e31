// A gtest check shared by the model I/O suites: two modules hold exactly the same weights.
#ifndef DREAMBOOTH_TESTS_DIFFUSION_WEIGHTS_UTIL_H_
#define DREAMBOOTH_TESTS_DIFFUSION_WEIGHTS_UTIL_H_

#include <gtest/gtest.h>

#include <string>

#include "worker/diffusion/io/model_loader.h"

namespace dreambooth::diffusion::testing {

// Same parameter and buffer names, each tensor equal (bit for bit); `what` names the pair in
// failures.
inline void ExpectSameWeights(const torch::nn::Module& a, const torch::nn::Module& b,
                              const std::string& what) {
  TensorMap wa = ModuleStateDict(a);
  TensorMap wb = ModuleStateDict(b);
  ASSERT_EQ(wa.size(), wb.size()) << what;
  for (const auto& [name, tensor] : wa) {
    ASSERT_EQ(wb.count(name), 1u) << what << " " << name;
    EXPECT_TRUE(at::equal(tensor, wb.at(name))) << what << " " << name;
  }
}

}  // namespace dreambooth::diffusion::testing

#endif  // DREAMBOOTH_TESTS_DIFFUSION_WEIGHTS_UTIL_H_
