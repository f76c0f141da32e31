// LoadStableDiffusion: the built-in tiny model and diffusers folders (single files are in
// single_file.cc).
#include "worker/diffusion/io/model_loader.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/crypto.h"
#include "common/status_macros.h"
#include "spec/builtin_models.h"
#include "worker/diffusion/io/builtin_models.h"
#include "worker/diffusion/io/file_util.h"
#include "worker/diffusion/io/ldm_tensor_map.h"
#include "worker/diffusion/io/model_loader_internal.h"
#include "worker/diffusion/models/tiny_model.h"
#include "worker/diffusion/torch_status.h"

namespace dreambooth::diffusion {
namespace loader_internal {
namespace {

namespace fs = std::filesystem;

constexpr char kPositionIds[] = "text_model.embeddings.position_ids";

bool HasKey(const torch::nn::Module& module, const std::string& key) {
  for (const auto& item : module.named_buffers(true)) {
    if (item.key() == key) return true;
  }
  for (const auto& item : module.named_parameters(true)) {
    if (item.key() == key) return true;
  }
  return false;
}

void HashTensors(Sha256& sha, const std::string& component, const TensorMap& tensors) {
  for (const auto& [name, tensor] : tensors) {
    at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
    sha.Update(absl::StrCat(component, "/", name, ":", c10::toString(t.scalar_type()), ":[",
                            absl::StrJoin(t.sizes(), ","), "]\n"));
    sha.Update(t.data_ptr(), t.numel() * t.element_size());
  }
}

}  // namespace

std::string WeightsDigest(const ComponentWeights& weights) {
  Sha256 sha;
  HashTensors(sha, "text_encoder", weights.text_encoder);
  HashTensors(sha, "unet", weights.unet);
  HashTensors(sha, "vae", weights.vae);
  return absl::StrCat("sha256:", sha.HexDigest());
}

absl::StatusOr<StableDiffusion> AssembleModel(CLIPTokenizer tokenizer, const ModelParts& parts,
                                              ComponentWeights weights, const std::string& source,
                                              const LoadOptions& options) {
  weights.vae = NormalizeVaeKeys(std::move(weights.vae));
  const std::string digest = WeightsDigest(weights);
  try {
    CLIPTextModel text_encoder(parts.text_encoder_config);
    UNet2DConditionModel unet(parts.unet_config);
    AutoencoderKL vae(parts.vae_config);
    // transformers stores position_ids in some versions only: drop or fill it as the module needs.
    if (!HasKey(*text_encoder, kPositionIds)) {
      weights.text_encoder.erase(kPositionIds);
    } else if (weights.text_encoder.count(kPositionIds) == 0) {
      weights.text_encoder.emplace(kPositionIds,
                                   ModuleStateDict(*text_encoder).at(kPositionIds).clone());
    }
    RETURN_IF_ERROR(LoadStateDictStrict(*text_encoder, weights.text_encoder, "text_encoder"));
    weights.text_encoder.clear();
    RETURN_IF_ERROR(LoadStateDictStrict(*unet, weights.unet, "unet"));
    weights.unet.clear();
    RETURN_IF_ERROR(LoadStateDictStrict(*vae, weights.vae, "vae"));
    weights.vae.clear();
    for (torch::nn::Module* module :
         std::initializer_list<torch::nn::Module*>{text_encoder.get(), unet.get(), vae.get()}) {
      module->to(options.device, options.dtype);
      module->eval();
    }
    return StableDiffusion{std::move(tokenizer),
                           text_encoder,
                           unet,
                           vae,
                           parts.scheduler_config,
                           parts.text_encoder_config,
                           parts.unet_config,
                           parts.vae_config,
                           source,
                           digest};
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot build the model from ", source, ": ", e.what_without_backtrace()));
  }
}

absl::StatusOr<TensorMap> WeightsForSaving(const torch::nn::Module& module,
                                           const SaveOptions& options) {
  if (options.dtype != at::kFloat && options.dtype != at::kHalf && options.dtype != at::kBFloat16) {
    return absl::InvalidArgumentError("weights can be saved as float32, float16 or bfloat16");
  }
  TensorMap out;
  try {
    for (auto& [name, tensor] : ModuleStateDict(module)) {
      at::Tensor t = tensor.to(at::kCPU);
      if (at::isFloatingType(t.scalar_type())) t = t.to(options.dtype);
      out.emplace(name, t.contiguous());
    }
  } catch (const c10::Error& e) {
    return StatusFromException(e, "cannot load the model");
  }
  return out;
}

}  // namespace loader_internal

namespace {

namespace fs = std::filesystem;
using loader_internal::ComponentWeights;
using loader_internal::ModelParts;

bool IsPickleExtension(const std::string& ext) {
  return ext == ".bin" || ext == ".ckpt" || ext == ".pt" || ext == ".pth" || ext == ".pkl";
}

absl::Status PickleRefused(const std::string& path) {
  return absl::InvalidArgumentError(absl::StrCat(
      path,
      " is a pickled PyTorch checkpoint, which is never loaded (unpickling runs arbitrary code). "
      "Convert it to safetensors first, e.g. in Python: "
      "`from diffusers import StableDiffusionPipeline; "
      "StableDiffusionPipeline.from_single_file(PATH).save_pretrained(DIR, "
      "safe_serialization=True)` "
      "for a single-file checkpoint, or `from_pretrained(DIR).save_pretrained(DIR2, "
      "safe_serialization=True)` for a folder with .bin weights"));
}

// Reads the weights of one component folder: <stem>[.<variant>].safetensors, or the shards of
// <stem>[.<variant>].safetensors.index.json.
absl::StatusOr<TensorMap> ReadComponentWeights(const fs::path& folder, const std::string& stem,
                                               const std::string& variant) {
  std::vector<std::string> candidates;
  if (!variant.empty()) candidates.push_back(absl::StrCat(stem, ".", variant, ".safetensors"));
  candidates.push_back(absl::StrCat(stem, ".safetensors"));
  if (variant.empty()) candidates.push_back(absl::StrCat(stem, ".fp16.safetensors"));
  for (const std::string& name : candidates) {
    const fs::path path = folder / name;
    if (FileExists(path.string())) return ReadSafetensors(path.string());
    const fs::path index = folder / (name + ".index.json");
    if (FileExists(index.string())) {
      ASSIGN_OR_RETURN(nlohmann::json json, ReadJsonFile(index.string()));
      if (!json.contains("weight_map") || !json["weight_map"].is_object()) {
        return absl::InvalidArgumentError(absl::StrCat(index.string(), " has no weight_map"));
      }
      std::set<std::string> shards;
      for (auto it = json["weight_map"].begin(); it != json["weight_map"].end(); ++it) {
        if (!it.value().is_string()) {
          return absl::InvalidArgumentError(absl::StrCat(index.string(), ": bad weight_map"));
        }
        const std::string shard = it.value().get<std::string>();
        if (shard.find('/') != std::string::npos || shard.find("..") != std::string::npos) {
          return absl::InvalidArgumentError(
              absl::StrCat(index.string(), ": shard name '", shard, "' leaves the folder"));
        }
        shards.insert(shard);
      }
      TensorMap all;
      for (const std::string& shard : shards) {
        ASSIGN_OR_RETURN(TensorMap part, ReadSafetensors((folder / shard).string()));
        for (auto& [key, value] : part) all[key] = std::move(value);
      }
      return all;
    }
  }
  for (const char* ext : {".bin", ".ckpt", ".pt", ".pth"}) {
    const fs::path pickle = folder / absl::StrCat(stem, ext);
    if (FileExists(pickle.string())) return PickleRefused(pickle.string());
  }
  return absl::NotFoundError(absl::StrCat("no weights in ", folder.string(), ": expected ",
                                          absl::StrJoin(candidates, " or ")));
}

absl::Status CheckComponentClass(const nlohmann::json& index, const std::string& component,
                                 const std::vector<std::string>& accepted, const std::string& dir) {
  auto it = index.find(component);
  if (it == index.end() || !it->is_array() || it->size() != 2 || !(*it)[1].is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat(dir, "/model_index.json lacks the '", component, "' component"));
  }
  const std::string cls = (*it)[1].get<std::string>();
  if (std::find(accepted.begin(), accepted.end(), cls) == accepted.end()) {
    return absl::InvalidArgumentError(absl::StrCat(dir, "/model_index.json: ", component, " class ",
                                                   cls, " is not supported (",
                                                   absl::StrJoin(accepted, ", "), ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<StableDiffusion> LoadFolder(const std::string& dir, const LoadOptions& options) {
  const fs::path root(dir);
  const std::string index_path = (root / "model_index.json").string();
  if (!FileExists(index_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat(dir, " is not a diffusers model folder: model_index.json is missing"));
  }
  ASSIGN_OR_RETURN(nlohmann::json index, ReadJsonFile(index_path));
  if (!index.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(index_path, " is not a JSON object"));
  }
  RETURN_IF_ERROR(CheckComponentClass(index, "unet", {"UNet2DConditionModel"}, dir));
  RETURN_IF_ERROR(CheckComponentClass(index, "vae", {"AutoencoderKL"}, dir));
  RETURN_IF_ERROR(CheckComponentClass(index, "text_encoder", {"CLIPTextModel"}, dir));
  RETURN_IF_ERROR(
      CheckComponentClass(index, "tokenizer", {"CLIPTokenizer", "CLIPTokenizerFast"}, dir));

  ModelParts parts;
  ASSIGN_OR_RETURN(parts.text_encoder_config,
                   ClipTextConfig::FromFile((root / "text_encoder" / "config.json").string()));
  ASSIGN_OR_RETURN(parts.unet_config,
                   UNet2DConditionConfig::FromFile((root / "unet" / "config.json").string()));
  ASSIGN_OR_RETURN(parts.vae_config,
                   AutoencoderKLConfig::FromFile((root / "vae" / "config.json").string()));
  ASSIGN_OR_RETURN(
      parts.scheduler_config,
      SchedulerConfig::FromFile((root / "scheduler" / "scheduler_config.json").string()));
  ASSIGN_OR_RETURN(CLIPTokenizer tokenizer,
                   CLIPTokenizer::FromFolder((root / "tokenizer").string()));

  ComponentWeights weights;
  ASSIGN_OR_RETURN(weights.text_encoder,
                   ReadComponentWeights(root / "text_encoder", "model", options.variant));
  ASSIGN_OR_RETURN(weights.unet,
                   ReadComponentWeights(root / "unet", "diffusion_pytorch_model", options.variant));
  ASSIGN_OR_RETURN(weights.vae,
                   ReadComponentWeights(root / "vae", "diffusion_pytorch_model", options.variant));
  return loader_internal::AssembleModel(std::move(tokenizer), parts, std::move(weights), dir,
                                        options);
}

absl::StatusOr<StableDiffusion> LoadTiny(const LoadOptions& options) {
  RandomModelSpec spec;
  spec.text_encoder_config = TinyTextConfig();
  spec.unet_config = TinyUNetConfig();
  spec.vae_config = TinyVaeConfig();
  ASSIGN_OR_RETURN(spec.scheduler_config, SchedulerConfig::FromJson(TinySchedulerConfigJson()));
  spec.seed = kTinyModelSeed;
  spec.source = "tiny";
  return CreateRandomModel(spec, options);
}

}  // namespace

absl::StatusOr<StableDiffusion> CreateRandomModel(const RandomModelSpec& spec,
                                                  const LoadOptions& options) {
  ModelParts parts;
  parts.text_encoder_config = spec.text_encoder_config;
  parts.unet_config = spec.unet_config;
  parts.vae_config = spec.vae_config;
  RETURN_IF_ERROR(parts.text_encoder_config.Validate());
  RETURN_IF_ERROR(parts.unet_config.Validate());
  RETURN_IF_ERROR(parts.vae_config.Validate());
  parts.scheduler_config = spec.scheduler_config;
  ASSIGN_OR_RETURN(CLIPTokenizer tokenizer, CLIPTokenizer::BuiltIn());
  ComponentWeights weights;
  try {
    CLIPTextModel text_encoder(parts.text_encoder_config);
    UNet2DConditionModel unet(parts.unet_config);
    AutoencoderKL vae(parts.vae_config);
    InitializeRandomWeights(*text_encoder, spec.seed);
    InitializeRandomWeights(*unet, spec.seed + 1);
    InitializeRandomWeights(*vae, spec.seed + 2);
    weights.text_encoder = ModuleStateDict(*text_encoder);
    weights.unet = ModuleStateDict(*unet);
    weights.vae = ModuleStateDict(*vae);
  } catch (const c10::Error& e) {
    return StatusFromException(e, absl::StrCat("cannot build the ", spec.source, " model"));
  }
  return loader_internal::AssembleModel(std::move(tokenizer), parts, std::move(weights),
                                        spec.source, options);
}

absl::StatusOr<StableDiffusion> LoadStableDiffusion(const std::string& dir_file_or_name,
                                                    const LoadOptions& options) {
  if (dir_file_or_name == spec::kTinyModel) return LoadTiny(options);
  if (dir_file_or_name == spec::kToyModel) {
    if (!ToyModelAvailable()) {
      return absl::NotFoundError(absl::StrCat(
          "the built-in model 'toy' is not installed: ", ToyModelDir(),
          "/model_index.json is missing (set DREAMBOOTH_TOY_MODEL_DIR, or rebuild it with "
          "scripts/pretrain_toy.sh)"));
    }
    ASSIGN_OR_RETURN(StableDiffusion model, LoadFolder(ToyModelDir(), options));
    model.source = std::string(spec::kToyModel);
    return model;
  }
  if (IsDirectory(dir_file_or_name)) return LoadFolder(dir_file_or_name, options);
  const std::string ext = fs::path(dir_file_or_name).extension().string();
  if (FileExists(dir_file_or_name)) {
    if (IsPickleExtension(ext)) return PickleRefused(dir_file_or_name);
    if (ext == ".safetensors") return loader_internal::LoadSingleFile(dir_file_or_name, options);
    return absl::InvalidArgumentError(absl::StrCat(
        dir_file_or_name, " is neither a diffusers folder nor a .safetensors checkpoint"));
  }
  return absl::NotFoundError(
      absl::StrCat("model '", dir_file_or_name,
                   "' not found (expected \"tiny\", \"toy\", a diffusers folder "
                   "or a .safetensors file)"));
}

}  // namespace dreambooth::diffusion
