#include "worker/diffusion/models/autoencoder_kl.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

namespace dreambooth::diffusion {
namespace {

constexpr double kVaeEps = 1e-6;

ResnetBlock2D VaeResnet(int64_t in, int64_t out, int64_t groups) {
  ResnetBlock2DConfig c;
  c.in_channels = in;
  c.out_channels = out;
  c.groups = groups;
  c.eps = kVaeEps;
  return ResnetBlock2D(c);
}

torch::nn::Conv2d Conv3(int64_t in, int64_t out) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1));
}

// diffusers DownEncoderBlock2D: resnets then an optional VAE-style downsampler.
class VaeDownBlockImpl : public torch::nn::Module {
 public:
  VaeDownBlockImpl(int64_t in, int64_t out, int64_t layers, int64_t groups, bool downsample) {
    resnets = register_module("resnets", torch::nn::ModuleList());
    downsamplers = register_module("downsamplers", torch::nn::ModuleList());
    for (int64_t i = 0; i < layers; ++i)
      resnets->push_back(VaeResnet(i == 0 ? in : out, out, groups));
    if (downsample) downsamplers->push_back(Downsample2D(out, /*padding=*/0));
  }
  torch::Tensor forward(torch::Tensor x) {
    for (const auto& r : *resnets) x = r->as<ResnetBlock2DImpl>()->forward(x);
    if (!downsamplers->is_empty()) x = downsamplers->ptr<Downsample2DImpl>(0)->forward(x);
    return x;
  }
  torch::nn::ModuleList resnets{nullptr}, downsamplers{nullptr};
};
TORCH_MODULE(VaeDownBlock);

// diffusers UpDecoderBlock2D: resnets then an optional x2 upsampler.
class VaeUpBlockImpl : public torch::nn::Module {
 public:
  VaeUpBlockImpl(int64_t in, int64_t out, int64_t layers, int64_t groups, bool upsample) {
    resnets = register_module("resnets", torch::nn::ModuleList());
    upsamplers = register_module("upsamplers", torch::nn::ModuleList());
    for (int64_t i = 0; i < layers; ++i)
      resnets->push_back(VaeResnet(i == 0 ? in : out, out, groups));
    if (upsample) upsamplers->push_back(Upsample2D(out));
  }
  torch::Tensor forward(torch::Tensor x) {
    for (const auto& r : *resnets) x = r->as<ResnetBlock2DImpl>()->forward(x);
    if (!upsamplers->is_empty()) x = upsamplers->ptr<Upsample2DImpl>(0)->forward(x);
    return x;
  }
  torch::nn::ModuleList resnets{nullptr}, upsamplers{nullptr};
};
TORCH_MODULE(VaeUpBlock);

}  // namespace

torch::Tensor LatentDistribution::Std() const { return at::exp(0.5 * logvar); }

torch::Tensor LatentDistribution::Sample(std::optional<at::Generator> generator) const {
  // Like diffusers' randn_tensor: noise drawn on CPU in float32 when a CPU generator is given.
  torch::Tensor noise;
  if (generator.has_value()) {
    noise = at::randn(mean.sizes(), *generator,
                      mean.options().device(generator->device()).dtype(at::kFloat))
                .to(mean.device(), mean.scalar_type());
  } else {
    noise = at::randn(mean.sizes(), mean.options());
  }
  return mean + Std() * noise;
}

UNetMidBlock2DImpl::UNetMidBlock2DImpl(int64_t channels, int64_t groups, bool add_attention) {
  attentions = register_module("attentions", torch::nn::ModuleList());
  resnets = register_module("resnets", torch::nn::ModuleList());
  resnets->push_back(VaeResnet(channels, channels, groups));
  if (add_attention) {
    AttentionConfig a;
    a.query_dim = channels;
    a.heads = 1;
    a.dim_head = channels;
    a.bias = true;
    a.out_bias = true;
    a.upcast_attention = true;  // upcast_softmax upstream
    a.norm_num_groups = groups;
    a.eps = kVaeEps;
    a.residual_connection = true;
    attentions->push_back(Attention(a));
  }
  resnets->push_back(VaeResnet(channels, channels, groups));
}

torch::Tensor UNetMidBlock2DImpl::forward(const torch::Tensor& x) {
  torch::Tensor h = resnets->ptr<ResnetBlock2DImpl>(0)->forward(x);
  if (!attentions->is_empty()) h = attentions->ptr<AttentionImpl>(0)->forward(h);
  return resnets->ptr<ResnetBlock2DImpl>(1)->forward(h);
}

EncoderImpl::EncoderImpl(const AutoencoderKLConfig& config) {
  const auto& boc = config.block_out_channels;
  const size_t n = boc.size();
  conv_in = register_module("conv_in", Conv3(config.in_channels, boc[0]));
  down_blocks = register_module("down_blocks", torch::nn::ModuleList());
  int64_t out = boc[0];
  for (size_t i = 0; i < n; ++i) {
    const int64_t in = out;
    out = boc[i];
    down_blocks->push_back(
        VaeDownBlock(in, out, config.layers_per_block, config.norm_num_groups, i + 1 < n));
  }
  mid_block = register_module("mid_block", UNetMidBlock2D(boc[n - 1], config.norm_num_groups,
                                                          config.mid_block_add_attention));
  conv_norm_out = register_module(
      "conv_norm_out",
      torch::nn::GroupNorm(
          torch::nn::GroupNormOptions(config.norm_num_groups, boc[n - 1]).eps(kVaeEps)));
  conv_out = register_module("conv_out", Conv3(boc[n - 1], 2 * config.latent_channels));
}

torch::Tensor EncoderImpl::forward(const torch::Tensor& x) {
  torch::Tensor h = conv_in(x);  // [B, C0, H, W]
  for (const auto& block : *down_blocks) h = block->as<VaeDownBlockImpl>()->forward(h);
  h = mid_block(h);                             // [B, Cn, h, w]
  return conv_out(at::silu(conv_norm_out(h)));  // [B, 2*latent, h, w]
}

DecoderImpl::DecoderImpl(const AutoencoderKLConfig& config) {
  const auto& boc = config.block_out_channels;
  const size_t n = boc.size();
  conv_in = register_module("conv_in", Conv3(config.latent_channels, boc[n - 1]));
  mid_block = register_module("mid_block", UNetMidBlock2D(boc[n - 1], config.norm_num_groups,
                                                          config.mid_block_add_attention));
  up_blocks = register_module("up_blocks", torch::nn::ModuleList());
  int64_t out = boc[n - 1];
  for (size_t i = 0; i < n; ++i) {
    const int64_t prev = out;
    out = boc[n - 1 - i];
    up_blocks->push_back(
        VaeUpBlock(prev, out, config.layers_per_block + 1, config.norm_num_groups, i + 1 < n));
  }
  conv_norm_out = register_module(
      "conv_norm_out",
      torch::nn::GroupNorm(
          torch::nn::GroupNormOptions(config.norm_num_groups, boc[0]).eps(kVaeEps)));
  conv_out = register_module("conv_out", Conv3(boc[0], config.out_channels));
}

torch::Tensor DecoderImpl::forward(const torch::Tensor& z) {
  torch::Tensor h = conv_in(z);  // [B, Cn, h, w]
  h = mid_block(h);
  for (const auto& block : *up_blocks) h = block->as<VaeUpBlockImpl>()->forward(h);
  return conv_out(at::silu(conv_norm_out(h)));  // [B, out, H, W]
}

AutoencoderKLImpl::AutoencoderKLImpl(const AutoencoderKLConfig& config) : config_(config) {
  const absl::Status valid = config.Validate();
  TORCH_CHECK(valid.ok(), std::string(valid.message()));
  encoder = register_module("encoder", Encoder(config));
  decoder = register_module("decoder", Decoder(config));
  const int64_t l = config.latent_channels;
  if (config.use_quant_conv) {
    quant_conv =
        register_module("quant_conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(2 * l, 2 * l, 1)));
  }
  if (config.use_post_quant_conv) {
    post_quant_conv =
        register_module("post_quant_conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(l, l, 1)));
  }
}

LatentDistribution AutoencoderKLImpl::Encode(const torch::Tensor& image) {
  TORCH_CHECK(image.dim() == 4 && image.size(1) == config_.in_channels, "VAE input must be [B, ",
              config_.in_channels, ", H, W], got ", image.sizes());
  torch::Tensor moments = encoder(image);  // [B, 2*latent, h, w]
  if (quant_conv) moments = quant_conv(moments);
  std::vector<torch::Tensor> parts = moments.chunk(2, 1);
  return LatentDistribution{parts[0], at::clamp(parts[1], -30.0, 20.0)};
}

torch::Tensor AutoencoderKLImpl::Decode(const torch::Tensor& latents) {
  TORCH_CHECK(latents.dim() == 4 && latents.size(1) == config_.latent_channels,
              "VAE latents must be [B, ", config_.latent_channels, ", h, w], got ",
              latents.sizes());
  torch::Tensor z = post_quant_conv ? post_quant_conv(latents) : latents;
  return decoder(z);
}

int64_t AutoencoderKLImpl::downscale_factor() const {
  return int64_t{1} << (config_.block_out_channels.size() - 1);
}

}  // namespace dreambooth::diffusion
