#include "worker/diffusion/models/resnet.h"

#include <ATen/ATen.h>
#include <torch/nn/functional/padding.h>
#include <torch/nn/functional/upsampling.h>

#include "kernels/fused_kernels.h"
#include "kernels/group_norm_silu.h"
#include "worker/diffusion/models/lora.h"

namespace dreambooth::diffusion {
namespace {

torch::nn::Conv2d Conv(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding));
}

// silu(norm(x)): the fused kernel when switched on (kernels/fused_kernels.h), else LibTorch's ops.
torch::Tensor NormSilu(torch::nn::GroupNorm& norm, const torch::Tensor& x, bool fused) {
  if (!fused) return at::silu(norm(x));
  const torch::nn::GroupNormOptions& o = norm->options;
  return kernels::GroupNormSilu(x, o.num_groups(), norm->weight, norm->bias, o.eps());
}

}  // namespace

ResnetBlock2DImpl::ResnetBlock2DImpl(const ResnetBlock2DConfig& config)
    : output_scale_factor_(config.output_scale_factor) {
  const int64_t in = config.in_channels;
  const int64_t out = config.out_channels > 0 ? config.out_channels : in;
  norm1 = register_module(
      "norm1",
      torch::nn::GroupNorm(torch::nn::GroupNormOptions(config.groups, in).eps(config.eps)));
  conv1 = register_module("conv1", Conv(in, out, 3, 1, 1));
  if (config.temb_channels > 0) {
    time_emb_proj = register_module("time_emb_proj", torch::nn::Linear(config.temb_channels, out));
  }
  norm2 = register_module(
      "norm2",
      torch::nn::GroupNorm(torch::nn::GroupNormOptions(config.groups, out).eps(config.eps)));
  conv2 = register_module("conv2", Conv(out, out, 3, 1, 1));
  if (in != out) conv_shortcut = register_module("conv_shortcut", Conv(in, out, 1, 1, 0));
}

torch::Tensor ResnetBlock2DImpl::forward(const torch::Tensor& x, const torch::Tensor& temb) {
  const bool fused = kernels::ActiveFusedKernels().group_norm_silu;
  torch::Tensor h = LoraConv2d(*conv1, NormSilu(norm1, x, fused));  // [B, Cout, H, W]
  if (time_emb_proj && temb.defined()) {
    h = h + LoraLinear(*time_emb_proj, at::silu(temb))
                .unsqueeze(-1)
                .unsqueeze(-1);  // + [B, Cout, 1, 1]
  }
  h = LoraConv2d(*conv2, NormSilu(norm2, h, fused));
  torch::Tensor shortcut = conv_shortcut ? LoraConv2d(*conv_shortcut, x) : x;
  torch::Tensor out = shortcut + h;
  if (output_scale_factor_ != 1.0) out = out / output_scale_factor_;
  return out;
}

Downsample2DImpl::Downsample2DImpl(int64_t channels, int64_t padding) : padding_(padding) {
  conv = register_module("conv", Conv(channels, channels, 3, 2, padding));
}

torch::Tensor Downsample2DImpl::forward(const torch::Tensor& x) {
  if (padding_ == 0) {
    // VAE encoder: pad right and bottom by one before the stride-2 conv.
    return conv(at::constant_pad_nd(x, {0, 1, 0, 1}, 0.0));
  }
  return conv(x);
}

Upsample2DImpl::Upsample2DImpl(int64_t channels) {
  conv = register_module("conv", Conv(channels, channels, 3, 1, 1));
}

torch::Tensor Upsample2DImpl::forward(const torch::Tensor& x,
                                      const std::vector<int64_t>& output_size) {
  torch::Tensor h = x;
  // Like diffusers: bfloat16 nearest upsampling is done in float32.
  const bool to_float = h.scalar_type() == at::kBFloat16;
  if (to_float) h = h.to(at::kFloat);
  if (h.size(0) >= 64) h = h.contiguous();
  if (output_size.empty()) {
    h = at::upsample_nearest2d(h, {h.size(2) * 2, h.size(3) * 2}, 2.0, 2.0);
  } else {
    h = at::upsample_nearest2d(h, output_size);
  }
  if (to_float) h = h.to(x.scalar_type());
  return conv(h);
}

}  // namespace dreambooth::diffusion
