// Model loading, saving and conversion: the tiny-a fixture folder, the built-in tiny model,
// diffusers folder <-> single file round trips with identical tensors and digests, fp16 variants,
// fp16 -> fp32 folders, and broken model folders / files that must give clear errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "tests/diffusion/test_util.h"
#include "tests/diffusion/weights_util.h"
#include "worker/diffusion/io/file_util.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/diffusion/io/safetensors.h"

namespace dreambooth::diffusion {
namespace {

namespace fs = std::filesystem;
using testing::ExpectSameWeights;
using testing::TempDir;

std::string TinyA() { return absl::StrCat(testing::FixturesDir(), "/tiny-a"); }

void ExpectSameModel(const StableDiffusion& a, const StableDiffusion& b) {
  ExpectSameWeights(*a.text_encoder, *b.text_encoder, "text_encoder");
  ExpectSameWeights(*a.unet, *b.unet, "unet");
  ExpectSameWeights(*a.vae, *b.vae, "vae");
  EXPECT_EQ(a.digest, b.digest);
  EXPECT_EQ(a.scheduler_config.ToJson(), b.scheduler_config.ToJson());
  EXPECT_EQ(a.unet_config.ToJson(), b.unet_config.ToJson());
  EXPECT_EQ(a.vae_config.ToJson(), b.vae_config.ToJson());
  EXPECT_EQ(a.text_encoder_config.ToJson(), b.text_encoder_config.ToJson());
}

TEST(ModelLoaderTest, LoadsTheFixtureFolderWithItsExactWeights) {
  absl::StatusOr<StableDiffusion> model = LoadStableDiffusion(TinyA());
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->source, TinyA());
  EXPECT_EQ(model->digest.rfind("sha256:", 0), 0u);
  EXPECT_EQ(model->tokenizer.vocab_size(), 49408);
  EXPECT_EQ(model->scheduler_config.beta_schedule, "scaled_linear");
  absl::StatusOr<TensorMap> unet =
      ReadSafetensors(TinyA() + "/unet/diffusion_pytorch_model.safetensors");
  ASSERT_TRUE(unet.ok());
  TensorMap loaded = ModuleStateDict(*model->unet);
  for (const auto& [name, tensor] : *unet) {
    ASSERT_EQ(loaded.count(name), 1u) << name;
    EXPECT_TRUE(at::equal(loaded.at(name), tensor)) << name;
  }
  EXPECT_FALSE(model->unet->is_training());
}

TEST(ModelLoaderTest, FolderSingleFileFolderRoundTripIsExact) {
  TempDir dir;
  absl::StatusOr<StableDiffusion> original = LoadStableDiffusion(TinyA());
  ASSERT_TRUE(original.ok()) << original.status();

  ASSERT_TRUE(SaveDiffusersFolder(*original, dir.Join("saved")).ok());
  absl::StatusOr<StableDiffusion> saved = LoadStableDiffusion(dir.Join("saved"));
  ASSERT_TRUE(saved.ok()) << saved.status();
  ExpectSameModel(*original, *saved);

  const std::string single = dir.Join("model.safetensors");
  absl::Status to_file = ConvertModel(dir.Join("saved"), single);
  ASSERT_TRUE(to_file.ok()) << to_file;
  absl::StatusOr<TensorMap> raw = ReadSafetensors(single);
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw->count("model.diffusion_model.input_blocks.0.0.weight"), 1u);
  EXPECT_EQ(raw->count("model.diffusion_model.output_blocks.2.1.conv.weight"), 1u);
  EXPECT_EQ(raw->count("first_stage_model.decoder.up.1.block.0.conv1.weight"), 1u);
  EXPECT_EQ(raw->at("first_stage_model.encoder.mid.attn_1.q.weight").dim(), 4);
  EXPECT_EQ(raw->count("cond_stage_model.transformer.text_model.final_layer_norm.weight"), 1u);
  absl::StatusOr<StableDiffusion> from_file = LoadStableDiffusion(single);
  ASSERT_TRUE(from_file.ok()) << from_file.status();
  ExpectSameModel(*original, *from_file);

  absl::Status back = ConvertModel(single, dir.Join("back"));
  ASSERT_TRUE(back.ok()) << back;
  absl::StatusOr<StableDiffusion> again = LoadStableDiffusion(dir.Join("back"));
  ASSERT_TRUE(again.ok()) << again.status();
  ExpectSameModel(*original, *again);
  // The written folder is byte-for-byte a diffusers folder with the original tensors.
  absl::StatusOr<TensorMap> vae =
      ReadSafetensors(dir.Join("back/vae/diffusion_pytorch_model.safetensors"));
  absl::StatusOr<TensorMap> vae0 =
      ReadSafetensors(TinyA() + "/vae/diffusion_pytorch_model.safetensors");
  ASSERT_TRUE(vae.ok() && vae0.ok());
  ASSERT_EQ(vae->size(), vae0->size());
  for (const auto& [name, tensor] : *vae0) EXPECT_TRUE(at::equal(vae->at(name), tensor)) << name;
}

TEST(ModelLoaderTest, AnFp16FolderConvertsToAnFp32Folder) {
  TempDir dir;
  SaveOptions fp16;
  fp16.dtype = at::kHalf;
  ASSERT_TRUE(ConvertModel(TinyA(), dir.Join("half"), fp16).ok());
  absl::Status up = ConvertModel(dir.Join("half"), dir.Join("full"));
  ASSERT_TRUE(up.ok()) << up;
  absl::StatusOr<TensorMap> unet =
      ReadSafetensors(dir.Join("full/unet/diffusion_pytorch_model.safetensors"));
  ASSERT_TRUE(unet.ok()) << unet.status();
  for (const auto& [name, tensor] : *unet) EXPECT_EQ(tensor.scalar_type(), at::kFloat) << name;
  // Both load as float32; the fp32 folder holds exactly the fp16 folder's values.
  absl::StatusOr<StableDiffusion> half = LoadStableDiffusion(dir.Join("half"));
  absl::StatusOr<StableDiffusion> full = LoadStableDiffusion(dir.Join("full"));
  ASSERT_TRUE(half.ok() && full.ok());
  ExpectSameWeights(*half->unet, *full->unet, "unet");
  ExpectSameWeights(*half->text_encoder, *full->text_encoder, "text_encoder");
  ExpectSameWeights(*half->vae, *full->vae, "vae");
}

TEST(ModelLoaderTest, BuiltInTinyModelIsDeterministic) {
  absl::StatusOr<StableDiffusion> a = LoadStableDiffusion("tiny");
  absl::StatusOr<StableDiffusion> b = LoadStableDiffusion("tiny");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->source, "tiny");
  ExpectSameModel(*a, *b);
}

TEST(ModelLoaderTest, Fp16VariantIsPreferredWhenAsked) {
  TempDir dir;
  absl::StatusOr<StableDiffusion> original = LoadStableDiffusion(TinyA());
  ASSERT_TRUE(original.ok());
  ASSERT_TRUE(SaveDiffusersFolder(*original, dir.path()).ok());
  SaveOptions fp16_variant;
  fp16_variant.dtype = at::kHalf;
  fp16_variant.variant = "fp16";
  ASSERT_TRUE(SaveDiffusersFolder(*original, dir.path(), fp16_variant).ok());
  EXPECT_TRUE(FileExists(dir.Join("unet/diffusion_pytorch_model.fp16.safetensors")));
  absl::StatusOr<TensorMap> half =
      ReadSafetensors(dir.Join("unet/diffusion_pytorch_model.fp16.safetensors"));
  ASSERT_TRUE(half.ok());
  EXPECT_EQ(half->at("conv_in.weight").scalar_type(), at::kHalf);

  LoadOptions options;
  options.variant = "fp16";
  absl::StatusOr<StableDiffusion> fp16 = LoadStableDiffusion(dir.path(), options);
  ASSERT_TRUE(fp16.ok()) << fp16.status();
  EXPECT_NE(fp16->digest, original->digest);
  TensorMap weights = ModuleStateDict(*fp16->unet);
  EXPECT_EQ(weights.at("conv_in.weight").scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(
      weights.at("conv_in.weight"),
      ModuleStateDict(*original->unet).at("conv_in.weight").to(at::kHalf).to(at::kFloat)));

  options.dtype = at::kHalf;
  options.variant.clear();
  absl::StatusOr<StableDiffusion> as_half = LoadStableDiffusion(dir.path(), options);
  ASSERT_TRUE(as_half.ok());
  EXPECT_EQ(ModuleStateDict(*as_half->vae).at("encoder.conv_in.weight").scalar_type(), at::kHalf);
  EXPECT_EQ(as_half->digest, original->digest);
}

// A copy of the fixture model in a temp folder, to be broken by a test.
class BrokenModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::copy(TinyA(), dir_.path(), fs::copy_options::recursive);
    fs::remove_all(dir_.Join("golden"));
  }
  absl::Status Load() { return LoadStableDiffusion(dir_.path()).status(); }
  void ExpectError(const std::string& fragment) {
    absl::Status status = Load();
    ASSERT_FALSE(status.ok());
    EXPECT_NE(status.message().find(fragment), std::string::npos) << status;
  }
  void ReplaceUNetWeights(const std::function<void(TensorMap&)>& edit) {
    const std::string path = dir_.Join("unet/diffusion_pytorch_model.safetensors");
    absl::StatusOr<TensorMap> weights = ReadSafetensors(path);
    ASSERT_TRUE(weights.ok());
    edit(*weights);
    ASSERT_TRUE(WriteSafetensors(path, *weights).ok());
  }
  TempDir dir_;
};

TEST_F(BrokenModelTest, CopyLoads) { EXPECT_TRUE(Load().ok()) << Load(); }

TEST_F(BrokenModelTest, MissingModelIndex) {
  fs::remove(dir_.Join("model_index.json"));
  ExpectError("model_index.json is missing");
}

TEST_F(BrokenModelTest, MissingUNetConfig) {
  fs::remove(dir_.Join("unet/config.json"));
  ExpectError("config.json");
}

TEST_F(BrokenModelTest, MissingSchedulerConfig) {
  fs::remove(dir_.Join("scheduler/scheduler_config.json"));
  ExpectError("scheduler_config.json");
}

TEST_F(BrokenModelTest, MissingWeights) {
  fs::remove(dir_.Join("vae/diffusion_pytorch_model.safetensors"));
  ExpectError("no weights in");
}

TEST_F(BrokenModelTest, PickledWeightsAreRefusedWithConversionAdvice) {
  fs::rename(dir_.Join("text_encoder/model.safetensors"), dir_.Join("text_encoder/model.bin"));
  ExpectError("safe_serialization=True");
}

TEST_F(BrokenModelTest, TruncatedWeights) {
  const std::string path = dir_.Join("unet/diffusion_pytorch_model.safetensors");
  fs::resize_file(path, fs::file_size(path) - 100);
  ExpectError("truncated");
}

TEST_F(BrokenModelTest, WrongShape) {
  ReplaceUNetWeights([](TensorMap& w) { w["conv_in.weight"] = at::zeros({32, 4, 5, 5}); });
  ExpectError("conv_in.weight (file [32, 4, 5, 5], model [32, 4, 3, 3])");
}

TEST_F(BrokenModelTest, MissingTensor) {
  ReplaceUNetWeights([](TensorMap& w) { w.erase("conv_out.bias"); });
  ExpectError("1 missing: conv_out.bias");
}

TEST_F(BrokenModelTest, UnexpectedTensor) {
  ReplaceUNetWeights([](TensorMap& w) { w["extra.weight"] = at::zeros({2}); });
  ExpectError("1 unexpected: extra.weight");
}

TEST_F(BrokenModelTest, ConfigThatDoesNotFitTheWeights) {
  absl::StatusOr<nlohmann::json> config = ReadJsonFile(dir_.Join("unet/config.json"));
  ASSERT_TRUE(config.ok());
  (*config)["layers_per_block"] = 1;
  ASSERT_TRUE(WriteJsonFile(dir_.Join("unet/config.json"), *config).ok());
  ExpectError("unexpected");
}

TEST_F(BrokenModelTest, UnsupportedComponentClass) {
  absl::StatusOr<nlohmann::json> index = ReadJsonFile(dir_.Join("model_index.json"));
  ASSERT_TRUE(index.ok());
  (*index)["unet"] = {"diffusers", "UNet2DModel"};
  ASSERT_TRUE(WriteJsonFile(dir_.Join("model_index.json"), *index).ok());
  ExpectError("UNet2DModel is not supported");
}

TEST(ModelLoaderErrorsTest, UnknownNamesAndFiles) {
  TempDir dir;
  absl::Status missing = LoadStableDiffusion(dir.Join("nothing")).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  testing::WriteBytes(dir.Join("model.ckpt"), "PK");
  absl::Status ckpt = LoadStableDiffusion(dir.Join("model.ckpt")).status();
  EXPECT_NE(ckpt.message().find("pickled"), std::string::npos) << ckpt;
  ASSERT_TRUE(WriteSafetensors(dir.Join("other.safetensors"), {{"a", at::ones({1})}}).ok());
  absl::Status other = LoadStableDiffusion(dir.Join("other.safetensors")).status();
  EXPECT_NE(other.message().find("not a Stable Diffusion checkpoint"), std::string::npos) << other;
}

TEST(StateDictTest, StrictLoadListsEveryProblemAndChangesNothing) {
  absl::StatusOr<StableDiffusion> model = LoadStableDiffusion(TinyA());
  ASSERT_TRUE(model.ok());
  TensorMap weights = ModuleStateDict(*model->vae);
  const at::Tensor before = weights.at("quant_conv.weight").clone();
  TensorMap edited;
  for (const auto& [name, t] : weights) edited[name] = at::zeros_like(t);
  edited.erase("post_quant_conv.bias");
  edited["quant_conv.weight"] = at::zeros({1});
  absl::Status status = LoadStateDictStrict(*model->vae, edited, "vae");
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("post_quant_conv.bias"), std::string::npos);
  EXPECT_NE(status.message().find("quant_conv.weight (file [1]"), std::string::npos);
  EXPECT_TRUE(at::equal(ModuleStateDict(*model->vae).at("quant_conv.weight"), before));
}

}  // namespace
}  // namespace dreambooth::diffusion
