// AutoencoderKL: the VAE of Stable Diffusion (image <-> latent).
#ifndef WORKER_DIFFUSION_AUTOENCODER_KL_H_
#define WORKER_DIFFUSION_AUTOENCODER_KL_H_

#include <ATen/core/Generator.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <optional>

#include "worker/diffusion/models/attention.h"
#include "worker/diffusion/models/autoencoder_kl_config.h"
#include "worker/diffusion/models/resnet.h"

namespace dreambooth::diffusion {

// diffusers DiagonalGaussianDistribution: the VAE posterior. logvar is already clamped to
// [-30, 20]. Value type holding tensors.
struct LatentDistribution {
  torch::Tensor mean;    // [B, latent_channels, h, w]
  torch::Tensor logvar;  // same shape

  torch::Tensor Std() const;
  // mean + std * N(0, 1), noise drawn with `generator` (default generator when nullopt).
  torch::Tensor Sample(std::optional<at::Generator> generator = std::nullopt) const;
};

// diffusers UNetMidBlock2D as used by the VAE: resnet -> attention (1 head) -> resnet.
class UNetMidBlock2DImpl : public torch::nn::Module {
 public:
  UNetMidBlock2DImpl(int64_t channels, int64_t groups, bool add_attention);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::ModuleList resnets{nullptr};
  torch::nn::ModuleList attentions{nullptr};  // empty when add_attention is false
};
TORCH_MODULE(UNetMidBlock2D);

// diffusers.models.autoencoders.vae.Encoder (double_z = true).
class EncoderImpl : public torch::nn::Module {
 public:
  explicit EncoderImpl(const AutoencoderKLConfig& config);
  torch::Tensor forward(const torch::Tensor& x);  // [B, 3, H, W] -> [B, 2*latent, h, w]

  torch::nn::Conv2d conv_in{nullptr};
  torch::nn::ModuleList down_blocks{nullptr};  // each: resnets, downsamplers
  UNetMidBlock2D mid_block{nullptr};
  torch::nn::GroupNorm conv_norm_out{nullptr};
  torch::nn::Conv2d conv_out{nullptr};
};
TORCH_MODULE(Encoder);

// diffusers.models.autoencoders.vae.Decoder.
class DecoderImpl : public torch::nn::Module {
 public:
  explicit DecoderImpl(const AutoencoderKLConfig& config);
  torch::Tensor forward(const torch::Tensor& z);  // [B, latent, h, w] -> [B, 3, H, W]

  torch::nn::Conv2d conv_in{nullptr};
  UNetMidBlock2D mid_block{nullptr};
  torch::nn::ModuleList up_blocks{nullptr};  // each: resnets, upsamplers
  torch::nn::GroupNorm conv_norm_out{nullptr};
  torch::nn::Conv2d conv_out{nullptr};
};
TORCH_MODULE(Decoder);

// diffusers.models.autoencoders.autoencoder_kl.AutoencoderKL. Parameter names equal diffusers'
// (current `to_q/to_k/to_v/to_out.0` attention names; legacy names are the loader's business).
// Concurrent Encode/Decode calls are safe; mutation is not.
class AutoencoderKLImpl : public torch::nn::Module {
 public:
  // `config` must pass Validate(); throws c10::Error otherwise.
  explicit AutoencoderKLImpl(const AutoencoderKLConfig& config);

  // image [B, in_channels, H, W] in [-1, 1] -> posterior over latents [B, latent, H/f, W/f]
  // with f = 2^(len(block_out_channels)-1). Unscaled (multiply by scaling_factor() for the UNet).
  LatentDistribution Encode(const torch::Tensor& image);
  // Raw decoder output for unscaled latents (divide UNet latents by scaling_factor() first):
  // [B, latent, h, w] -> [B, out_channels, h*f, w*f], roughly in [-1, 1], not clamped.
  torch::Tensor Decode(const torch::Tensor& latents);

  double scaling_factor() const { return config_.scaling_factor; }
  double shift_factor() const { return config_.shift_factor; }
  // Spatial factor between images and latents.
  int64_t downscale_factor() const;
  const AutoencoderKLConfig& config() const { return config_; }

  Encoder encoder{nullptr};
  Decoder decoder{nullptr};
  torch::nn::Conv2d quant_conv{nullptr};       // null when !use_quant_conv
  torch::nn::Conv2d post_quant_conv{nullptr};  // null when !use_post_quant_conv

 private:
  AutoencoderKLConfig config_;
};
TORCH_MODULE(AutoencoderKL);

}  // namespace dreambooth::diffusion

#endif  // WORKER_DIFFUSION_AUTOENCODER_KL_H_
