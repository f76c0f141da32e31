// Spatial transformer of the UNet (diffusers Transformer2DModel, BasicTransformerBlock,
// FeedForward with GEGLU).
#ifndef WORKER_DIFFUSION_TRANSFORMER_2D_H_
#define WORKER_DIFFUSION_TRANSFORMER_2D_H_

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <cstdint>

#include "worker/diffusion/models/attention.h"

namespace dreambooth::diffusion {

// diffusers.models.activations.GEGLU: `proj` to 2*dim_out, value * gelu(gate).
class GEGLUImpl : public torch::nn::Module {
 public:
  GEGLUImpl(int64_t dim_in, int64_t dim_out);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Linear proj{nullptr};
};
TORCH_MODULE(GEGLU);

// diffusers.models.attention.FeedForward (geglu, mult 4): net = [GEGLU, Dropout, Linear].
class FeedForwardImpl : public torch::nn::Module {
 public:
  FeedForwardImpl(int64_t dim, double dropout);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::ModuleList net{nullptr};
};
TORCH_MODULE(FeedForward);

struct TransformerBlockConfig {
  int64_t dim = 0;
  int64_t heads = 8;
  int64_t dim_head = 64;
  int64_t cross_attention_dim = 0;
  bool upcast_attention = false;
  double dropout = 0.0;
};

// diffusers BasicTransformerBlock (layer_norm, self-attn, cross-attn, GEGLU feed-forward).
class BasicTransformerBlockImpl : public torch::nn::Module {
 public:
  explicit BasicTransformerBlockImpl(const TransformerBlockConfig& config);
  // x [B, N, C], context [B, M, cross_dim] -> [B, N, C].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context);

  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr};
  Attention attn1{nullptr}, attn2{nullptr};
  FeedForward ff{nullptr};
};
TORCH_MODULE(BasicTransformerBlock);

struct Transformer2DConfig {
  int64_t heads = 8;
  int64_t dim_head = 64;
  int64_t in_channels = 0;
  int64_t num_layers = 1;
  int64_t cross_attention_dim = 0;
  int64_t norm_num_groups = 32;
  bool use_linear_projection = false;
  bool upcast_attention = false;
  double dropout = 0.0;
};

// diffusers Transformer2DModel for continuous inputs: GroupNorm(eps 1e-6) -> proj_in (1x1 conv,
// or Linear with use_linear_projection) -> transformer_blocks -> proj_out -> + residual.
class Transformer2DModelImpl : public torch::nn::Module {
 public:
  explicit Transformer2DModelImpl(const Transformer2DConfig& config);
  // x [B, C, H, W], context [B, M, cross_dim] -> [B, C, H, W].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context);

  torch::nn::GroupNorm norm{nullptr};
  // Registered as `proj_in` / `proj_out`: 1x1 convs, or Linears with use_linear_projection.
  torch::nn::Conv2d proj_in_conv{nullptr}, proj_out_conv{nullptr};
  torch::nn::Linear proj_in_linear{nullptr}, proj_out_linear{nullptr};
  torch::nn::ModuleList transformer_blocks{nullptr};

 private:
  bool use_linear_projection_;
};
TORCH_MODULE(Transformer2DModel);

}  // namespace dreambooth::diffusion

#endif  // WORKER_DIFFUSION_TRANSFORMER_2D_H_
