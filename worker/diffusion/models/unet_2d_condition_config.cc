#include "worker/diffusion/models/unet_2d_condition_config.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "worker/diffusion/io/config_json.h"

namespace dreambooth::diffusion {
namespace cj = config_json;
namespace {

constexpr char kComponent[] = "UNet2DConditionModel config";

int64_t PerBlock(const std::vector<int64_t>& values, size_t block) {
  return values.size() == 1 ? values[0] : values.at(block);
}

absl::Status CheckPerBlock(const std::vector<int64_t>& values, size_t blocks, const char* key) {
  if (values.empty() || (values.size() != 1 && values.size() != blocks)) {
    return absl::InvalidArgumentError(absl::StrCat(kComponent, ": ", key, " has ", values.size(),
                                                   " entries, expected 1 or ", blocks));
  }
  for (int64_t v : values) {
    if (v <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(kComponent, ": ", key, " must be positive"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<UNet2DConditionConfig> UNet2DConditionConfig::FromJson(const nlohmann::json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("UNet config is not a JSON object");
  // Features of UNet2DConditionModel that SD 1.x / 2.x do not use.
  const std::pair<const char*, nlohmann::json> kFixed[] = {
      {"class_embed_type", nullptr},
      {"addition_embed_type", nullptr},
      {"addition_time_embed_dim", nullptr},
      {"projection_class_embeddings_input_dim", nullptr},
      {"num_class_embeds", nullptr},
      {"time_cond_proj_dim", nullptr},
      {"encoder_hid_dim", nullptr},
      {"encoder_hid_dim_type", nullptr},
      {"timestep_post_act", nullptr},
      {"time_embedding_act_fn", nullptr},
      {"cross_attention_norm", nullptr},
      {"num_attention_heads", nullptr},
      {"reverse_transformer_layers_per_block", nullptr},
      {"mid_block_only_cross_attention", nullptr},
      {"dual_cross_attention", false},
      {"only_cross_attention", false},
      {"class_embeddings_concat", false},
      {"resnet_skip_time_act", false},
      {"resnet_time_scale_shift", "default"},
      {"time_embedding_type", "positional"},
      {"attention_type", "default"},
      {"act_fn", "silu"},
  };
  for (const auto& [key, allowed] : kFixed) {
    RETURN_IF_ERROR(cj::RequireValue(j, key, allowed, kComponent));
  }
  UNet2DConditionConfig c;
  RETURN_IF_ERROR(cj::ReadInt(j, "sample_size", &c.sample_size));
  RETURN_IF_ERROR(cj::ReadInt(j, "in_channels", &c.in_channels));
  RETURN_IF_ERROR(cj::ReadInt(j, "out_channels", &c.out_channels));
  RETURN_IF_ERROR(cj::ReadBool(j, "center_input_sample", &c.center_input_sample));
  RETURN_IF_ERROR(cj::ReadBool(j, "flip_sin_to_cos", &c.flip_sin_to_cos));
  RETURN_IF_ERROR(cj::ReadDouble(j, "freq_shift", &c.freq_shift));
  RETURN_IF_ERROR(cj::ReadStrings(j, "down_block_types", &c.down_block_types));
  if (j.contains("mid_block_type") && j.at("mid_block_type").is_null()) {
    c.mid_block_type.clear();
  } else {
    RETURN_IF_ERROR(cj::ReadString(j, "mid_block_type", &c.mid_block_type));
  }
  RETURN_IF_ERROR(cj::ReadStrings(j, "up_block_types", &c.up_block_types));
  RETURN_IF_ERROR(cj::ReadIntOrList(j, "block_out_channels", &c.block_out_channels));
  RETURN_IF_ERROR(cj::ReadIntOrList(j, "layers_per_block", &c.layers_per_block));
  RETURN_IF_ERROR(cj::ReadInt(j, "downsample_padding", &c.downsample_padding));
  RETURN_IF_ERROR(cj::ReadDouble(j, "mid_block_scale_factor", &c.mid_block_scale_factor));
  RETURN_IF_ERROR(cj::ReadDouble(j, "dropout", &c.dropout));
  RETURN_IF_ERROR(cj::ReadString(j, "act_fn", &c.act_fn));
  RETURN_IF_ERROR(cj::ReadInt(j, "norm_num_groups", &c.norm_num_groups));
  RETURN_IF_ERROR(cj::ReadDouble(j, "norm_eps", &c.norm_eps));
  RETURN_IF_ERROR(cj::ReadIntOrList(j, "cross_attention_dim", &c.cross_attention_dim));
  RETURN_IF_ERROR(
      cj::ReadIntOrList(j, "transformer_layers_per_block", &c.transformer_layers_per_block));
  RETURN_IF_ERROR(cj::ReadIntOrList(j, "attention_head_dim", &c.attention_head_dim));
  RETURN_IF_ERROR(cj::ReadBool(j, "use_linear_projection", &c.use_linear_projection));
  RETURN_IF_ERROR(cj::ReadBool(j, "upcast_attention", &c.upcast_attention));
  RETURN_IF_ERROR(cj::ReadDouble(j, "resnet_out_scale_factor", &c.resnet_out_scale_factor));
  RETURN_IF_ERROR(cj::ReadInt(j, "time_embedding_dim", &c.time_embedding_dim));
  RETURN_IF_ERROR(cj::ReadInt(j, "conv_in_kernel", &c.conv_in_kernel));
  RETURN_IF_ERROR(cj::ReadInt(j, "conv_out_kernel", &c.conv_out_kernel));
  RETURN_IF_ERROR(c.Validate());
  return c;
}

absl::StatusOr<UNet2DConditionConfig> UNet2DConditionConfig::FromFile(const std::string& path) {
  ASSIGN_OR_RETURN(nlohmann::json json, cj::ReadJsonFile(path));
  absl::StatusOr<UNet2DConditionConfig> config = FromJson(json);
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

nlohmann::json UNet2DConditionConfig::ToJson() const {
  nlohmann::json j;
  j["_class_name"] = "UNet2DConditionModel";
  j["_diffusers_version"] = "0.25.1";
  j["sample_size"] = sample_size;
  j["in_channels"] = in_channels;
  j["out_channels"] = out_channels;
  j["center_input_sample"] = center_input_sample;
  j["flip_sin_to_cos"] = flip_sin_to_cos;
  j["freq_shift"] = freq_shift;
  j["down_block_types"] = down_block_types;
  j["mid_block_type"] = mid_block_type.empty() ? nlohmann::json() : nlohmann::json(mid_block_type);
  j["up_block_types"] = up_block_types;
  j["block_out_channels"] = block_out_channels;
  j["layers_per_block"] = cj::IntOrList(layers_per_block);
  j["downsample_padding"] = downsample_padding;
  j["mid_block_scale_factor"] = mid_block_scale_factor;
  j["dropout"] = dropout;
  j["act_fn"] = act_fn;
  j["norm_num_groups"] = norm_num_groups;
  j["norm_eps"] = norm_eps;
  j["cross_attention_dim"] = cj::IntOrList(cross_attention_dim);
  j["transformer_layers_per_block"] = cj::IntOrList(transformer_layers_per_block);
  j["attention_head_dim"] = cj::IntOrList(attention_head_dim);
  j["num_attention_heads"] = nullptr;
  j["use_linear_projection"] = use_linear_projection;
  j["upcast_attention"] = upcast_attention;
  j["resnet_out_scale_factor"] = resnet_out_scale_factor;
  j["time_embedding_dim"] = time_embedding_dim > 0 ? nlohmann::json(time_embedding_dim) : nullptr;
  j["conv_in_kernel"] = conv_in_kernel;
  j["conv_out_kernel"] = conv_out_kernel;
  j["resnet_time_scale_shift"] = "default";
  j["time_embedding_type"] = "positional";
  j["class_embed_type"] = nullptr;
  j["addition_embed_type"] = nullptr;
  j["only_cross_attention"] = false;
  j["dual_cross_attention"] = false;
  return j;
}

absl::Status UNet2DConditionConfig::Validate() const {
  const size_t n = block_out_channels.size();
  if (n == 0) return absl::InvalidArgumentError(absl::StrCat(kComponent, ": no blocks"));
  if (down_block_types.size() != n || up_block_types.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat(
        kComponent, ": down_block_types (", down_block_types.size(), "), up_block_types (",
        up_block_types.size(), ") and block_out_channels (", n, ") must have the same length"));
  }
  for (const auto& t : down_block_types) {
    if (t != "CrossAttnDownBlock2D" && t != "DownBlock2D") {
      return absl::InvalidArgumentError(
          absl::StrCat(kComponent, ": unsupported down block type ", t));
    }
  }
  for (const auto& t : up_block_types) {
    if (t != "CrossAttnUpBlock2D" && t != "UpBlock2D") {
      return absl::InvalidArgumentError(
          absl::StrCat(kComponent, ": unsupported up block type ", t));
    }
  }
  if (!mid_block_type.empty() && mid_block_type != "UNetMidBlock2DCrossAttn") {
    return absl::InvalidArgumentError(
        absl::StrCat(kComponent, ": unsupported mid_block_type ", mid_block_type));
  }
  RETURN_IF_ERROR(CheckPerBlock(layers_per_block, n, "layers_per_block"));
  RETURN_IF_ERROR(CheckPerBlock(cross_attention_dim, n, "cross_attention_dim"));
  RETURN_IF_ERROR(CheckPerBlock(transformer_layers_per_block, n, "transformer_layers_per_block"));
  RETURN_IF_ERROR(CheckPerBlock(attention_head_dim, n, "attention_head_dim"));
  if (in_channels <= 0 || out_channels <= 0 || norm_num_groups <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(kComponent, ": channels and norm_num_groups must be positive"));
  }
  for (size_t i = 0; i < n; ++i) {
    const int64_t c = block_out_channels[i];
    if (c <= 0 || c % norm_num_groups != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(kComponent, ": block_out_channels[", i, "] = ", c,
                       " is not a positive multiple of norm_num_groups ", norm_num_groups));
    }
    if (c % NumHeads(i) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(kComponent, ": block_out_channels[", i,
                                                     "] = ", c, " is not divisible by ",
                                                     NumHeads(i), " attention heads"));
    }
  }
  if (conv_in_kernel % 2 == 0 || conv_out_kernel % 2 == 0) {
    return absl::InvalidArgumentError(absl::StrCat(kComponent, ": conv kernels must be odd"));
  }
  if (block_out_channels[0] % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(kComponent, ": block_out_channels[0] must be even (timestep features)"));
  }
  return absl::OkStatus();
}

int64_t UNet2DConditionConfig::LayersPerBlock(size_t block) const {
  return PerBlock(layers_per_block, block);
}
int64_t UNet2DConditionConfig::CrossAttentionDim(size_t block) const {
  return PerBlock(cross_attention_dim, block);
}
int64_t UNet2DConditionConfig::TransformerLayers(size_t block) const {
  return PerBlock(transformer_layers_per_block, block);
}
int64_t UNet2DConditionConfig::NumHeads(size_t block) const {
  return PerBlock(attention_head_dim, block);
}
int64_t UNet2DConditionConfig::TimeEmbedDim() const {
  return time_embedding_dim > 0 ? time_embedding_dim : 4 * block_out_channels.at(0);
}

}  // namespace dreambooth::diffusion
