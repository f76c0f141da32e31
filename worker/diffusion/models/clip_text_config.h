// Configuration of the CLIP text encoder, parsed from a transformers `text_encoder/config.json`.
#ifndef WORKER_DIFFUSION_CLIP_TEXT_CONFIG_H_
#define WORKER_DIFFUSION_CLIP_TEXT_CONFIG_H_

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "absl/status/statusor.h"

namespace dreambooth::diffusion {

// Mirrors transformers' CLIPTextConfig (v4.33) with its defaults.
// Note: SD 1.x checkpoints carry bos/eos/pad ids 0/2/1; eos_token_id == 2 selects the legacy
// argmax pooling rule (see CLIPTextModel). A plain value type; safe to copy.
struct ClipTextConfig {
  int64_t vocab_size = 49408;
  int64_t hidden_size = 512;
  int64_t intermediate_size = 2048;
  int64_t projection_dim = 512;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 8;
  int64_t max_position_embeddings = 77;
  std::string hidden_act = "quick_gelu";  // "quick_gelu", "gelu" or "gelu_new"
  double layer_norm_eps = 1e-5;
  double attention_dropout = 0.0;
  double initializer_range = 0.02;
  double initializer_factor = 1.0;
  int64_t pad_token_id = 1;
  int64_t bos_token_id = 49406;
  int64_t eos_token_id = 49407;

  // Parses a config.json object; unsupported values are InvalidArgument naming the key.
  static absl::StatusOr<ClipTextConfig> FromJson(const nlohmann::json& json);
  // Reads and parses a config.json file.
  static absl::StatusOr<ClipTextConfig> FromFile(const std::string& path);
  // Serialises to a transformers-compatible config.json object.
  nlohmann::json ToJson() const;
  // Checks consistency (hidden_size divisible by heads, known activation).
  absl::Status Validate() const;
};

}  // namespace dreambooth::diffusion

#endif  // WORKER_DIFFUSION_CLIP_TEXT_CONFIG_H_
