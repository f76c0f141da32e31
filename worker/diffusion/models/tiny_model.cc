#include "worker/diffusion/models/tiny_model.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/normalization.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

namespace dreambooth::diffusion {

UNet2DConditionConfig TinyUNetConfig() {
  UNet2DConditionConfig c;
  c.sample_size = 32;
  c.in_channels = 4;
  c.out_channels = 4;
  c.layers_per_block = {2};
  c.block_out_channels = {32, 64};
  c.down_block_types = {"CrossAttnDownBlock2D", "DownBlock2D"};
  c.up_block_types = {"UpBlock2D", "CrossAttnUpBlock2D"};
  c.cross_attention_dim = {32};
  c.attention_head_dim = {8};
  c.norm_num_groups = 32;
  return c;
}

AutoencoderKLConfig TinyVaeConfig() {
  AutoencoderKLConfig c;
  c.in_channels = 3;
  c.out_channels = 3;
  c.block_out_channels = {32, 64};
  c.down_block_types = {"DownEncoderBlock2D", "DownEncoderBlock2D"};
  c.up_block_types = {"UpDecoderBlock2D", "UpDecoderBlock2D"};
  c.layers_per_block = 1;
  c.latent_channels = 4;
  c.norm_num_groups = 32;
  c.sample_size = 64;
  c.scaling_factor = 0.18215;
  return c;
}

ClipTextConfig TinyTextConfig() {
  ClipTextConfig c;
  c.vocab_size = 49408;
  c.hidden_size = 32;
  c.intermediate_size = 37;
  c.projection_dim = 32;
  c.num_hidden_layers = 5;
  c.num_attention_heads = 4;
  c.max_position_embeddings = 77;
  c.hidden_act = "quick_gelu";
  c.layer_norm_eps = 1e-5;
  // The values SD 1.x text_encoder/config.json files carry (legacy argmax pooling).
  c.bos_token_id = 0;
  c.eos_token_id = 2;
  c.pad_token_id = 1;
  return c;
}

UNet2DConditionConfig ToyUNetConfig() {
  UNet2DConditionConfig c;
  c.sample_size = 16;
  c.in_channels = 4;
  c.out_channels = 4;
  c.layers_per_block = {2};
  c.block_out_channels = {32, 64, 128};
  c.down_block_types = {"DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"};
  c.up_block_types = {"CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"};
  c.cross_attention_dim = {64};
  c.attention_head_dim = {4};
  c.norm_num_groups = 32;
  return c;
}

AutoencoderKLConfig ToyVaeConfig() {
  AutoencoderKLConfig c;
  c.in_channels = 3;
  c.out_channels = 3;
  c.block_out_channels = {32, 64, 64};
  c.down_block_types = {"DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"};
  c.up_block_types = {"UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"};
  c.layers_per_block = 1;
  c.latent_channels = 4;
  c.norm_num_groups = 32;
  c.sample_size = 64;
  c.scaling_factor = 1.0;  // measured on the rendered data after the VAE is trained
  return c;
}

ClipTextConfig ToyTextConfig() {
  ClipTextConfig c = TinyTextConfig();
  c.hidden_size = 64;
  c.intermediate_size = 256;
  c.projection_dim = 64;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 4;
  return c;
}

nlohmann::json TinySchedulerConfigJson() {
  return {
      {"_class_name", "DDPMScheduler"},
      {"num_train_timesteps", 1000},
      {"beta_start", 0.00085},
      {"beta_end", 0.012},
      {"beta_schedule", "scaled_linear"},
      {"clip_sample", false},
      {"set_alpha_to_one", false},
      {"skip_prk_steps", true},
      {"steps_offset", 1},
      {"prediction_type", "epsilon"},
      {"timestep_spacing", "leading"},
      {"trained_betas", nullptr},
      {"variance_type", "fixed_small"},
  };
}

void InitializeRandomWeights(torch::nn::Module& module, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  at::NoGradGuard no_grad;
  // Parameters owned by embeddings and norms, by their full names.
  std::set<std::string> embedding_params, norm_params;
  for (const auto& item : module.named_modules("", /*include_self=*/true)) {
    const std::string prefix = item.key().empty() ? "" : item.key() + ".";
    const torch::nn::Module* m = item.value().get();
    const bool is_embedding = dynamic_cast<const torch::nn::EmbeddingImpl*>(m) != nullptr;
    const bool is_norm = dynamic_cast<const torch::nn::GroupNormImpl*>(m) != nullptr ||
                         dynamic_cast<const torch::nn::LayerNormImpl*>(m) != nullptr;
    if (!is_embedding && !is_norm) continue;
    for (const auto& p : item.value()->named_parameters(/*recurse=*/false)) {
      (is_embedding ? embedding_params : norm_params).insert(prefix + p.key());
    }
  }
  const auto cpu = at::TensorOptions().dtype(at::kFloat);
  double last_bound = 0.1;
  for (auto& p : module.named_parameters(/*recurse=*/true)) {
    at::Tensor& param = p.value();
    at::Tensor values;
    if (embedding_params.count(p.key())) {
      values = at::empty(param.sizes(), cpu).normal_(0.0, 0.02, gen);
    } else if (norm_params.count(p.key())) {
      values = at::empty(param.sizes(), cpu).uniform_(-0.1, 0.1, gen);
      if (p.key().size() >= 7 && p.key().compare(p.key().size() - 7, 7, ".weight") == 0) {
        values.add_(1.0);
      }
    } else if (param.dim() >= 2) {
      const int64_t fan_in = param.numel() / param.size(0);
      last_bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
      values = at::empty(param.sizes(), cpu).uniform_(-last_bound, last_bound, gen);
    } else {
      // A bias: named after its weight, which precedes it in registration order.
      values = at::empty(param.sizes(), cpu).uniform_(-last_bound, last_bound, gen);
    }
    param.copy_(values.to(param.device(), param.scalar_type()));
  }
}

}  // namespace dreambooth::diffusion
