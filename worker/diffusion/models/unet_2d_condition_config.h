// Configuration of UNet2DConditionModel, parsed from a diffusers `unet/config.json`.
#ifndef WORKER_DIFFUSION_UNET_2D_CONDITION_CONFIG_H_
#define WORKER_DIFFUSION_UNET_2D_CONDITION_CONFIG_H_

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dreambooth::diffusion {

// Mirrors diffusers' UNet2DConditionModel constructor arguments (v0.25) with the upstream
// defaults. Only the subset used by SD 1.x / 2.x is supported; FromJson refuses a config that
// enables anything else (class embeddings, addition embeddings, ...) with an error naming the
// field. Per-block values are expanded to one entry per down block by FromJson / Validate.
// A plain value type; safe to copy and share between threads.
struct UNet2DConditionConfig {
  int64_t sample_size = 64;
  int64_t in_channels = 4;
  int64_t out_channels = 4;
  bool center_input_sample = false;
  bool flip_sin_to_cos = true;
  double freq_shift = 0.0;
  std::vector<std::string> down_block_types = {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                               "CrossAttnDownBlock2D", "DownBlock2D"};
  std::string mid_block_type = "UNetMidBlock2DCrossAttn";  // or "" for no mid block
  std::vector<std::string> up_block_types = {"UpBlock2D", "CrossAttnUpBlock2D",
                                             "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"};
  std::vector<int64_t> block_out_channels = {320, 640, 1280, 1280};
  std::vector<int64_t> layers_per_block = {2};  // one value, or one per down block
  int64_t downsample_padding = 1;
  double mid_block_scale_factor = 1.0;
  double dropout = 0.0;
  std::string act_fn = "silu";
  int64_t norm_num_groups = 32;
  double norm_eps = 1e-5;
  std::vector<int64_t> cross_attention_dim = {1280};        // one value, or one per down block
  std::vector<int64_t> transformer_layers_per_block = {1};  // one value, or one per block
  // Number of attention heads per block (diffusers' misnamed `attention_head_dim`).
  std::vector<int64_t> attention_head_dim = {8};
  bool use_linear_projection = false;
  bool upcast_attention = false;
  double resnet_out_scale_factor = 1.0;
  int64_t time_embedding_dim = 0;  // 0: 4 * block_out_channels[0]
  int64_t conv_in_kernel = 3;
  int64_t conv_out_kernel = 3;

  // Parses a config.json object. Unknown keys are ignored; keys that select unsupported
  // architecture features are an InvalidArgument error naming the key.
  static absl::StatusOr<UNet2DConditionConfig> FromJson(const nlohmann::json& json);
  // Reads and parses a config.json file.
  static absl::StatusOr<UNet2DConditionConfig> FromFile(const std::string& path);
  // Serialises to a diffusers-compatible config.json object.
  nlohmann::json ToJson() const;
  // Checks consistency (list lengths, divisibility by groups/heads, known block types).
  absl::Status Validate() const;

  // Per-block accessors that expand single values (valid after Validate()).
  int64_t LayersPerBlock(size_t block) const;
  int64_t CrossAttentionDim(size_t block) const;
  int64_t TransformerLayers(size_t block) const;
  int64_t NumHeads(size_t block) const;
  int64_t TimeEmbedDim() const;
};

}  // namespace dreambooth::diffusion

#endif  // WORKER_DIFFUSION_UNET_2D_CONDITION_CONFIG_H_
