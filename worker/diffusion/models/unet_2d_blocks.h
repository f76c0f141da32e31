// Down, mid and up blocks of the UNet (diffusers unet_2d_blocks.py).
#ifndef WORKER_DIFFUSION_UNET_2D_BLOCKS_H_
#define WORKER_DIFFUSION_UNET_2D_BLOCKS_H_

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <vector>

#include "worker/diffusion/models/resnet.h"
#include "worker/diffusion/models/transformer_2d.h"

namespace dreambooth::diffusion {

// Arguments shared by the UNet's blocks.
struct UNetBlockConfig {
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t prev_output_channels = 0;  // up blocks only
  int64_t temb_channels = 0;
  int64_t num_layers = 1;
  bool has_cross_attention = false;  // CrossAttn*Block2D vs plain *Block2D
  int64_t transformer_layers = 1;
  int64_t heads = 8;
  int64_t cross_attention_dim = 0;
  int64_t groups = 32;
  double eps = 1e-5;
  double output_scale_factor = 1.0;
  bool use_linear_projection = false;
  bool upcast_attention = false;
  bool add_sample = true;  // add_downsample / add_upsample
  int64_t downsample_padding = 1;
  double dropout = 0.0;
};

// Sets gradient checkpointing on the resnets and transformers of a block.
class CheckpointingBlock : public torch::nn::Module {
 public:
  void set_gradient_checkpointing(bool enabled);
  bool gradient_checkpointing() const { return gradient_checkpointing_; }

 protected:
  // Apply a resnet / transformer, checkpointed when enabled and the block is training.
  torch::Tensor RunResnet(ResnetBlock2D& resnet, const torch::Tensor& x, const torch::Tensor& temb);
  torch::Tensor RunTransformer(Transformer2DModel& transformer, const torch::Tensor& x,
                               const torch::Tensor& context);

  bool gradient_checkpointing_ = false;
};

// diffusers CrossAttnDownBlock2D (has_cross_attention) and DownBlock2D: num_layers resnets,
// each followed by a Transformer2DModel when cross-attention is on, then an optional
// downsampler. Submodules: resnets, attentions (absent when empty), downsamplers.
class DownBlock2DImpl : public CheckpointingBlock {
 public:
  explicit DownBlock2DImpl(const UNetBlockConfig& config);
  // x [B, Cin, H, W] -> x' and appends every output state (one per resnet, plus the
  // downsampled one) to `skips`.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& temb,
                        const torch::Tensor& context, std::vector<torch::Tensor>* skips);

  torch::nn::ModuleList resnets{nullptr};
  torch::nn::ModuleList attentions{nullptr};
  torch::nn::ModuleList downsamplers{nullptr};
};
TORCH_MODULE(DownBlock2D);

// diffusers UNetMidBlock2DCrossAttn: resnet, then (transformer, resnet) x num_layers.
class UNetMidBlock2DCrossAttnImpl : public CheckpointingBlock {
 public:
  explicit UNetMidBlock2DCrossAttnImpl(const UNetBlockConfig& config);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& temb,
                        const torch::Tensor& context);

  torch::nn::ModuleList attentions{nullptr};
  torch::nn::ModuleList resnets{nullptr};
};
TORCH_MODULE(UNetMidBlock2DCrossAttn);

// diffusers CrossAttnUpBlock2D / UpBlock2D: num_layers (= layers_per_block + 1) resnets that
// each consume one skip (popped from the back of `skips`, concatenated after x), optional
// transformers, then an optional upsampler. Submodules: resnets, attentions, upsamplers.
class UpBlock2DImpl : public CheckpointingBlock {
 public:
  explicit UpBlock2DImpl(const UNetBlockConfig& config);
  // upsample_size: spatial size for the upsampler ({} for exactly x2).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& temb,
                        const torch::Tensor& context, std::vector<torch::Tensor>* skips,
                        const std::vector<int64_t>& upsample_size);

  torch::nn::ModuleList resnets{nullptr};
  torch::nn::ModuleList attentions{nullptr};
  torch::nn::ModuleList upsamplers{nullptr};
};
TORCH_MODULE(UpBlock2D);

}  // namespace dreambooth::diffusion

#endif  // WORKER_DIFFUSION_UNET_2D_BLOCKS_H_
