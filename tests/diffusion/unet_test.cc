// UNet2DConditionModel against the diffusers goldens of tests/data/fixtures/tiny-a, attention
// backend equivalence and gradient checkpointing.
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <utility>

#include "tests/diffusion/fixture_util.h"
#include "worker/diffusion/models/tiny_model.h"
#include "worker/diffusion/models/unet_2d_condition.h"

namespace dreambooth::diffusion {
namespace {

using testing::LoadExactly;
using testing::MaxAbsDiff;
using testing::ReadOrDie;
using testing::TinyFixture;

// Fixture README tolerance for unet/out.sample_int and out.sample_float.
constexpr double kUNetTolerance = 5e-4;

class UNetGoldenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto config = UNet2DConditionConfig::FromFile(TinyFixture("unet/config.json"));
    ASSERT_TRUE(config.ok()) << config.status();
    unet_ = UNet2DConditionModel(*config);
    LoadExactly(*unet_, ReadOrDie(TinyFixture("unet/diffusion_pytorch_model.safetensors")));
    unet_->eval();
    golden_ = ReadOrDie(TinyFixture("golden/unet.safetensors"));
  }

  at::Tensor Run(const at::Tensor& timestep) {
    at::NoGradGuard no_grad;
    return unet_->forward(golden_.at("in.sample"), timestep,
                          golden_.at("in.encoder_hidden_states"));
  }

  UNet2DConditionModel unet_{nullptr};
  TensorMap golden_;
};

TEST_F(UNetGoldenTest, IntegerTimestepsMatchDiffusers) {
  EXPECT_LT(MaxAbsDiff(Run(golden_.at("in.timestep_int")), golden_.at("out.sample_int")),
            kUNetTolerance);
}

TEST_F(UNetGoldenTest, FractionalTimestepMatchesDiffusers) {
  EXPECT_LT(MaxAbsDiff(Run(golden_.at("in.timestep_float")), golden_.at("out.sample_float")),
            kUNetTolerance);
}

TEST_F(UNetGoldenTest, ZeroDimTimestepBroadcasts) {
  const at::Tensor t = golden_.at("in.timestep_float");
  EXPECT_LT(MaxAbsDiff(Run(t.reshape({})), golden_.at("out.sample_float")), kUNetTolerance);
}

TEST_F(UNetGoldenTest, AllAttentionBackendsAgree) {
  const at::Tensor expected = golden_.at("out.sample_int");
  for (AttentionBackend backend :
       {AttentionBackend::kMath, AttentionBackend::kChunked, AttentionBackend::kSliced}) {
    AttentionOptions options;
    options.backend = backend;
    options.query_chunk_size = 100;  // not a divisor of 32*24 = 768: exercises the tail chunk
    options.slice_size = 3;
    unet_->set_attention_options(options);
    EXPECT_LT(MaxAbsDiff(Run(golden_.at("in.timestep_int")), expected), kUNetTolerance)
        << AttentionBackendName(backend);
  }
}

TEST(UNetTest, OddLatentSizesUseSkipSizesForUpsampling) {
  UNet2DConditionModel unet(TinyUNetConfig());
  InitializeRandomWeights(*unet, 7);
  at::NoGradGuard no_grad;
  const at::Tensor out =
      unet->forward(at::randn({1, 4, 9, 7}), at::tensor({10}), at::randn({1, 77, 32}));
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{1, 4, 9, 7}));
}

// The tiny UNet's parameter gradients of an MSE loss, with or without gradient checkpointing,
// the forward under bf16 autocast or not (backward outside it, as the trainer runs them); also
// the largest |gradient| and the largest difference to the plain run, via `Compare`.
struct CheckpointingCase {
  UNet2DConditionModel unet{TinyUNetConfig()};
  at::Tensor x, ctx, t, target;

  explicit CheckpointingCase(int seed) {
    InitializeRandomWeights(*unet, seed);
    unet->train();
    at::manual_seed(seed);
    x = at::randn({2, 4, 8, 8});
    ctx = at::randn({2, 77, 32});
    t = at::tensor({999, 1});
    target = at::randn({2, 4, 8, 8});
  }

  std::vector<at::Tensor> Gradients(bool checkpointing, bool bf16_autocast) {
    unet->set_gradient_checkpointing(checkpointing);
    unet->zero_grad();
    if (bf16_autocast) {
      at::autocast::set_autocast_enabled(at::kCPU, true);
      at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
      at::autocast::increment_nesting();
    }
    at::Tensor loss = at::mse_loss(unet->forward(x, t, ctx).to(at::kFloat), target);
    if (bf16_autocast) {
      if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
      at::autocast::set_autocast_enabled(at::kCPU, false);
    }
    loss.backward();
    std::vector<at::Tensor> result;
    for (const auto& p : unet->parameters()) {
      result.push_back(p.grad().defined() ? p.grad().clone() : at::zeros_like(p));
    }
    return result;
  }

  // {largest |plain gradient|, largest |plain - checkpointed|}.
  std::pair<double, double> Compare(bool bf16_autocast) {
    const std::vector<at::Tensor> plain = Gradients(false, bf16_autocast);
    const std::vector<at::Tensor> checkpointed = Gradients(true, bf16_autocast);
    EXPECT_EQ(plain.size(), checkpointed.size());
    double largest = 0.0;
    double worst = 0.0;
    for (size_t i = 0; i < plain.size() && i < checkpointed.size(); ++i) {
      largest = std::max(largest, plain[i].abs().max().item<double>());
      worst = std::max(worst, MaxAbsDiff(plain[i], checkpointed[i]));
    }
    return {largest, worst};
  }
};

// Gradients with checkpointing must equal gradients without it (same graph, recomputed).
TEST(UNetTest, GradientCheckpointingGivesTheSameGradients) {
  const auto [largest, worst] = CheckpointingCase(3).Compare(/*bf16_autocast=*/false);
  EXPECT_GT(largest, 0.0);
  EXPECT_LT(worst, 1e-6);
}

// Under bf16 autocast the recomputation computes in the forward's dtypes: no dtype mismatch, and
// the same gradients up to bf16 rounding (not bit-equal: the checkpointed blocks' forward runs
// without grad, where oneDNN may pick other bf16 kernels, so later blocks see slightly other
// inputs).
TEST(UNetTest, GradientCheckpointingUnderAutocastGivesTheSameGradients) {
  const auto [largest, worst] = CheckpointingCase(4).Compare(/*bf16_autocast=*/true);
  EXPECT_GT(largest, 0.0);
  EXPECT_LT(worst / largest, 1e-2);  // bf16 has 8 bits of mantissa
}

TEST(UNetConfigTest, RejectsUnsupportedFeatures) {
  nlohmann::json j = TinyUNetConfig().ToJson();
  j["class_embed_type"] = "timestep";
  auto config = UNet2DConditionConfig::FromJson(j);
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("class_embed_type"), std::string::npos);
}

TEST(UNetConfigTest, RejectsHeadsThatDoNotDivideChannels) {
  nlohmann::json j = TinyUNetConfig().ToJson();
  j["attention_head_dim"] = 7;
  EXPECT_FALSE(UNet2DConditionConfig::FromJson(j).ok());
}

TEST(UNetConfigTest, PerBlockHeadsAndLinearProjection) {
  nlohmann::json j = TinyUNetConfig().ToJson();
  j["attention_head_dim"] = {4, 8};
  j["use_linear_projection"] = true;
  auto config = UNet2DConditionConfig::FromJson(j);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->NumHeads(0), 4);
  EXPECT_EQ(config->NumHeads(1), 8);
  UNet2DConditionModel unet(*config);
  const auto params = unet->named_parameters();
  // Linear projections are [C, C] instead of 1x1 conv weights.
  EXPECT_EQ(params["down_blocks.0.attentions.0.proj_in.weight"].sizes(),
            (std::vector<int64_t>{32, 32}));
}

}  // namespace
}  // namespace dreambooth::diffusion
