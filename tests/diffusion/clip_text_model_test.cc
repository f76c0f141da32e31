// CLIPTextModel against the transformers goldens of tests/data/fixtures/tiny-a.
#include "worker/diffusion/models/clip_text_model.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/diffusion/fixture_util.h"

namespace dreambooth::diffusion {
namespace {

using testing::LoadExactly;
using testing::MaxAbsDiff;
using testing::ReadOrDie;
using testing::TinyFixture;

constexpr double kTolerance = 5e-4;  // fixture README, text_encoder/*

class ClipGoldenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto config = ClipTextConfig::FromFile(TinyFixture("text_encoder/config.json"));
    ASSERT_TRUE(config.ok()) << config.status();
    config_ = *config;
    model_ = CLIPTextModel(config_);
    LoadExactly(*model_, ReadOrDie(TinyFixture("text_encoder/model.safetensors")));
    model_->eval();
    golden_ = ReadOrDie(TinyFixture("golden/text_encoder.safetensors"));
  }
  ClipTextConfig config_;
  CLIPTextModel model_{nullptr};
  TensorMap golden_;
};

TEST_F(ClipGoldenTest, OutputsMatchTransformers) {
  at::NoGradGuard no_grad;
  const ClipTextOutput out = model_->forward(golden_.at("in.input_ids"));
  EXPECT_LT(MaxAbsDiff(out.last_hidden_state, golden_.at("out.last_hidden_state")), kTolerance);
  EXPECT_LT(MaxAbsDiff(out.pooler_output, golden_.at("out.pooler_output")), kTolerance);
  ASSERT_EQ(static_cast<int64_t>(out.hidden_states.size()),
            golden_.at("out.hidden_states").size(0));
  EXPECT_LT(MaxAbsDiff(at::stack(out.hidden_states), golden_.at("out.hidden_states")), kTolerance);
}

// Row 2 of the golden input has its unique maximum away from the first EOS (999): the legacy
// rule (eos_token_id == 2) must pool at the argmax, which the golden pins down.
TEST_F(ClipGoldenTest, LegacyPoolingUsesArgmaxOfIds) {
  ASSERT_EQ(config_.eos_token_id, 2);
  at::NoGradGuard no_grad;
  const at::Tensor ids = golden_.at("in.input_ids");
  const ClipTextOutput out = model_->forward(ids);
  const int64_t pos = ids[2].argmax().item<int64_t>();
  EXPECT_TRUE(at::equal(out.pooler_output[2], out.last_hidden_state[2][pos]));
}

TEST_F(ClipGoldenTest, ClipSkipTakesThePenultimateLayerThroughTheFinalNorm) {
  at::NoGradGuard no_grad;
  const at::Tensor ids = golden_.at("in.input_ids");
  const ClipTextOutput out = model_->forward(ids, /*clip_skip=*/1);
  const at::Tensor penultimate = golden_.at("out.hidden_states")[-2];
  const at::Tensor expected = model_->text_model->final_layer_norm(penultimate);
  EXPECT_LT(MaxAbsDiff(out.last_hidden_state, expected), kTolerance);
  EXPECT_EQ(out.hidden_states.size(), static_cast<size_t>(config_.num_hidden_layers));
}

TEST(ClipTextModelTest, EosRuleWithRealEosId) {
  ClipTextConfig config;
  config.vocab_size = 50;
  config.hidden_size = 8;
  config.intermediate_size = 16;
  config.num_hidden_layers = 1;
  config.num_attention_heads = 2;
  config.max_position_embeddings = 6;
  config.eos_token_id = 7;
  CLIPTextModel model(config);
  at::NoGradGuard no_grad;
  // The first 7 is at position 2, the largest id (40) at position 4.
  const at::Tensor ids = at::tensor({1, 5, 7, 3, 40, 7}, at::kLong).unsqueeze(0);
  const ClipTextOutput out = model->forward(ids);
  EXPECT_TRUE(at::equal(out.pooler_output[0], out.last_hidden_state[0][2]));
}

TEST(ClipTextConfigTest, RejectsUnknownActivation) {
  nlohmann::json j = ClipTextConfig().ToJson();
  j["hidden_act"] = "relu";
  EXPECT_FALSE(ClipTextConfig::FromJson(j).ok());
}

}  // namespace
}  // namespace dreambooth::diffusion
