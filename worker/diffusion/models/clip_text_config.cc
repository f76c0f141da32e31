#include "worker/diffusion/models/clip_text_config.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/diffusion/io/config_json.h"

namespace dreambooth::diffusion {
namespace cj = config_json;

absl::StatusOr<ClipTextConfig> ClipTextConfig::FromJson(const nlohmann::json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("text encoder config is not an object");
  ClipTextConfig c;
  RETURN_IF_ERROR(cj::ReadInt(j, "vocab_size", &c.vocab_size));
  RETURN_IF_ERROR(cj::ReadInt(j, "hidden_size", &c.hidden_size));
  RETURN_IF_ERROR(cj::ReadInt(j, "intermediate_size", &c.intermediate_size));
  RETURN_IF_ERROR(cj::ReadInt(j, "projection_dim", &c.projection_dim));
  RETURN_IF_ERROR(cj::ReadInt(j, "num_hidden_layers", &c.num_hidden_layers));
  RETURN_IF_ERROR(cj::ReadInt(j, "num_attention_heads", &c.num_attention_heads));
  RETURN_IF_ERROR(cj::ReadInt(j, "max_position_embeddings", &c.max_position_embeddings));
  RETURN_IF_ERROR(cj::ReadString(j, "hidden_act", &c.hidden_act));
  RETURN_IF_ERROR(cj::ReadDouble(j, "layer_norm_eps", &c.layer_norm_eps));
  RETURN_IF_ERROR(cj::ReadDouble(j, "attention_dropout", &c.attention_dropout));
  RETURN_IF_ERROR(cj::ReadDouble(j, "initializer_range", &c.initializer_range));
  RETURN_IF_ERROR(cj::ReadDouble(j, "initializer_factor", &c.initializer_factor));
  RETURN_IF_ERROR(cj::ReadInt(j, "pad_token_id", &c.pad_token_id));
  RETURN_IF_ERROR(cj::ReadInt(j, "bos_token_id", &c.bos_token_id));
  RETURN_IF_ERROR(cj::ReadInt(j, "eos_token_id", &c.eos_token_id));
  RETURN_IF_ERROR(c.Validate());
  return c;
}

absl::StatusOr<ClipTextConfig> ClipTextConfig::FromFile(const std::string& path) {
  ASSIGN_OR_RETURN(nlohmann::json json, cj::ReadJsonFile(path));
  absl::StatusOr<ClipTextConfig> config = FromJson(json);
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

nlohmann::json ClipTextConfig::ToJson() const {
  nlohmann::json j;
  j["architectures"] = {"CLIPTextModel"};
  j["model_type"] = "clip_text_model";
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["projection_dim"] = projection_dim;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["max_position_embeddings"] = max_position_embeddings;
  j["hidden_act"] = hidden_act;
  j["layer_norm_eps"] = layer_norm_eps;
  j["attention_dropout"] = attention_dropout;
  j["initializer_range"] = initializer_range;
  j["initializer_factor"] = initializer_factor;
  j["pad_token_id"] = pad_token_id;
  j["bos_token_id"] = bos_token_id;
  j["eos_token_id"] = eos_token_id;
  j["torch_dtype"] = "float32";
  return j;
}

absl::Status ClipTextConfig::Validate() const {
  if (vocab_size <= 0 || hidden_size <= 0 || intermediate_size <= 0 || num_hidden_layers <= 0 ||
      num_attention_heads <= 0 || max_position_embeddings <= 0) {
    return absl::InvalidArgumentError("CLIPTextConfig: sizes must be positive");
  }
  if (hidden_size % num_attention_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("CLIPTextConfig: hidden_size ", hidden_size,
                                                   " is not divisible by num_attention_heads ",
                                                   num_attention_heads));
  }
  if (hidden_act != "quick_gelu" && hidden_act != "gelu" && hidden_act != "gelu_new") {
    return absl::InvalidArgumentError(
        absl::StrCat("CLIPTextConfig: unsupported hidden_act ", hidden_act));
  }
  return absl::OkStatus();
}

}  // namespace dreambooth::diffusion
