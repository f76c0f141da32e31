// Configuration of AutoencoderKL, parsed from a diffusers `vae/config.json`.
#ifndef WORKER_DIFFUSION_AUTOENCODER_KL_CONFIG_H_
#define WORKER_DIFFUSION_AUTOENCODER_KL_CONFIG_H_

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dreambooth::diffusion {

// Mirrors diffusers' AutoencoderKL constructor arguments with the upstream defaults.
// A plain value type; safe to copy and share between threads.
struct AutoencoderKLConfig {
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  std::vector<std::string> down_block_types = {"DownEncoderBlock2D"};
  std::vector<std::string> up_block_types = {"UpDecoderBlock2D"};
  std::vector<int64_t> block_out_channels = {64};
  int64_t layers_per_block = 1;
  std::string act_fn = "silu";
  int64_t latent_channels = 4;
  int64_t norm_num_groups = 32;
  int64_t sample_size = 32;
  double scaling_factor = 0.18215;
  double shift_factor = 0.0;  // null upstream; latents = (z - shift) * scale
  bool force_upcast = true;
  bool use_quant_conv = true;
  bool use_post_quant_conv = true;
  bool mid_block_add_attention = true;

  // Parses a config.json object; unsupported values are InvalidArgument naming the key.
  static absl::StatusOr<AutoencoderKLConfig> FromJson(const nlohmann::json& json);
  // Reads and parses a config.json file.
  static absl::StatusOr<AutoencoderKLConfig> FromFile(const std::string& path);
  // Serialises to a diffusers-compatible config.json object.
  nlohmann::json ToJson() const;
  // Checks consistency (matching list lengths, channels divisible by groups).
  absl::Status Validate() const;
};

}  // namespace dreambooth::diffusion

#endif  // WORKER_DIFFUSION_AUTOENCODER_KL_CONFIG_H_
