#include "worker/diffusion/models/unet_2d_condition.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cmath>

namespace dreambooth::diffusion {

torch::Tensor TimestepFeatures(const torch::Tensor& timesteps, int64_t dim, bool flip_sin_to_cos,
                               double downscale_freq_shift, double max_period) {
  TORCH_CHECK(timesteps.dim() == 1, "timesteps must be 1-D");
  const int64_t half = dim / 2;
  // Same float32 operation order as diffusers' get_timestep_embedding.
  torch::Tensor exponent =
      at::arange(0, half, timesteps.options().dtype(at::kFloat)) * (-std::log(max_period));
  exponent = exponent / (static_cast<double>(half) - downscale_freq_shift);
  torch::Tensor emb = timesteps.unsqueeze(1).to(at::kFloat) * at::exp(exponent).unsqueeze(0);
  emb = at::cat({at::sin(emb), at::cos(emb)}, -1);  // [B, 2*half]
  if (flip_sin_to_cos) emb = at::cat({emb.narrow(1, half, half), emb.narrow(1, 0, half)}, -1);
  if (dim % 2 == 1) emb = at::constant_pad_nd(emb, {0, 1, 0, 0}, 0.0);
  return emb;  // [B, dim]
}

TimestepEmbeddingImpl::TimestepEmbeddingImpl(int64_t in_channels, int64_t time_embed_dim) {
  linear_1 = register_module("linear_1", torch::nn::Linear(in_channels, time_embed_dim));
  linear_2 = register_module("linear_2", torch::nn::Linear(time_embed_dim, time_embed_dim));
}

torch::Tensor TimestepEmbeddingImpl::forward(const torch::Tensor& x) {
  return linear_2(at::silu(linear_1(x)));
}

UNet2DConditionModelImpl::UNet2DConditionModelImpl(const UNet2DConditionConfig& config)
    : config_(config) {
  const absl::Status valid = config.Validate();
  TORCH_CHECK(valid.ok(), std::string(valid.message()));
  const auto& boc = config.block_out_channels;
  const size_t n = boc.size();
  const int64_t temb = config.TimeEmbedDim();
  conv_in = register_module(
      "conv_in",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(config.in_channels, boc[0], config.conv_in_kernel)
                            .padding((config.conv_in_kernel - 1) / 2)));
  time_embedding = register_module("time_embedding", TimestepEmbedding(boc[0], temb));

  UNetBlockConfig base;
  base.temb_channels = temb;
  base.groups = config.norm_num_groups;
  base.eps = config.norm_eps;
  base.use_linear_projection = config.use_linear_projection;
  base.upcast_attention = config.upcast_attention;
  base.downsample_padding = config.downsample_padding;
  base.dropout = config.dropout;

  down_blocks = register_module("down_blocks", torch::nn::ModuleList());
  int64_t output_channel = boc[0];
  for (size_t i = 0; i < n; ++i) {
    UNetBlockConfig c = base;
    c.in_channels = output_channel;
    output_channel = boc[i];
    c.out_channels = output_channel;
    c.num_layers = config.LayersPerBlock(i);
    c.has_cross_attention = config.down_block_types[i] == "CrossAttnDownBlock2D";
    c.transformer_layers = config.TransformerLayers(i);
    c.heads = config.NumHeads(i);
    c.cross_attention_dim = config.CrossAttentionDim(i);
    c.add_sample = i + 1 < n;
    down_blocks->push_back(DownBlock2D(c));
  }

  if (!config.mid_block_type.empty()) {
    UNetBlockConfig c = base;
    c.in_channels = boc[n - 1];
    c.out_channels = boc[n - 1];
    c.num_layers = 1;
    c.has_cross_attention = true;
    c.transformer_layers = config.TransformerLayers(n - 1);
    c.heads = config.NumHeads(n - 1);
    c.cross_attention_dim = config.CrossAttentionDim(n - 1);
    c.output_scale_factor = config.mid_block_scale_factor;
    mid_block = register_module("mid_block", UNetMidBlock2DCrossAttn(c));
  }

  up_blocks = register_module("up_blocks", torch::nn::ModuleList());
  output_channel = boc[n - 1];
  for (size_t i = 0; i < n; ++i) {
    const size_t r = n - 1 - i;  // index into the (reversed) per-block lists
    UNetBlockConfig c = base;
    c.prev_output_channels = output_channel;
    output_channel = boc[r];
    c.out_channels = output_channel;
    c.in_channels = boc[i + 1 < n ? n - 2 - i : 0];
    c.num_layers = config.LayersPerBlock(r) + 1;
    c.has_cross_attention = config.up_block_types[i] == "CrossAttnUpBlock2D";
    c.transformer_layers = config.TransformerLayers(r);
    c.heads = config.NumHeads(r);
    c.cross_attention_dim = config.CrossAttentionDim(r);
    c.add_sample = i + 1 < n;
    up_blocks->push_back(UpBlock2D(c));
  }

  conv_norm_out = register_module(
      "conv_norm_out",
      torch::nn::GroupNorm(
          torch::nn::GroupNormOptions(config.norm_num_groups, boc[0]).eps(config.norm_eps)));
  conv_out = register_module(
      "conv_out", torch::nn::Conv2d(
                      torch::nn::Conv2dOptions(boc[0], config.out_channels, config.conv_out_kernel)
                          .padding((config.conv_out_kernel - 1) / 2)));
}

torch::Tensor UNet2DConditionModelImpl::forward(const torch::Tensor& sample,
                                                const torch::Tensor& timestep,
                                                const torch::Tensor& encoder_hidden_states) {
  TORCH_CHECK(sample.dim() == 4, "UNet sample must be [B, C, H, W], got ", sample.sizes());
  TORCH_CHECK(encoder_hidden_states.dim() == 3, "encoder_hidden_states must be [B, M, D], got ",
              encoder_hidden_states.sizes());
  const int64_t batch = sample.size(0);
  torch::Tensor t = timestep.to(sample.device());
  if (t.dim() == 0) t = t.unsqueeze(0);
  TORCH_CHECK(t.dim() == 1 && (t.size(0) == 1 || t.size(0) == batch),
              "timestep must be a scalar, [1] or [B], got ", t.sizes());
  t = t.expand({batch});

  // Up-block upsampling must follow the skip sizes when h or w is not a multiple of the total
  // downsampling factor.
  const int64_t factor = int64_t{1} << (config_.block_out_channels.size() - 1);
  const bool forward_upsample_size = sample.size(2) % factor != 0 || sample.size(3) % factor != 0;

  torch::Tensor t_emb = TimestepFeatures(t, config_.block_out_channels[0], config_.flip_sin_to_cos,
                                         config_.freq_shift)
                            .to(sample.scalar_type());  // [B, C0]
  torch::Tensor emb = time_embedding(t_emb);            // [B, temb]

  torch::Tensor h = config_.center_input_sample ? 2 * sample - 1.0 : sample;
  h = conv_in(h);  // [B, C0, H, W]
  std::vector<torch::Tensor> skips = {h};
  for (const auto& block : *down_blocks) {
    h = block->as<DownBlock2DImpl>()->forward(h, emb, encoder_hidden_states, &skips);
  }
  if (mid_block) h = mid_block->forward(h, emb, encoder_hidden_states);
  for (size_t i = 0; i < up_blocks->size(); ++i) {
    auto* block = up_blocks[i]->as<UpBlock2DImpl>();
    const size_t consumed = block->resnets->size();
    std::vector<int64_t> upsample_size;
    const bool is_final = i + 1 == up_blocks->size();
    if (!is_final && forward_upsample_size) {
      TORCH_CHECK(skips.size() > consumed, "UNet skip stack too short");
      const torch::Tensor& next = skips[skips.size() - consumed - 1];
      upsample_size = {next.size(2), next.size(3)};
    }
    h = block->forward(h, emb, encoder_hidden_states, &skips, upsample_size);
  }
  h = conv_out(at::silu(conv_norm_out(h)));  // [B, out, H, W]
  return h;
}

void UNet2DConditionModelImpl::set_gradient_checkpointing(bool enabled) {
  gradient_checkpointing_ = enabled;
  for (const auto& block : *down_blocks) {
    block->as<DownBlock2DImpl>()->set_gradient_checkpointing(enabled);
  }
  if (mid_block) mid_block->set_gradient_checkpointing(enabled);
  for (const auto& block : *up_blocks) {
    block->as<UpBlock2DImpl>()->set_gradient_checkpointing(enabled);
  }
}

void UNet2DConditionModelImpl::set_attention_options(const AttentionOptions& options) {
  SetAttentionOptions(*this, options);
}

}  // namespace dreambooth::diffusion
