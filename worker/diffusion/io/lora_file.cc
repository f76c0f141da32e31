#include "worker/diffusion/io/lora_file.h"

#include <ATen/ATen.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "worker/diffusion/io/ldm_key_map.h"

namespace dreambooth::diffusion {
namespace {

constexpr char kKohyaUNet[] = "lora_unet_";
constexpr char kKohyaText[] = "lora_te_";

// Which half of an adapter a key holds.
enum class Half { kDown, kUp, kAlpha };

struct KeyParts {
  std::string layer;  // component-prefixed path as written ("unet.<path>" or a kohya flat name)
  Half half;
};

// diffusers' PEFT -> diffusers renames (PEFT_TO_DIFFUSERS of convert_state_dict_to_diffusers):
// UNet attention projections "lora.{down,up}", text-encoder attention projections
// "lora_linear_layer.{down,up}", every other layer keeps peft's "lora_A" / "lora_B".
std::string DiffusersSuffix(const std::string& layer, Half half) {
  const bool down = half == Half::kDown;
  for (const char* name : {".to_q", ".to_k", ".to_v", ".to_out.0"}) {
    if (absl::StartsWith(layer, "unet.") && absl::EndsWith(layer, name)) {
      return down ? ".lora.down.weight" : ".lora.up.weight";
    }
  }
  for (const char* name : {".q_proj", ".k_proj", ".v_proj", ".out_proj"}) {
    if (absl::StartsWith(layer, "text_encoder.") && absl::EndsWith(layer, name)) {
      return down ? ".lora_linear_layer.down.weight" : ".lora_linear_layer.up.weight";
    }
  }
  return down ? ".lora_A.weight" : ".lora_B.weight";
}

std::string Flat(const std::string& path) { return absl::StrReplaceAll(path, {{".", "_"}}); }

// Splits a diffusers / peft key into layer and half; false when the key is not one of them.
bool SplitDiffusersKey(std::string key, KeyParts* out) {
  static const std::pair<const char*, Half> kSuffixes[] = {
      {".lora_A.weight", Half::kDown},
      {".lora_B.weight", Half::kUp},
      {".lora_A.default.weight", Half::kDown},
      {".lora_B.default.weight", Half::kUp},
      {".lora.down.weight", Half::kDown},
      {".lora.up.weight", Half::kUp},
      {".lora_linear_layer.down.weight", Half::kDown},
      {".lora_linear_layer.up.weight", Half::kUp},
      {".lora_down.weight", Half::kDown},
      {".lora_up.weight", Half::kUp},
      {".alpha", Half::kAlpha},
  };
  for (const char* prefix : {"base_model.model."}) {
    if (absl::StartsWith(key, prefix)) key = key.substr(std::string(prefix).size());
  }
  for (const auto& [suffix, half] : kSuffixes) {
    if (!absl::EndsWith(key, suffix)) continue;
    std::string layer = key.substr(0, key.size() - std::string(suffix).size());
    // diffusers' attention-processor layout: "<attn>.processor.to_q_lora.down.weight".
    static const std::pair<const char*, const char*> kProcessor[] = {
        {".processor.to_q_lora", ".to_q"},
        {".processor.to_k_lora", ".to_k"},
        {".processor.to_v_lora", ".to_v"},
        {".processor.to_out_lora", ".to_out.0"},
    };
    for (const auto& [from, to] : kProcessor) {
      if (absl::EndsWith(layer, from)) {
        layer = layer.substr(0, layer.size() - std::string(from).size()) + to;
      }
    }
    if (absl::StartsWith(layer, "te.")) layer = "text_encoder." + layer.substr(3);
    // transformers 5 dropped CLIPTextModel.text_model: its files name "text_encoder.encoder.*".
    if (absl::StartsWith(layer, "text_encoder.encoder.")) {
      layer = "text_encoder.text_model." + layer.substr(std::string("text_encoder.").size());
    }
    *out = {layer, half};
    return true;
  }
  return false;
}

// The kohya name of layer "unet.<path>" / "text_encoder.<path>": the path with '_', prefixed.
std::string KohyaName(const std::string& layer) {
  constexpr size_t kText = sizeof("text_encoder.") - 1;
  return absl::StartsWith(layer, "unet.") ? kKohyaUNet + Flat(layer.substr(5))
                                          : kKohyaText + Flat(layer.substr(kText));
}

// Kohya names of every adaptable layer of `model` -> layer: KohyaName and, for the UNet, the
// original LDM path (kohya files trained on LDM checkpoints).
std::map<std::string, std::string> KohyaNames(const StableDiffusion& model) {
  std::map<std::string, std::string> out;
  absl::StatusOr<LdmKeyMap> ldm = LdmKeyMap::ForUNet(model.unet_config);
  for (const std::string& layer : LoraLayerNames(model)) {
    out[KohyaName(layer)] = layer;
    if (absl::StartsWith(layer, "unet.")) {
      const std::string path = layer.substr(5);
      if (ldm.ok()) {
        absl::StatusOr<std::string> l = ldm->ToLdm(path + ".weight");
        if (l.ok() && absl::EndsWith(*l, ".weight")) {
          out[kKohyaUNet + Flat(l->substr(0, l->size() - 7))] = layer;
        }
      }
    }
  }
  return out;
}

std::string FormatDouble(double v) {
  if (v == std::floor(v) && std::abs(v) < 1e15) return absl::StrCat(static_cast<int64_t>(v));
  return absl::StrFormat("%.17g", v);
}

}  // namespace

const char* LoraFileFormatName(LoraFileFormat format) {
  return format == LoraFileFormat::kKohya ? "kohya" : "diffusers";
}

absl::StatusOr<LoraFile> ParseLoraTensors(const TensorMap& tensors,
                                          const std::map<std::string, std::string>& metadata,
                                          const StableDiffusion& model) {
  LoraFile file;
  file.metadata = metadata;
  const std::vector<std::string> names = LoraLayerNames(model);
  const std::set<std::string> layers(names.begin(), names.end());
  std::map<std::string, std::string> kohya;
  bool is_kohya = false;
  for (const auto& [key, t] : tensors) {
    if (absl::StartsWith(key, "lora_")) is_kohya = true;
  }
  if (is_kohya) {
    kohya = KohyaNames(model);
    file.format = LoraFileFormat::kKohya;
  }
  struct Parts {
    at::Tensor down, up;
    double alpha = -1;
  };
  std::map<std::string, Parts> parts;
  for (const auto& [key, t] : tensors) {
    if (absl::StrContains(key, "hada_") || absl::StrContains(key, "lokr_") ||
        absl::StrContains(key, "dora_scale") || absl::StrContains(key, ".lora_mid.")) {
      return absl::UnimplementedError(absl::StrCat(
          "LoRA file key ", key,
          ": only plain LoRA (down/up pairs) is supported, not LoHa/LoKr/DoRA/LoCon-mid weights"));
    }
    if (absl::StartsWith(key, "lora_te1_") || absl::StartsWith(key, "lora_te2_")) {
      return absl::UnimplementedError(absl::StrCat(
          "LoRA file key ", key, " is for SDXL's two text encoders; this model is SD 1.x"));
    }
    KeyParts kp;
    if (is_kohya) {
      const size_t dot = key.find('.');
      const std::string flat = key.substr(0, dot);
      const std::string rest = dot == std::string::npos ? "" : key.substr(dot);
      Half half;
      if (rest == ".lora_down.weight") {
        half = Half::kDown;
      } else if (rest == ".lora_up.weight") {
        half = Half::kUp;
      } else if (rest == ".alpha") {
        half = Half::kAlpha;
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("LoRA file key ", key, " is not a kohya lora_down/lora_up/alpha"));
      }
      auto it = kohya.find(flat);
      if (it == kohya.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "LoRA file key ", key,
            " names no layer of this model that can carry an adapter (UNet attention, "
            "feed-forward, proj_in/out and resnet layers; text-encoder attention and MLP)"));
      }
      kp = {it->second, half};
    } else if (!SplitDiffusersKey(key, &kp)) {
      return absl::InvalidArgumentError(
          absl::StrCat("LoRA file key ", key, " is not a LoRA weight (diffusers, peft or kohya)"));
    }
    if (!layers.count(kp.layer)) {
      return absl::InvalidArgumentError(
          absl::StrCat("LoRA file key ", key, " names ", kp.layer,
                       ", which is not a layer of this model that can carry an adapter"));
    }
    Parts& p = parts[kp.layer];
    if (kp.half == Half::kAlpha) {
      p.alpha = t.to(at::kDouble).item<double>();
    } else {
      (kp.half == Half::kDown ? p.down : p.up) = t.to(at::kFloat);
    }
  }
  // Alpha stored by diffusers' adapter metadata, when present (else alpha = rank).
  double metadata_alpha = -1;
  auto meta = metadata.find("lora_adapter_metadata");
  if (!is_kohya && meta != metadata.end()) {
    nlohmann::json j = nlohmann::json::parse(meta->second, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("lora_alpha") && j["lora_alpha"].is_number()) {
      metadata_alpha = j["lora_alpha"].get<double>();
    }
  }
  for (auto& [layer, p] : parts) {
    if (!p.down.defined() || !p.up.defined()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "LoRA file has only the ", p.down.defined() ? "down" : "up", " weight of ", layer));
    }
    LoraWeights w;
    w.down = p.down;
    w.up = p.up;
    const double rank = static_cast<double>(p.down.size(0));
    w.alpha = p.alpha > 0 ? p.alpha : (metadata_alpha > 0 ? metadata_alpha : rank);
    file.adapters[layer] = w;
  }
  if (file.adapters.empty()) return absl::InvalidArgumentError("LoRA file holds no adapter");
  return file;
}

absl::StatusOr<LoraFile> ReadLoraFile(const std::string& path, const StableDiffusion& model) {
  std::map<std::string, std::string> metadata;
  absl::StatusOr<TensorMap> tensors = ReadSafetensors(path, &metadata);
  if (!tensors.ok()) return tensors.status();
  absl::StatusOr<LoraFile> file = ParseLoraTensors(*tensors, metadata, model);
  if (!file.ok()) {
    return absl::Status(file.status().code(), absl::StrCat(path, ": ", file.status().message()));
  }
  return file;
}

TensorMap LoraFileTensors(const std::map<std::string, LoraWeights>& adapters,
                          LoraFileFormat format) {
  TensorMap out;
  for (const auto& [layer, w] : adapters) {
    at::Tensor down = w.down.detach().to(at::kCPU, at::kFloat).contiguous();
    at::Tensor up = w.up.detach().to(at::kCPU, at::kFloat).contiguous();
    if (format == LoraFileFormat::kDiffusers) {
      // The format has no alpha: fold alpha / rank into up so that alpha = rank reproduces it.
      if (w.scale() != 1.0) up = up * w.scale();
      out[layer + DiffusersSuffix(layer, Half::kDown)] = down.clone();
      out[layer + DiffusersSuffix(layer, Half::kUp)] = up.clone();
    } else {
      const std::string flat = KohyaName(layer);
      out[flat + ".lora_down.weight"] = down.clone();
      out[flat + ".lora_up.weight"] = up.clone();
      out[flat + ".alpha"] = at::scalar_tensor(w.alpha, at::kFloat);
    }
  }
  return out;
}

absl::Status WriteLoraFile(const std::string& path,
                           const std::map<std::string, LoraWeights>& adapters,
                           LoraFileFormat format,
                           const std::map<std::string, std::string>& metadata) {
  return WriteSafetensors(path, LoraFileTensors(adapters, format), metadata);
}

std::map<std::string, std::string> KohyaMetadata(const KohyaRunInfo& info) {
  std::map<std::string, std::string> m;
  // The keys sd-scripts writes even with --no_metadata.
  m["ss_network_module"] = "networks.lora";
  m["ss_network_dim"] = absl::StrCat(info.rank);
  m["ss_network_alpha"] = FormatDouble(info.alpha);
  m["ss_base_model_version"] = "sd_v1";
  m["ss_v2"] = "False";
  m["modelspec.architecture"] = "stable-diffusion-v1/lora";
  if (!info.base_model.empty()) m["ss_sd_model_name"] = info.base_model;
  // What is known of the run (a converted file knows none of it).
  if (info.steps > 0) {
    m["ss_steps"] = absl::StrCat(info.steps);
    m["ss_max_train_steps"] = absl::StrCat(info.steps);
    m["ss_network_dropout"] = FormatDouble(info.dropout);
    m["ss_network_train_unet_only"] = info.text_encoder_trained ? "False" : "True";
  }
  if (info.learning_rate > 0) {
    m["ss_learning_rate"] = FormatDouble(info.learning_rate);
    m["ss_unet_lr"] = FormatDouble(info.learning_rate);
  }
  if (info.num_images > 0) m["ss_num_train_images"] = absl::StrCat(info.num_images);
  if (info.resolution > 0) {
    m["ss_resolution"] = absl::StrCat("(", info.resolution, ", ", info.resolution, ")");
  }
  if (!info.instance_prompt.empty()) {
    m["ss_training_comment"] =
        absl::StrCat("DreamBooth-LoRA; instance prompt: ", info.instance_prompt);
    nlohmann::json tags;
    tags["instance"][info.instance_prompt] = info.num_images > 0 ? info.num_images : 1;
    m["ss_tag_frequency"] = tags.dump();
  }
  return m;
}

}  // namespace dreambooth::diffusion
