// SaveDiffusersFolder and ConvertModel (declared in model_loader.h).
#include <filesystem>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/diffusion/io/file_util.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/diffusion/io/model_loader_internal.h"

namespace dreambooth::diffusion {
namespace {

namespace fs = std::filesystem;
constexpr char kDiffusersVersion[] = "0.25.1";

std::string WeightFileName(const std::string& stem, const SaveOptions& options) {
  return options.variant.empty() ? absl::StrCat(stem, ".safetensors")
                                 : absl::StrCat(stem, ".", options.variant, ".safetensors");
}

absl::Status SaveComponent(const torch::nn::Module& module, const fs::path& folder,
                           const std::string& stem, const nlohmann::json& config,
                           const SaveOptions& options) {
  RETURN_IF_ERROR(MakeDirectories(folder.string()));
  RETURN_IF_ERROR(WriteJsonFile((folder / "config.json").string(), config));
  ASSIGN_OR_RETURN(TensorMap weights, loader_internal::WeightsForSaving(module, options));
  std::map<std::string, std::string> metadata = options.metadata;
  metadata["format"] = "pt";
  return WriteSafetensors((folder / WeightFileName(stem, options)).string(), weights, metadata);
}

}  // namespace

absl::Status SaveDiffusersFolder(const StableDiffusion& model, const std::string& dir,
                                 const SaveOptions& options) {
  const fs::path root(dir);
  RETURN_IF_ERROR(MakeDirectories(dir));
  nlohmann::json unet_config = model.unet_config.ToJson();
  unet_config["_class_name"] = "UNet2DConditionModel";
  unet_config["_diffusers_version"] = kDiffusersVersion;
  nlohmann::json vae_config = model.vae_config.ToJson();
  vae_config["_class_name"] = "AutoencoderKL";
  vae_config["_diffusers_version"] = kDiffusersVersion;
  nlohmann::json text_config = model.text_encoder_config.ToJson();
  text_config["architectures"] = {"CLIPTextModel"};
  text_config["model_type"] = "clip_text_model";
  nlohmann::json scheduler_config = model.scheduler_config.ToJson();
  scheduler_config["_diffusers_version"] = kDiffusersVersion;

  RETURN_IF_ERROR(
      SaveComponent(*model.unet, root / "unet", "diffusion_pytorch_model", unet_config, options));
  RETURN_IF_ERROR(
      SaveComponent(*model.vae, root / "vae", "diffusion_pytorch_model", vae_config, options));
  RETURN_IF_ERROR(
      SaveComponent(*model.text_encoder, root / "text_encoder", "model", text_config, options));
  RETURN_IF_ERROR(MakeDirectories((root / "scheduler").string()));
  RETURN_IF_ERROR(
      WriteJsonFile((root / "scheduler" / "scheduler_config.json").string(), scheduler_config));
  RETURN_IF_ERROR(model.tokenizer.SaveToFolder((root / "tokenizer").string()));

  nlohmann::json index = {{"_class_name", "StableDiffusionPipeline"},
                          {"_diffusers_version", kDiffusersVersion},
                          {"feature_extractor", {nullptr, nullptr}},
                          {"image_encoder", {nullptr, nullptr}},
                          {"requires_safety_checker", false},
                          {"safety_checker", {nullptr, nullptr}},
                          {"scheduler", {"diffusers", model.scheduler_config.class_name}},
                          {"text_encoder", {"transformers", "CLIPTextModel"}},
                          {"tokenizer", {"transformers", "CLIPTokenizer"}},
                          {"unet", {"diffusers", "UNet2DConditionModel"}},
                          {"vae", {"diffusers", "AutoencoderKL"}}};
  // Written last: a folder with model_index.json is complete.
  return WriteJsonFile((root / "model_index.json").string(), index);
}

absl::Status ConvertModel(const std::string& src, const std::string& dst,
                          const SaveOptions& options) {
  if (src == dst) return absl::InvalidArgumentError("convert: source and destination are equal");
  ASSIGN_OR_RETURN(StableDiffusion model, LoadStableDiffusion(src));
  // A .safetensors destination is a single file; anything else a diffusers folder in the given
  // dtype (e.g. fp16 for shipping, or fp32 from an fp16 folder).
  if (fs::path(dst).extension() == ".safetensors") {
    return loader_internal::WriteSingleFile(model, dst, options);
  }
  return SaveDiffusersFolder(model, dst, options);
}

absl::Status SaveSingleFile(const StableDiffusion& model, const std::string& path,
                            const SaveOptions& options) {
  return loader_internal::WriteSingleFile(model, path, options);
}

}  // namespace dreambooth::diffusion
