// A full-size Stable Diffusion 1.5 (random weights, no download) saved as a diffusers folder,
// reloaded, converted to a single file and back: every tensor must come back identical. Slow
// (about 1.1 billion parameters; weights are written in fp16 to halve the IO).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/diffusion/test_util.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/diffusion/io/safetensors.h"
#include "worker/diffusion/models/sd15_config.h"

namespace dreambooth::diffusion {
namespace {

// The weight files of a diffusers folder, by component.
std::map<std::string, TensorMap> ReadFolderWeights(const std::string& dir) {
  std::map<std::string, TensorMap> out;
  for (const auto& [component, file] : std::vector<std::pair<std::string, std::string>>{
           {"unet", "unet/diffusion_pytorch_model.safetensors"},
           {"vae", "vae/diffusion_pytorch_model.safetensors"},
           {"text_encoder", "text_encoder/model.safetensors"}}) {
    absl::StatusOr<TensorMap> weights = ReadSafetensors(dir + "/" + file);
    EXPECT_TRUE(weights.ok()) << weights.status();
    if (weights.ok()) out[component] = std::move(*weights);
  }
  return out;
}

void ExpectIdentical(const TensorMap& a, const TensorMap& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (const auto& [name, tensor] : a) {
    auto it = b.find(name);
    ASSERT_NE(it, b.end()) << what << " lacks " << name;
    EXPECT_EQ(tensor.scalar_type(), it->second.scalar_type()) << what << " " << name;
    EXPECT_TRUE(at::equal(tensor, it->second)) << what << " " << name;
  }
}

TEST(Sd15RoundTripTest, SaveReloadConvertAndBackGiveIdenticalTensors) {
  testing::TempDir dir;
  SaveOptions fp16;
  fp16.dtype = at::kHalf;
  {
    absl::StatusOr<CLIPTokenizer> tokenizer = CLIPTokenizer::BuiltIn();
    ASSERT_TRUE(tokenizer.ok());
    CLIPTextModel text_encoder(Sd15TextConfig());
    UNet2DConditionModel unet(Sd15UNetConfig());
    AutoencoderKL vae(Sd15VaeConfig());
    EXPECT_EQ(CountParameters(*unet), 859520964);
    EXPECT_EQ(CountParameters(*text_encoder), 123060480);
    EXPECT_EQ(CountParameters(*vae), 83653863);
    // The modules' constructors already initialise every weight randomly.
    absl::StatusOr<SchedulerConfig> scheduler =
        SchedulerConfig::FromJson({{"_class_name", "PNDMScheduler"},
                                   {"beta_schedule", "scaled_linear"},
                                   {"beta_start", 0.00085},
                                   {"beta_end", 0.012},
                                   {"steps_offset", 1},
                                   {"set_alpha_to_one", false},
                                   {"skip_prk_steps", true},
                                   {"clip_sample", false}});
    ASSERT_TRUE(scheduler.ok());
    StableDiffusion model{
        *tokenizer,       text_encoder,    unet,          vae, *scheduler, Sd15TextConfig(),
        Sd15UNetConfig(), Sd15VaeConfig(), "sd15-random", ""};
    absl::Status saved = SaveDiffusersFolder(model, dir.Join("folder"), fp16);
    ASSERT_TRUE(saved.ok()) << saved;
    // The files hold the module's weights, rounded to fp16.
    std::map<std::string, TensorMap> files = ReadFolderWeights(dir.Join("folder"));
    for (const auto& [name, tensor] : ModuleStateDict(*unet)) {
      ASSERT_TRUE(at::equal(files["unet"].at(name), tensor.to(at::kHalf))) << name;
    }
  }
  const std::map<std::string, TensorMap> original = ReadFolderWeights(dir.Join("folder"));

  // ConvertModel loads the folder (then the single file) with LoadStableDiffusion, so identical
  // tensors after folder -> file -> folder also prove that both loads read every tensor exactly.
  const std::string single = dir.Join("sd15.safetensors");
  absl::Status to_file = ConvertModel(dir.Join("folder"), single, fp16);
  ASSERT_TRUE(to_file.ok()) << to_file;
  absl::Status back = ConvertModel(single, dir.Join("back"), fp16);
  ASSERT_TRUE(back.ok()) << back;
  const std::map<std::string, TensorMap> converted = ReadFolderWeights(dir.Join("back"));
  for (const auto& [component, weights] : original) {
    ExpectIdentical(converted.at(component), weights, "converted " + component);
  }
}

}  // namespace
}  // namespace dreambooth::diffusion
