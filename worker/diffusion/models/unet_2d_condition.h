// UNet2DConditionModel: the denoising network of Stable Diffusion 1.x / 2.x.
#ifndef WORKER_DIFFUSION_UNET_2D_CONDITION_H_
#define WORKER_DIFFUSION_UNET_2D_CONDITION_H_

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "worker/diffusion/models/attention.h"
#include "worker/diffusion/models/unet_2d_blocks.h"
#include "worker/diffusion/models/unet_2d_condition_config.h"

namespace dreambooth::diffusion {

// Sinusoidal timestep features (diffusers `get_timestep_embedding` / `Timesteps`):
// timesteps [B] (int or float) -> [B, dim] float32, [cos | sin] when flip_sin_to_cos.
torch::Tensor TimestepFeatures(const torch::Tensor& timesteps, int64_t dim, bool flip_sin_to_cos,
                               double downscale_freq_shift, double max_period = 10000.0);

// diffusers.models.embeddings.TimestepEmbedding: linear_1 -> SiLU -> linear_2.
class TimestepEmbeddingImpl : public torch::nn::Module {
 public:
  TimestepEmbeddingImpl(int64_t in_channels, int64_t time_embed_dim);
  torch::Tensor forward(const torch::Tensor& x);  // [B, in] -> [B, time_embed_dim]

  torch::nn::Linear linear_1{nullptr}, linear_2{nullptr};
};
TORCH_MODULE(TimestepEmbedding);

// diffusers.models.unets.unet_2d_condition.UNet2DConditionModel (v0.25). Module and parameter
// names equal diffusers', so named_parameters() keys are the keys of
// `unet/diffusion_pytorch_model.safetensors`. The module is created on CPU in float32 with
// LibTorch's default initialisation; load weights, then move with to(device, dtype).
// Concurrent forward calls are safe; configuration setters are not.
class UNet2DConditionModelImpl : public torch::nn::Module {
 public:
  // `config` must pass config.Validate() (FromJson guarantees it); throws c10::Error otherwise.
  explicit UNet2DConditionModelImpl(const UNet2DConditionConfig& config);

  // sample [B, in_channels, h, w]; timestep 0-d, [1] or [B], integer or floating (fractional
  // values allowed, broadcast over the batch); encoder_hidden_states [B, M, cross_attention_dim].
  // Returns the noise (or v) prediction [B, out_channels, h, w] in the sample's dtype.
  // h and w need not be multiples of the total downsampling factor.
  torch::Tensor forward(const torch::Tensor& sample, const torch::Tensor& timestep,
                        const torch::Tensor& encoder_hidden_states);

  // When enabled (and the module is training with grad mode on), every resnet and transformer
  // block recomputes its activations in backward instead of storing them.
  void set_gradient_checkpointing(bool enabled);
  bool gradient_checkpointing() const { return gradient_checkpointing_; }

  // Selects the attention kernel of every attention layer.
  void set_attention_options(const AttentionOptions& options);

  const UNet2DConditionConfig& config() const { return config_; }

  torch::nn::Conv2d conv_in{nullptr};
  TimestepEmbedding time_embedding{nullptr};
  torch::nn::ModuleList down_blocks{nullptr};  // DownBlock2D
  UNetMidBlock2DCrossAttn mid_block{nullptr};  // may be null (mid_block_type "")
  torch::nn::ModuleList up_blocks{nullptr};    // UpBlock2D
  torch::nn::GroupNorm conv_norm_out{nullptr};
  torch::nn::Conv2d conv_out{nullptr};

 private:
  UNet2DConditionConfig config_;
  bool gradient_checkpointing_ = false;
};
TORCH_MODULE(UNet2DConditionModel);

}  // namespace dreambooth::diffusion

#endif  // WORKER_DIFFUSION_UNET_2D_CONDITION_H_
