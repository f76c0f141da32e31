#include "worker/diffusion/models/autoencoder_kl_config.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/diffusion/io/config_json.h"

namespace dreambooth::diffusion {
namespace cj = config_json;
namespace {
constexpr char kComponent[] = "AutoencoderKL config";
}  // namespace

absl::StatusOr<AutoencoderKLConfig> AutoencoderKLConfig::FromJson(const nlohmann::json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("VAE config is not a JSON object");
  RETURN_IF_ERROR(cj::RequireValue(j, "act_fn", "silu", kComponent));
  RETURN_IF_ERROR(cj::RequireValue(j, "latents_mean", nullptr, kComponent));
  RETURN_IF_ERROR(cj::RequireValue(j, "latents_std", nullptr, kComponent));
  AutoencoderKLConfig c;
  RETURN_IF_ERROR(cj::ReadInt(j, "in_channels", &c.in_channels));
  RETURN_IF_ERROR(cj::ReadInt(j, "out_channels", &c.out_channels));
  RETURN_IF_ERROR(cj::ReadStrings(j, "down_block_types", &c.down_block_types));
  RETURN_IF_ERROR(cj::ReadStrings(j, "up_block_types", &c.up_block_types));
  RETURN_IF_ERROR(cj::ReadIntOrList(j, "block_out_channels", &c.block_out_channels));
  RETURN_IF_ERROR(cj::ReadInt(j, "layers_per_block", &c.layers_per_block));
  RETURN_IF_ERROR(cj::ReadInt(j, "latent_channels", &c.latent_channels));
  RETURN_IF_ERROR(cj::ReadInt(j, "norm_num_groups", &c.norm_num_groups));
  RETURN_IF_ERROR(cj::ReadInt(j, "sample_size", &c.sample_size));
  RETURN_IF_ERROR(cj::ReadDouble(j, "scaling_factor", &c.scaling_factor));
  RETURN_IF_ERROR(cj::ReadDouble(j, "shift_factor", &c.shift_factor));
  RETURN_IF_ERROR(cj::ReadBool(j, "force_upcast", &c.force_upcast));
  RETURN_IF_ERROR(cj::ReadBool(j, "use_quant_conv", &c.use_quant_conv));
  RETURN_IF_ERROR(cj::ReadBool(j, "use_post_quant_conv", &c.use_post_quant_conv));
  RETURN_IF_ERROR(cj::ReadBool(j, "mid_block_add_attention", &c.mid_block_add_attention));
  RETURN_IF_ERROR(c.Validate());
  return c;
}

absl::StatusOr<AutoencoderKLConfig> AutoencoderKLConfig::FromFile(const std::string& path) {
  ASSIGN_OR_RETURN(nlohmann::json json, cj::ReadJsonFile(path));
  absl::StatusOr<AutoencoderKLConfig> config = FromJson(json);
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

nlohmann::json AutoencoderKLConfig::ToJson() const {
  nlohmann::json j;
  j["_class_name"] = "AutoencoderKL";
  j["_diffusers_version"] = "0.25.1";
  j["in_channels"] = in_channels;
  j["out_channels"] = out_channels;
  j["down_block_types"] = down_block_types;
  j["up_block_types"] = up_block_types;
  j["block_out_channels"] = block_out_channels;
  j["layers_per_block"] = layers_per_block;
  j["act_fn"] = act_fn;
  j["latent_channels"] = latent_channels;
  j["norm_num_groups"] = norm_num_groups;
  j["sample_size"] = sample_size;
  j["scaling_factor"] = scaling_factor;
  if (shift_factor != 0.0) j["shift_factor"] = shift_factor;
  j["force_upcast"] = force_upcast;
  if (!use_quant_conv) j["use_quant_conv"] = false;
  if (!use_post_quant_conv) j["use_post_quant_conv"] = false;
  if (!mid_block_add_attention) j["mid_block_add_attention"] = false;
  return j;
}

absl::Status AutoencoderKLConfig::Validate() const {
  const size_t n = block_out_channels.size();
  if (n == 0 || down_block_types.size() != n || up_block_types.size() != n) {
    return absl::InvalidArgumentError(
        absl::StrCat(kComponent, ": down_block_types (", down_block_types.size(),
                     "), up_block_types (", up_block_types.size(), ") and block_out_channels (", n,
                     ") must have the same, non-zero length"));
  }
  for (const auto& t : down_block_types) {
    if (t != "DownEncoderBlock2D") {
      return absl::InvalidArgumentError(
          absl::StrCat(kComponent, ": unsupported down block type ", t));
    }
  }
  for (const auto& t : up_block_types) {
    if (t != "UpDecoderBlock2D") {
      return absl::InvalidArgumentError(
          absl::StrCat(kComponent, ": unsupported up block type ", t));
    }
  }
  if (in_channels <= 0 || out_channels <= 0 || latent_channels <= 0 || layers_per_block <= 0 ||
      norm_num_groups <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(kComponent, ": channels, layers and groups must be positive"));
  }
  for (size_t i = 0; i < n; ++i) {
    if (block_out_channels[i] <= 0 || block_out_channels[i] % norm_num_groups != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(kComponent, ": block_out_channels[", i, "] = ", block_out_channels[i],
                       " is not a positive multiple of norm_num_groups ", norm_num_groups));
    }
  }
  if (scaling_factor <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(kComponent, ": scaling_factor must be > 0"));
  }
  return absl::OkStatus();
}

}  // namespace dreambooth::diffusion
