#include "worker/diffusion/models/unet_2d_blocks.h"

#include <ATen/ATen.h>

#include "worker/diffusion/models/gradient_checkpointing.h"

namespace dreambooth::diffusion {
namespace {

ResnetBlock2D MakeResnet(const UNetBlockConfig& c, int64_t in, int64_t out) {
  ResnetBlock2DConfig r;
  r.in_channels = in;
  r.out_channels = out;
  r.temb_channels = c.temb_channels;
  r.groups = c.groups;
  r.eps = c.eps;
  r.output_scale_factor = c.output_scale_factor;
  return ResnetBlock2D(r);
}

Transformer2DModel MakeTransformer(const UNetBlockConfig& c, int64_t channels) {
  Transformer2DConfig t;
  t.heads = c.heads;
  t.dim_head = channels / c.heads;
  t.in_channels = channels;
  t.num_layers = c.transformer_layers;
  t.cross_attention_dim = c.cross_attention_dim;
  t.norm_num_groups = c.groups;
  t.use_linear_projection = c.use_linear_projection;
  t.upcast_attention = c.upcast_attention;
  t.dropout = c.dropout;
  return Transformer2DModel(t);
}

}  // namespace

void CheckpointingBlock::set_gradient_checkpointing(bool enabled) {
  gradient_checkpointing_ = enabled;
}

torch::Tensor CheckpointingBlock::RunResnet(ResnetBlock2D& resnet, const torch::Tensor& x,
                                            const torch::Tensor& temb) {
  if (gradient_checkpointing_ && is_training()) {
    std::shared_ptr<ResnetBlock2DImpl> r = resnet.ptr();
    return Checkpoint([r](const at::Tensor& a, const at::Tensor& b) { return r->forward(a, b); }, x,
                      temb);
  }
  return resnet->forward(x, temb);
}

torch::Tensor CheckpointingBlock::RunTransformer(Transformer2DModel& transformer,
                                                 const torch::Tensor& x,
                                                 const torch::Tensor& context) {
  if (gradient_checkpointing_ && is_training()) {
    std::shared_ptr<Transformer2DModelImpl> t = transformer.ptr();
    return Checkpoint([t](const at::Tensor& a, const at::Tensor& b) { return t->forward(a, b); }, x,
                      context);
  }
  return transformer->forward(x, context);
}

DownBlock2DImpl::DownBlock2DImpl(const UNetBlockConfig& c) {
  resnets = register_module("resnets", torch::nn::ModuleList());
  attentions = register_module("attentions", torch::nn::ModuleList());
  downsamplers = register_module("downsamplers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_layers; ++i) {
    resnets->push_back(MakeResnet(c, i == 0 ? c.in_channels : c.out_channels, c.out_channels));
    if (c.has_cross_attention) attentions->push_back(MakeTransformer(c, c.out_channels));
  }
  if (c.add_sample) downsamplers->push_back(Downsample2D(c.out_channels, c.downsample_padding));
}

torch::Tensor DownBlock2DImpl::forward(const torch::Tensor& x, const torch::Tensor& temb,
                                       const torch::Tensor& context,
                                       std::vector<torch::Tensor>* skips) {
  torch::Tensor h = x;
  for (size_t i = 0; i < resnets->size(); ++i) {
    ResnetBlock2D resnet(resnets->ptr<ResnetBlock2DImpl>(i));
    h = RunResnet(resnet, h, temb);  // [B, Cout, H, W]
    if (!attentions->is_empty()) {
      Transformer2DModel attention(attentions->ptr<Transformer2DModelImpl>(i));
      h = RunTransformer(attention, h, context);
    }
    skips->push_back(h);
  }
  if (!downsamplers->is_empty()) {
    h = downsamplers->ptr<Downsample2DImpl>(0)->forward(h);  // [B, Cout, H/2, W/2]
    skips->push_back(h);
  }
  return h;
}

UNetMidBlock2DCrossAttnImpl::UNetMidBlock2DCrossAttnImpl(const UNetBlockConfig& c) {
  attentions = register_module("attentions", torch::nn::ModuleList());
  resnets = register_module("resnets", torch::nn::ModuleList());
  resnets->push_back(MakeResnet(c, c.in_channels, c.in_channels));
  for (int64_t i = 0; i < c.num_layers; ++i) {
    attentions->push_back(MakeTransformer(c, c.in_channels));
    resnets->push_back(MakeResnet(c, c.in_channels, c.in_channels));
  }
}

torch::Tensor UNetMidBlock2DCrossAttnImpl::forward(const torch::Tensor& x,
                                                   const torch::Tensor& temb,
                                                   const torch::Tensor& context) {
  ResnetBlock2D first(resnets->ptr<ResnetBlock2DImpl>(0));
  torch::Tensor h = RunResnet(first, x, temb);
  for (size_t i = 0; i < attentions->size(); ++i) {
    Transformer2DModel attention(attentions->ptr<Transformer2DModelImpl>(i));
    h = RunTransformer(attention, h, context);
    ResnetBlock2D resnet(resnets->ptr<ResnetBlock2DImpl>(i + 1));
    h = RunResnet(resnet, h, temb);
  }
  return h;
}

UpBlock2DImpl::UpBlock2DImpl(const UNetBlockConfig& c) {
  resnets = register_module("resnets", torch::nn::ModuleList());
  attentions = register_module("attentions", torch::nn::ModuleList());
  upsamplers = register_module("upsamplers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const int64_t skip_channels = i == c.num_layers - 1 ? c.in_channels : c.out_channels;
    const int64_t resnet_in = i == 0 ? c.prev_output_channels : c.out_channels;
    resnets->push_back(MakeResnet(c, resnet_in + skip_channels, c.out_channels));
    if (c.has_cross_attention) attentions->push_back(MakeTransformer(c, c.out_channels));
  }
  if (c.add_sample) upsamplers->push_back(Upsample2D(c.out_channels));
}

torch::Tensor UpBlock2DImpl::forward(const torch::Tensor& x, const torch::Tensor& temb,
                                     const torch::Tensor& context,
                                     std::vector<torch::Tensor>* skips,
                                     const std::vector<int64_t>& upsample_size) {
  torch::Tensor h = x;
  for (size_t i = 0; i < resnets->size(); ++i) {
    TORCH_CHECK(!skips->empty(), "UNet up block ran out of skip connections");
    torch::Tensor skip = skips->back();
    skips->pop_back();
    h = at::cat({h, skip}, 1);  // [B, C + Cskip, H, W]
    ResnetBlock2D resnet(resnets->ptr<ResnetBlock2DImpl>(i));
    h = RunResnet(resnet, h, temb);
    if (!attentions->is_empty()) {
      Transformer2DModel attention(attentions->ptr<Transformer2DModelImpl>(i));
      h = RunTransformer(attention, h, context);
    }
  }
  if (!upsamplers->is_empty()) h = upsamplers->ptr<Upsample2DImpl>(0)->forward(h, upsample_size);
  return h;
}

}  // namespace dreambooth::diffusion
