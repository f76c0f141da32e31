// LoRA adapters (models/lora.h) and their files (io/lora_file.h) on the tiny-a fixture model:
// injection leaves the base untouched, merging equals the adapted forward, every file layout
// round-trips, gradient checkpointing carries the adapters, and bad files are refused.
// Parity with peft/diffusers is checked by `dbtool parity tests/data/lora`.
#include "worker/diffusion/models/lora.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <thread>

#include "tests/diffusion/fixture_util.h"
#include "tests/diffusion/test_util.h"
#include "worker/diffusion/io/lora_file.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/diffusion/io/safetensors.h"

namespace dreambooth::diffusion {
namespace {

using testing::TempDir;
using testing::TinyFixtureDir;

class LoraTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<StableDiffusion> model = LoadStableDiffusion(TinyFixtureDir());
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::make_unique<StableDiffusion>(*std::move(model));
    model_->unet->eval();
    model_->text_encoder->eval();
    at::Generator g = at::detail::createCPUGenerator(7);
    sample_ = at::randn({2, 4, 16, 16}, g);
    ehs_ = at::randn({2, 77, 32}, g);
    timestep_ = at::tensor({10, 500}, at::kLong);
    ids_ = at::randint(0, 998, {2, 77}, g, at::kLong);
  }

  // Adapters on the attention, feed-forward and resnet convs of the UNet and the text encoder's
  // attention, with random non-zero up weights.
  LoraAdapterSet MakeAdapters(double alpha = 8) {
    LoraTargets targets;
    targets.unet = {"to_q",          "to_k",     "to_v",  "to_out.0",
                    "ff.net.0.proj", "ff.net.2", "conv1", "conv2"};
    targets.text_encoder = {"q_proj", "k_proj", "v_proj", "out_proj"};
    absl::StatusOr<LoraAdapterSet> set =
        LoraAdapterSet::Create(*model_, targets, 4, alpha, at::detail::createCPUGenerator(1));
    EXPECT_TRUE(set.ok()) << set.status();
    at::Generator g = at::detail::createCPUGenerator(2);
    at::NoGradGuard no_grad;
    for (const auto& [name, w] : set->weights()) {
      at::Tensor up = w.up;
      up.copy_(at::randn(up.sizes(), g) * 0.1);
    }
    return *std::move(set);
  }

  at::Tensor UNet() {
    at::NoGradGuard no_grad;
    return model_->unet->forward(sample_, timestep_, ehs_);
  }
  at::Tensor Text() {
    at::NoGradGuard no_grad;
    return model_->text_encoder->forward(ids_).last_hidden_state;
  }

  std::unique_ptr<StableDiffusion> model_;
  at::Tensor sample_, ehs_, timestep_, ids_;
};

TEST_F(LoraTest, NewAdaptersChangeNothingUntilTrainedAndOnlyInsideTheirScope) {
  const at::Tensor base = UNet();
  absl::StatusOr<LoraAdapterSet> fresh =
      LoraAdapterSet::Create(*model_, LoraTargets{}, 4, 4, at::detail::createCPUGenerator(1));
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  // tiny-a: 2 transformer blocks down, 3 up, 1 mid; each 2 attentions x 4 layers.
  EXPECT_EQ(fresh->weights().size(), 6u * 2 * 4);
  for (const auto& [name, w] : fresh->weights()) {
    EXPECT_EQ(w.up.abs().max().item<float>(), 0.0f) << name;  // peft: B = 0
    const double bound = 1.0 / std::sqrt(static_cast<double>(w.down.size(1)));
    EXPECT_LE(w.down.abs().max().item<double>(), bound) << name;
    EXPECT_GT(w.down.abs().max().item<double>(), 0.5 * bound) << name;
  }
  {
    ScopedLora scope({&*fresh});
    EXPECT_TRUE(at::equal(UNet(), base));
  }
  LoraAdapterSet trained = MakeAdapters();
  at::Tensor adapted;
  {
    ScopedLora scope({&trained});
    adapted = UNet();
    // Another thread sees the base model while this scope is active.
    at::Tensor other;
    std::thread t([&] { other = UNet(); });
    t.join();
    EXPECT_TRUE(at::equal(other, base));
  }
  EXPECT_GT((adapted - base).abs().max().item<float>(), 1e-3);
  EXPECT_TRUE(at::equal(UNet(), base));  // the base weights were never touched
}

TEST_F(LoraTest, MergingEqualsTheAdaptedForwardAndScaleIsLinear) {
  LoraAdapterSet adapters = MakeAdapters();
  const at::Tensor base = UNet();
  at::Tensor adapted, half, text;
  {
    ScopedLora scope({&adapters});
    adapted = UNet();
    text = Text();
  }
  {
    ScopedLora scope({&adapters, 0.0});
    EXPECT_TRUE(at::allclose(UNet(), base, 1e-6, 1e-6));
  }
  ASSERT_TRUE(adapters.MergeInto(1.0).ok());
  EXPECT_TRUE(at::allclose(UNet(), adapted, 1e-4, 1e-5));
  EXPECT_TRUE(at::allclose(Text(), text, 1e-4, 1e-5));
}

TEST_F(LoraTest, BothFileFormatsRoundTrip) {
  LoraAdapterSet adapters = MakeAdapters(/*alpha=*/8);
  at::Tensor expected;
  {
    ScopedLora scope({&adapters});
    expected = UNet();
  }
  TempDir dir;
  for (LoraFileFormat format : {LoraFileFormat::kDiffusers, LoraFileFormat::kKohya}) {
    SCOPED_TRACE(LoraFileFormatName(format));
    const std::string path = dir.Join(std::string(LoraFileFormatName(format)) + ".safetensors");
    ASSERT_TRUE(WriteLoraFile(path, adapters.weights(), format, {{"k", "v"}}).ok());
    absl::StatusOr<LoraFile> file = ReadLoraFile(path, *model_);
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_EQ(file->format, format);
    EXPECT_EQ(file->metadata.at("k"), "v");
    ASSERT_EQ(file->adapters.size(), adapters.weights().size());
    // kohya keeps alpha; diffusers folds alpha / rank into up and reads alpha = rank.
    EXPECT_EQ(file->adapters.begin()->second.alpha, format == LoraFileFormat::kKohya ? 8.0 : 4.0);
    absl::StatusOr<LoraAdapterSet> loaded = LoraAdapterSet::Bind(*model_, file->adapters);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    ScopedLora scope({&*loaded});
    EXPECT_TRUE(at::allclose(UNet(), expected, 1e-5, 1e-6));
  }
  // Key names as the tools write them.
  const TensorMap kohya = LoraFileTensors(adapters.weights(), LoraFileFormat::kKohya);
  EXPECT_TRUE(kohya.count(
      "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight"));
  EXPECT_TRUE(kohya.count("lora_unet_down_blocks_0_resnets_0_conv1.alpha"));
  EXPECT_TRUE(kohya.count("lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight"));
  EXPECT_EQ(kohya.at("lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight").dim(), 4);
  const TensorMap diffusers = LoraFileTensors(adapters.weights(), LoraFileFormat::kDiffusers);
  EXPECT_TRUE(diffusers.count(
      "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora.down.weight"));
  EXPECT_TRUE(diffusers.count(
      "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_linear_layer.up.weight"));
  EXPECT_TRUE(diffusers.count("unet.down_blocks.0.resnets.0.conv1.lora_A.weight"));
  EXPECT_TRUE(
      diffusers.count("unet.down_blocks.0.attentions.0.transformer_blocks.0.ff.net.2."
                      "lora_B.weight"));
}

TEST_F(LoraTest, KohyaNamesInTheOriginalLdmLayoutResolveToTheSameLayers) {
  LoraAdapterSet adapters = MakeAdapters();
  TensorMap renamed;
  const std::string diffusers_style =
      "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q";
  const std::string ldm_style = "lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q";
  for (const auto& [key, t] : LoraFileTensors(adapters.weights(), LoraFileFormat::kKohya)) {
    if (key.rfind(diffusers_style + ".", 0) == 0) {
      renamed[ldm_style + key.substr(diffusers_style.size())] = t;
    }
  }
  ASSERT_EQ(renamed.size(), 3u);
  absl::StatusOr<LoraFile> file = ParseLoraTensors(renamed, {}, *model_);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ(file->adapters.size(), 1u);
  EXPECT_EQ(file->adapters.begin()->first,
            "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q");
}

// A file as kohya's sd-scripts saves it with --save_precision fp16: fp16 weights, 0-dim fp16 alphas
// that differ per module, only some layers, and its metadata.
TEST_F(LoraTest, AKohyaFileWrittenElsewhereInFp16WithPerModuleAlphaLoads) {
  at::Generator g = at::detail::createCPUGenerator(5);
  const std::string q = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_q";
  const std::string v = "lora_te_text_model_encoder_layers_1_self_attn_v_proj";
  TensorMap file = {
      {q + ".lora_down.weight", (at::randn({8, 32}, g) * 0.1).to(at::kHalf)},
      {q + ".lora_up.weight", (at::randn({32, 8}, g) * 0.1).to(at::kHalf)},
      {q + ".alpha", at::scalar_tensor(4.0, at::kHalf)},
      {v + ".lora_down.weight", (at::randn({8, 32}, g) * 0.1).to(at::kHalf)},
      {v + ".lora_up.weight", (at::randn({32, 8}, g) * 0.1).to(at::kHalf)},
      {v + ".alpha", at::scalar_tensor(16.0, at::kHalf)},
  };
  TempDir dir;
  const std::string path = dir.Join("sks_dog.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, file,
                               {{"ss_network_module", "networks.lora"},
                                {"ss_network_dim", "8"},
                                {"ss_network_alpha", "4.0"}})
                  .ok());
  absl::StatusOr<LoraFile> read = ReadLoraFile(path, *model_);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->format, LoraFileFormat::kKohya);
  ASSERT_EQ(read->adapters.size(), 2u);
  const LoraWeights& wq =
      read->adapters.at("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_q");
  const LoraWeights& wv =
      read->adapters.at("text_encoder.text_model.encoder.layers.1.self_attn.v_proj");
  EXPECT_EQ(wq.alpha, 4.0);
  EXPECT_EQ(wv.alpha, 16.0);
  EXPECT_EQ(wq.down.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(wq.up, file.at(q + ".lora_up.weight").to(at::kFloat)));
  absl::StatusOr<LoraAdapterSet> bound = LoraAdapterSet::Bind(*model_, read->adapters);
  ASSERT_TRUE(bound.ok()) << bound.status();
  // Each module's own alpha / rank applies: the merged text encoder equals the adapted one.
  at::Tensor text;
  {
    ScopedLora scope({&*bound});
    text = Text();
  }
  EXPECT_FALSE(at::allclose(text, Text()));
  ASSERT_TRUE(bound->MergeInto(1.0).ok());
  EXPECT_TRUE(at::allclose(Text(), text, 1e-4, 1e-5));
}

TEST_F(LoraTest, FilesThatDoNotFitTheModelAreRefusedWithTheReason) {
  LoraAdapterSet adapters = MakeAdapters();
  TensorMap good = LoraFileTensors(adapters.weights(), LoraFileFormat::kKohya);
  auto expect_error = [&](TensorMap tensors, absl::StatusCode code, const std::string& needle) {
    absl::StatusOr<LoraFile> file = ParseLoraTensors(tensors, {}, *model_);
    ASSERT_FALSE(file.ok());
    EXPECT_EQ(file.status().code(), code) << file.status();
    EXPECT_NE(file.status().message().find(needle), std::string::npos) << file.status();
  };
  TensorMap unknown = good;
  unknown["lora_unet_no_such_layer.lora_down.weight"] = at::zeros({4, 4});
  expect_error(unknown, absl::StatusCode::kInvalidArgument, "lora_unet_no_such_layer");
  TensorMap half = good;
  half.erase("lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight");
  expect_error(half, absl::StatusCode::kInvalidArgument, "only the down weight");
  TensorMap loha = good;
  loha["lora_unet_down_blocks_0_resnets_0_conv1.hada_w1_a"] = at::zeros({4, 4});
  expect_error(loha, absl::StatusCode::kUnimplemented, "LoHa");
  expect_error({{"lora_te1_text_model_encoder_layers_0_self_attn_q_proj.alpha", at::ones({})}},
               absl::StatusCode::kUnimplemented, "SDXL");
  expect_error({{"unet.conv_in.lora.down.weight", at::zeros({4, 4, 3, 3})}},
               absl::StatusCode::kInvalidArgument, "unet.conv_in");
  // A shape that does not fit the layer: refused when binding.
  absl::StatusOr<LoraFile> file = ParseLoraTensors(good, {}, *model_);
  ASSERT_TRUE(file.ok());
  file->adapters.begin()->second.down = at::zeros({4, 3});
  absl::StatusOr<LoraAdapterSet> bound = LoraAdapterSet::Bind(*model_, file->adapters);
  ASSERT_FALSE(bound.ok());
  EXPECT_NE(bound.status().message().find("the layer needs down"), std::string::npos);
  // Targets that select nothing or an unsupported layer.
  LoraTargets none;
  none.unet = {"no_such_layer"};
  EXPECT_FALSE(LoraAdapterSet::Create(*model_, none, 4, 4, at::detail::createCPUGenerator(1)).ok());
  LoraTargets conv_in;
  conv_in.unet = {"conv_in"};
  absl::StatusOr<LoraAdapterSet> bad =
      LoraAdapterSet::Create(*model_, conv_in, 4, 4, at::detail::createCPUGenerator(1));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("cannot carry an adapter"), std::string::npos);
}

TEST_F(LoraTest, GradientCheckpointingGivesTheAdaptersTheSameGradients) {
  LoraAdapterSet adapters = MakeAdapters();
  adapters.set_requires_grad(true);
  for (auto& p : model_->unet->parameters()) p.requires_grad_(false);
  model_->unet->train();
  auto grads = [&](bool checkpointing) {
    model_->unet->set_gradient_checkpointing(checkpointing);
    for (auto& [name, t] : adapters.NamedParameters("unet.")) {
      if (t.grad().defined()) t.mutable_grad().zero_();
    }
    ScopedLora scope({&adapters, 1.0, 0.0, true});
    model_->unet->forward(sample_, timestep_, ehs_).square().mean().backward();
    std::vector<at::Tensor> out;
    for (auto& [name, t] : adapters.NamedParameters("unet.")) out.push_back(t.grad().clone());
    return out;
  };
  const std::vector<at::Tensor> plain = grads(false);
  const std::vector<at::Tensor> checkpointed = grads(true);
  ASSERT_EQ(plain.size(), checkpointed.size());
  double total = 0;
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_TRUE(at::allclose(plain[i], checkpointed[i], 1e-4, 1e-6)) << i;
    total += plain[i].abs().sum().item<double>();
  }
  EXPECT_GT(total, 0.0);
}

}  // namespace
}  // namespace dreambooth::diffusion
