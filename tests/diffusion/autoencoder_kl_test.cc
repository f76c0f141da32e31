// AutoencoderKL against the diffusers goldens of tests/data/fixtures/tiny-a.
#include "worker/diffusion/models/autoencoder_kl.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/diffusion/fixture_util.h"
#include "worker/diffusion/models/tiny_model.h"

namespace dreambooth::diffusion {
namespace {

using testing::LoadExactly;
using testing::MaxAbsDiff;
using testing::ReadOrDie;
using testing::TinyFixture;

class VaeGoldenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto config = AutoencoderKLConfig::FromFile(TinyFixture("vae/config.json"));
    ASSERT_TRUE(config.ok()) << config.status();
    vae_ = AutoencoderKL(*config);
    LoadExactly(*vae_, ReadOrDie(TinyFixture("vae/diffusion_pytorch_model.safetensors")));
    vae_->eval();
  }
  AutoencoderKL vae_{nullptr};
};

TEST_F(VaeGoldenTest, EncodeMatchesDiffusers) {
  const TensorMap golden = ReadOrDie(TinyFixture("golden/vae_encode.safetensors"));
  at::NoGradGuard no_grad;
  const LatentDistribution dist = vae_->Encode(golden.at("in.image"));
  EXPECT_LT(MaxAbsDiff(dist.mean, golden.at("out.mean")), 2e-4);
  EXPECT_LT(MaxAbsDiff(dist.logvar, golden.at("out.logvar")), 1e-4);
}

TEST_F(VaeGoldenTest, DecodeMatchesDiffusers) {
  const TensorMap golden = ReadOrDie(TinyFixture("golden/vae_decode.safetensors"));
  at::NoGradGuard no_grad;
  EXPECT_LT(MaxAbsDiff(vae_->Decode(golden.at("in.latents")), golden.at("out.sample")), 2e-4);
}

TEST_F(VaeGoldenTest, ScalingFactorAndDownscaleFactorComeFromConfig) {
  EXPECT_DOUBLE_EQ(vae_->scaling_factor(), 0.18215);
  EXPECT_EQ(vae_->downscale_factor(), 2);
}

TEST(VaeTest, SampleIsReproducibleWithAGenerator) {
  LatentDistribution dist{at::zeros({1, 4, 2, 2}), at::zeros({1, 4, 2, 2})};
  at::Generator a = at::detail::createCPUGenerator(5);
  at::Generator b = at::detail::createCPUGenerator(5);
  const at::Tensor x = dist.Sample(a);
  EXPECT_TRUE(at::equal(x, dist.Sample(b)));
  // logvar 0 -> std 1: the sample is the generator's standard normal draw.
  at::Generator c = at::detail::createCPUGenerator(5);
  EXPECT_TRUE(at::equal(x, at::randn({1, 4, 2, 2}, c)));
}

TEST(VaeConfigTest, RejectsMismatchedBlockLists) {
  nlohmann::json j = TinyVaeConfig().ToJson();
  j["up_block_types"] = {"UpDecoderBlock2D"};
  auto config = AutoencoderKLConfig::FromJson(j);
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("up_block_types"), std::string::npos);
}

}  // namespace
}  // namespace dreambooth::diffusion
