#include "worker/diffusion/models/transformer_2d.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/dropout.h>

#include "worker/diffusion/models/lora.h"

namespace dreambooth::diffusion {

GEGLUImpl::GEGLUImpl(int64_t dim_in, int64_t dim_out) {
  proj = register_module("proj", torch::nn::Linear(dim_in, dim_out * 2));
}

torch::Tensor GEGLUImpl::forward(const torch::Tensor& x) {
  std::vector<torch::Tensor> parts =
      LoraLinear(*proj, x).chunk(2, -1);  // value, gate: [B, N, dim_out]
  return parts[0] * at::gelu(parts[1]);
}

FeedForwardImpl::FeedForwardImpl(int64_t dim, double dropout) {
  net = register_module("net", torch::nn::ModuleList());
  net->push_back(GEGLU(dim, dim * 4));
  net->push_back(torch::nn::Dropout(dropout));
  net->push_back(torch::nn::Linear(dim * 4, dim));
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor& x) {
  torch::Tensor h = net[0]->as<GEGLUImpl>()->forward(x);  // [B, N, 4C]
  h = net[1]->as<torch::nn::DropoutImpl>()->forward(h);
  return LoraLinear(*net[2]->as<torch::nn::LinearImpl>(), h);  // [B, N, C]
}

BasicTransformerBlockImpl::BasicTransformerBlockImpl(const TransformerBlockConfig& config) {
  const auto ln = [&] {
    return torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.dim}).eps(1e-5));
  };
  AttentionConfig self_attention;
  self_attention.query_dim = config.dim;
  self_attention.heads = config.heads;
  self_attention.dim_head = config.dim_head;
  self_attention.upcast_attention = config.upcast_attention;
  AttentionConfig cross_attention = self_attention;
  cross_attention.cross_attention_dim = config.cross_attention_dim;
  norm1 = register_module("norm1", ln());
  attn1 = register_module("attn1", Attention(self_attention));
  norm2 = register_module("norm2", ln());
  attn2 = register_module("attn2", Attention(cross_attention));
  norm3 = register_module("norm3", ln());
  ff = register_module("ff", FeedForward(config.dim, config.dropout));
}

torch::Tensor BasicTransformerBlockImpl::forward(const torch::Tensor& x,
                                                 const torch::Tensor& context) {
  torch::Tensor h = attn1(norm1(x)) + x;  // [B, N, C]
  h = attn2(norm2(h), context) + h;
  return ff(norm3(h)) + h;
}

Transformer2DModelImpl::Transformer2DModelImpl(const Transformer2DConfig& config)
    : use_linear_projection_(config.use_linear_projection) {
  const int64_t c = config.in_channels;
  const int64_t inner = config.heads * config.dim_head;
  norm = register_module(
      "norm",
      torch::nn::GroupNorm(torch::nn::GroupNormOptions(config.norm_num_groups, c).eps(1e-6)));
  if (use_linear_projection_) {
    proj_in_linear = register_module("proj_in", torch::nn::Linear(c, inner));
  } else {
    proj_in_conv =
        register_module("proj_in", torch::nn::Conv2d(torch::nn::Conv2dOptions(c, inner, 1)));
  }
  transformer_blocks = register_module("transformer_blocks", torch::nn::ModuleList());
  TransformerBlockConfig block;
  block.dim = inner;
  block.heads = config.heads;
  block.dim_head = config.dim_head;
  block.cross_attention_dim = config.cross_attention_dim;
  block.upcast_attention = config.upcast_attention;
  block.dropout = config.dropout;
  for (int64_t i = 0; i < config.num_layers; ++i) {
    transformer_blocks->push_back(BasicTransformerBlock(block));
  }
  if (use_linear_projection_) {
    proj_out_linear = register_module("proj_out", torch::nn::Linear(inner, c));
  } else {
    proj_out_conv =
        register_module("proj_out", torch::nn::Conv2d(torch::nn::Conv2dOptions(inner, c, 1)));
  }
}

torch::Tensor Transformer2DModelImpl::forward(const torch::Tensor& x,
                                              const torch::Tensor& context) {
  const int64_t b = x.size(0), h = x.size(2), w = x.size(3);
  torch::Tensor hs = norm(x);  // [B, C, H, W]
  int64_t inner = 0;
  if (use_linear_projection_) {
    inner = hs.size(1);
    hs = hs.permute({0, 2, 3, 1}).reshape({b, h * w, inner});  // [B, HW, C]
    hs = LoraLinear(*proj_in_linear, hs);
  } else {
    hs = LoraConv2d(*proj_in_conv, hs);
    inner = hs.size(1);
    hs = hs.permute({0, 2, 3, 1}).reshape({b, h * w, inner});  // [B, HW, inner]
  }
  for (const auto& block : *transformer_blocks) {
    hs = block->as<BasicTransformerBlockImpl>()->forward(hs, context);
  }
  if (use_linear_projection_) {
    hs = LoraLinear(*proj_out_linear, hs);
    hs = hs.reshape({b, h, w, -1}).permute({0, 3, 1, 2}).contiguous();  // [B, C, H, W]
  } else {
    hs = hs.reshape({b, h, w, inner}).permute({0, 3, 1, 2}).contiguous();
    hs = LoraConv2d(*proj_out_conv, hs);
  }
  return hs + x;
}

}  // namespace dreambooth::diffusion
