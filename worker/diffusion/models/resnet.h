// Convolutional building blocks shared by the UNet and the VAE (diffusers resnet.py,
// downsampling.py, upsampling.py).
#ifndef WORKER_DIFFUSION_RESNET_H_
#define WORKER_DIFFUSION_RESNET_H_

#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <vector>

namespace dreambooth::diffusion {

struct ResnetBlock2DConfig {
  int64_t in_channels = 0;
  int64_t out_channels = 0;   // 0: same as in_channels
  int64_t temb_channels = 0;  // 0: no time embedding projection (VAE)
  int64_t groups = 32;
  double eps = 1e-6;
  double output_scale_factor = 1.0;
};

// diffusers.models.resnet.ResnetBlock2D with the SD options (silu, time_embedding_norm
// "default", conv_shortcut only when channels change). Parameters: norm1, conv1,
// time_emb_proj, norm2, conv2, conv_shortcut. Concurrent forward calls are safe.
class ResnetBlock2DImpl : public torch::nn::Module {
 public:
  explicit ResnetBlock2DImpl(const ResnetBlock2DConfig& config);
  // x [B, Cin, H, W], temb [B, T] or undefined -> [B, Cout, H, W].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& temb = {});

  torch::nn::GroupNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv_shortcut{nullptr};
  torch::nn::Linear time_emb_proj{nullptr};

 private:
  double output_scale_factor_;
};
TORCH_MODULE(ResnetBlock2D);

// diffusers Downsample2D with use_conv: a stride-2 3x3 `conv`. padding 0 means the VAE
// variant, which first pads right and bottom by one.
class Downsample2DImpl : public torch::nn::Module {
 public:
  Downsample2DImpl(int64_t channels, int64_t padding);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Conv2d conv{nullptr};

 private:
  int64_t padding_;
};
TORCH_MODULE(Downsample2D);

// diffusers Upsample2D with use_conv: nearest x2 (or to `output_size`) then a 3x3 `conv`.
class Upsample2DImpl : public torch::nn::Module {
 public:
  explicit Upsample2DImpl(int64_t channels);
  // output_size: {H, W} to upsample to, or empty for exactly x2.
  torch::Tensor forward(const torch::Tensor& x, const std::vector<int64_t>& output_size = {});

  torch::nn::Conv2d conv{nullptr};
};
TORCH_MODULE(Upsample2D);

}  // namespace dreambooth::diffusion

#endif  // WORKER_DIFFUSION_RESNET_H_
