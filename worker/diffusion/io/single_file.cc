// Single-file LDM checkpoints (.safetensors with the original CompVis key names): loading and
// writing. Files written here (and by SingleFileLayout) carry the component configs in their
// metadata so they convert back exactly; files without them are read with the SD 1.x presets.
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/diffusion/io/ldm_tensor_map.h"
#include "worker/diffusion/io/model_loader_internal.h"
#include "worker/diffusion/io/single_file_layout.h"
#include "worker/diffusion/models/sd15_config.h"

namespace dreambooth::diffusion::loader_internal {
namespace {

constexpr const char* kMetaUNet = kSingleFileUNetConfigKey;
constexpr const char* kMetaVae = kSingleFileVaeConfigKey;
constexpr const char* kMetaText = kSingleFileTextConfigKey;
constexpr const char* kMetaScheduler = kSingleFileSchedulerConfigKey;

// diffusers' SCHEDULER_DEFAULT_CONFIG for single files.
nlohmann::json DefaultSchedulerJson() {
  return {{"_class_name", "DDIMScheduler"},
          {"beta_start", 0.00085},
          {"beta_end", 0.012},
          {"beta_schedule", "scaled_linear"},
          {"num_train_timesteps", 1000},
          {"clip_sample", false},
          {"set_alpha_to_one", false},
          {"steps_offset", 1},
          {"prediction_type", "epsilon"},
          {"timestep_spacing", "leading"}};
}

absl::StatusOr<nlohmann::json> MetaJson(const std::map<std::string, std::string>& metadata,
                                        const std::string& key, nlohmann::json fallback) {
  auto it = metadata.find(key);
  if (it == metadata.end()) return fallback;
  nlohmann::json json = nlohmann::json::parse(it->second, nullptr, false);
  if (json.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat("metadata '", key, "' is not valid JSON"));
  }
  return json;
}

// Splits the file's tensors by component prefix; tensors of other prefixes (EMA copies,
// schedule buffers) are dropped.
absl::Status SplitComponents(TensorMap all, TensorMap* unet, TensorMap* vae, TensorMap* text,
                             const std::string& path) {
  bool openclip = false;
  for (auto& [name, tensor] : all) {
    if (absl::StartsWith(name, kLdmUNetPrefix)) {
      unet->emplace(name.substr(std::strlen(kLdmUNetPrefix)), std::move(tensor));
    } else if (absl::StartsWith(name, kLdmVaePrefix)) {
      vae->emplace(name.substr(std::strlen(kLdmVaePrefix)), std::move(tensor));
    } else if (absl::StartsWith(name, kLdmTextPrefix)) {
      text->emplace(name.substr(std::strlen(kLdmTextPrefix)), std::move(tensor));
    } else if (absl::StartsWith(name, "cond_stage_model.model.")) {
      openclip = true;
    }
  }
  if (unet->empty() || vae->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is not a Stable Diffusion checkpoint: no '", kLdmUNetPrefix, "' or '",
                     kLdmVaePrefix, "' tensors"));
  }
  if (text->empty()) {
    if (openclip) {
      return absl::UnimplementedError(
          absl::StrCat(path,
                       " has an OpenCLIP (SD 2.x) text encoder, which single-file loading does not "
                       "support; convert it to a diffusers folder with diffusers' "
                       "convert_original_stable_diffusion_to_diffusers.py"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat(path, " has no text encoder ('", kLdmTextPrefix, "' tensors)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<StableDiffusion> LoadSingleFile(const std::string& path,
                                               const LoadOptions& options) {
  std::map<std::string, std::string> metadata;
  ASSIGN_OR_RETURN(TensorMap all, ReadSafetensors(path, &metadata));
  ComponentWeights ldm;
  RETURN_IF_ERROR(SplitComponents(std::move(all), &ldm.unet, &ldm.vae, &ldm.text_encoder, path));

  ModelParts parts;
  auto to_k = ldm.unet.find("input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight");
  if (metadata.count(kMetaUNet) == 0 && to_k != ldm.unet.end() && to_k->second.size(1) == 1024) {
    return absl::UnimplementedError(
        absl::StrCat(path,
                     " looks like an SD 2.x checkpoint (cross-attention width 1024); single-file "
                     "loading supports SD 1.x: convert it to a diffusers folder first"));
  }
  // Without our metadata: the SD 1.5 architecture (the only one the LDM layout check allows).
  ASSIGN_OR_RETURN(nlohmann::json unet_json,
                   MetaJson(metadata, kMetaUNet, Sd15UNetConfig().ToJson()));
  ASSIGN_OR_RETURN(nlohmann::json vae_json, MetaJson(metadata, kMetaVae, Sd15VaeConfig().ToJson()));
  ASSIGN_OR_RETURN(nlohmann::json text_json,
                   MetaJson(metadata, kMetaText, Sd15TextConfig().ToJson()));
  ASSIGN_OR_RETURN(nlohmann::json sched_json,
                   MetaJson(metadata, kMetaScheduler, DefaultSchedulerJson()));
  ASSIGN_OR_RETURN(parts.unet_config, UNet2DConditionConfig::FromJson(unet_json));
  ASSIGN_OR_RETURN(parts.vae_config, AutoencoderKLConfig::FromJson(vae_json));
  ASSIGN_OR_RETURN(parts.text_encoder_config, ClipTextConfig::FromJson(text_json));
  ASSIGN_OR_RETURN(parts.scheduler_config, SchedulerConfig::FromJson(sched_json));

  ASSIGN_OR_RETURN(LdmKeyMap unet_map, LdmKeyMap::ForUNet(parts.unet_config));
  ASSIGN_OR_RETURN(LdmKeyMap vae_map, LdmKeyMap::ForVae(parts.vae_config));
  ComponentWeights weights;
  absl::StatusOr<TensorMap> unet = MapFromLdm(unet_map, ldm.unet);
  if (!unet.ok())
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", unet.status().message()));
  absl::StatusOr<TensorMap> vae = MapFromLdm(vae_map, ldm.vae);
  if (!vae.ok())
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", vae.status().message()));
  weights.unet = std::move(*unet);
  weights.vae = std::move(*vae);
  weights.text_encoder = std::move(ldm.text_encoder);
  ASSIGN_OR_RETURN(CLIPTokenizer tokenizer, CLIPTokenizer::BuiltIn());
  return AssembleModel(std::move(tokenizer), parts, std::move(weights), path, options);
}

absl::Status WriteSingleFile(const StableDiffusion& model, const std::string& path,
                             const SaveOptions& options) {
  ASSIGN_OR_RETURN(LdmKeyMap unet_map, LdmKeyMap::ForUNet(model.unet_config));
  ASSIGN_OR_RETURN(LdmKeyMap vae_map, LdmKeyMap::ForVae(model.vae_config));
  ASSIGN_OR_RETURN(TensorMap unet, WeightsForSaving(*model.unet, options));
  ASSIGN_OR_RETURN(TensorMap vae, WeightsForSaving(*model.vae, options));
  ASSIGN_OR_RETURN(TensorMap text, WeightsForSaving(*model.text_encoder, options));
  ASSIGN_OR_RETURN(TensorMap unet_ldm, MapToLdm(unet_map, unet));
  ASSIGN_OR_RETURN(TensorMap vae_ldm, MapToLdm(vae_map, vae));
  TensorMap all;
  for (auto& [name, t] : unet_ldm) all.emplace(kLdmUNetPrefix + name, std::move(t));
  for (auto& [name, t] : vae_ldm) all.emplace(kLdmVaePrefix + name, std::move(t));
  for (auto& [name, t] : text) all.emplace(kLdmTextPrefix + name, std::move(t));
  std::map<std::string, std::string> metadata = options.metadata;
  metadata["format"] = "pt";
  metadata[kMetaUNet] = model.unet_config.ToJson().dump();
  metadata[kMetaVae] = model.vae_config.ToJson().dump();
  metadata[kMetaText] = model.text_encoder_config.ToJson().dump();
  metadata[kMetaScheduler] = model.scheduler_config.ToJson().dump();
  return WriteSafetensors(path, all, metadata);
}

}  // namespace dreambooth::diffusion::loader_internal
