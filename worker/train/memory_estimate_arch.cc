#include "worker/train/memory_estimate_arch.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace dreambooth::train::memory_internal {
namespace {

constexpr int64_t kContextTokens = 77;  // CLIP's sequence length

int64_t Count(const std::vector<Layer>& layers) {
  int64_t total = 0;
  for (const Layer& l : layers) total += l.Parameters();
  return total;
}

// Appends layers with names under a common prefix.
class Builder {
 public:
  explicit Builder(LayerList* list) : list_(list) {}
  void Linear(const std::string& name, int64_t in, int64_t out, bool bias = true) {
    list_->layers.push_back({name, in, out, 0, bias});
  }
  void Conv(const std::string& name, int64_t in, int64_t out, int64_t kernel) {
    list_->layers.push_back({name, in, out, kernel, true});
  }
  void Norm(int64_t channels) { list_->other_parameters += 2 * channels; }
  void Other(int64_t parameters) { list_->other_parameters += parameters; }

  // diffusers ResnetBlock2D (time_emb_proj when temb > 0).
  void Resnet(const std::string& p, int64_t in, int64_t out, int64_t temb) {
    Norm(in);
    Conv(p + ".conv1", in, out, 3);
    if (temb > 0) Linear(p + ".time_emb_proj", temb, out);
    Norm(out);
    Conv(p + ".conv2", out, out, 3);
    if (in != out) Conv(p + ".conv_shortcut", in, out, 1);
  }

  // diffusers Transformer2DModel (BasicTransformerBlock with GEGLU feed-forward).
  void Transformer(const std::string& p, int64_t c, int64_t cross, int64_t layers, bool linear) {
    Norm(c);
    if (linear) {
      Linear(p + ".proj_in", c, c);
    } else {
      Conv(p + ".proj_in", c, c, 1);
    }
    for (int64_t t = 0; t < layers; ++t) {
      const std::string b = absl::StrCat(p, ".transformer_blocks.", t);
      Norm(c);
      Attention(b + ".attn1", c, c, /*bias=*/false);
      Norm(c);
      Attention(b + ".attn2", c, cross, /*bias=*/false);
      Norm(c);
      Linear(b + ".ff.net.0.proj", c, 8 * c);
      Linear(b + ".ff.net.2", 4 * c, c);
    }
    if (linear) {
      Linear(p + ".proj_out", c, c);
    } else {
      Conv(p + ".proj_out", c, c, 1);
    }
  }

  void Attention(const std::string& p, int64_t c, int64_t kv_dim, bool bias) {
    Linear(p + ".to_q", c, c, bias);
    Linear(p + ".to_k", kv_dim, c, bias);
    Linear(p + ".to_v", kv_dim, c, bias);
    Linear(p + ".to_out.0", c, c);
  }

 private:
  LayerList* list_;
};

bool IsCrossAttn(const std::string& type) { return type.find("CrossAttn") != std::string::npos; }

bool Matches(const std::string& name, const std::string& target) {
  if (name == target) return true;
  return name.size() > target.size() &&
         absl::string_view(name).substr(name.size() - target.size()) == target &&
         name[name.size() - target.size() - 1] == '.';
}

}  // namespace

int64_t Layer::Parameters() const {
  const int64_t k2 = kernel > 0 ? kernel * kernel : 1;
  return in * out * k2 + (bias ? out : 0);
}

int64_t LayerList::Parameters() const { return Count(layers) + other_parameters; }

LayerList UNetLayers(const diffusion::UNet2DConditionConfig& c) {
  LayerList list;
  Builder b(&list);
  const std::vector<int64_t>& boc = c.block_out_channels;
  const size_t n = boc.size();
  const int64_t temb = c.TimeEmbedDim();
  b.Conv("conv_in", c.in_channels, boc[0], c.conv_in_kernel);
  b.Linear("time_embedding.linear_1", boc[0], temb);
  b.Linear("time_embedding.linear_2", temb, temb);
  for (size_t i = 0; i < n; ++i) {
    const std::string p = absl::StrCat("down_blocks.", i);
    const int64_t in = i == 0 ? boc[0] : boc[i - 1];
    for (int64_t j = 0; j < c.LayersPerBlock(i); ++j) {
      b.Resnet(absl::StrCat(p, ".resnets.", j), j == 0 ? in : boc[i], boc[i], temb);
      if (IsCrossAttn(c.down_block_types[i])) {
        b.Transformer(absl::StrCat(p, ".attentions.", j), boc[i], c.CrossAttentionDim(i),
                      c.TransformerLayers(i), c.use_linear_projection);
      }
    }
    if (i + 1 < n) b.Conv(p + ".downsamplers.0.conv", boc[i], boc[i], 3);
  }
  if (!c.mid_block_type.empty()) {
    b.Resnet("mid_block.resnets.0", boc[n - 1], boc[n - 1], temb);
    b.Transformer("mid_block.attentions.0", boc[n - 1], c.CrossAttentionDim(n - 1),
                  c.TransformerLayers(n - 1), c.use_linear_projection);
    b.Resnet("mid_block.resnets.1", boc[n - 1], boc[n - 1], temb);
  }
  int64_t prev = boc[n - 1];
  for (size_t i = 0; i < n; ++i) {
    const size_t r = n - 1 - i;
    const int64_t out = boc[r];
    const int64_t input = boc[r > 0 ? r - 1 : 0];
    const int64_t layers = c.LayersPerBlock(r) + 1;
    const std::string p = absl::StrCat("up_blocks.", i);
    for (int64_t j = 0; j < layers; ++j) {
      const int64_t skip = j == layers - 1 ? input : out;
      b.Resnet(absl::StrCat(p, ".resnets.", j), (j == 0 ? prev : out) + skip, out, temb);
      if (IsCrossAttn(c.up_block_types[i])) {
        b.Transformer(absl::StrCat(p, ".attentions.", j), out, c.CrossAttentionDim(r),
                      c.TransformerLayers(r), c.use_linear_projection);
      }
    }
    if (i + 1 < n) b.Conv(p + ".upsamplers.0.conv", out, out, 3);
    prev = out;
  }
  b.Norm(boc[0]);
  b.Conv("conv_out", boc[0], c.out_channels, c.conv_out_kernel);
  return list;
}

LayerList VaeLayers(const diffusion::AutoencoderKLConfig& c) {
  LayerList list;
  Builder b(&list);
  const std::vector<int64_t>& boc = c.block_out_channels;
  const size_t n = boc.size();
  const int64_t top = boc[n - 1];
  const int64_t lat = c.latent_channels;
  auto mid = [&](const std::string& p) {
    b.Resnet(p + ".resnets.0", top, top, 0);
    if (c.mid_block_add_attention) {
      b.Norm(top);
      b.Attention(p + ".attentions.0", top, top, /*bias=*/true);
    }
    b.Resnet(p + ".resnets.1", top, top, 0);
  };
  b.Conv("encoder.conv_in", c.in_channels, boc[0], 3);
  for (size_t i = 0; i < n; ++i) {
    const std::string p = absl::StrCat("encoder.down_blocks.", i);
    const int64_t in = i == 0 ? boc[0] : boc[i - 1];
    for (int64_t j = 0; j < c.layers_per_block; ++j) {
      b.Resnet(absl::StrCat(p, ".resnets.", j), j == 0 ? in : boc[i], boc[i], 0);
    }
    if (i + 1 < n) b.Conv(p + ".downsamplers.0.conv", boc[i], boc[i], 3);
  }
  mid("encoder.mid_block");
  b.Norm(top);
  b.Conv("encoder.conv_out", top, 2 * lat, 3);
  if (c.use_quant_conv) b.Conv("quant_conv", 2 * lat, 2 * lat, 1);
  if (c.use_post_quant_conv) b.Conv("post_quant_conv", lat, lat, 1);
  b.Conv("decoder.conv_in", lat, top, 3);
  mid("decoder.mid_block");
  int64_t prev = top;
  for (size_t i = 0; i < n; ++i) {
    const int64_t out = boc[n - 1 - i];
    const std::string p = absl::StrCat("decoder.up_blocks.", i);
    for (int64_t j = 0; j <= c.layers_per_block; ++j) {
      b.Resnet(absl::StrCat(p, ".resnets.", j), j == 0 ? prev : out, out, 0);
    }
    if (i + 1 < n) b.Conv(p + ".upsamplers.0.conv", out, out, 3);
    prev = out;
  }
  b.Norm(boc[0]);
  b.Conv("decoder.conv_out", boc[0], c.out_channels, 3);
  return list;
}

LayerList TextEncoderLayers(const diffusion::ClipTextConfig& c) {
  LayerList list;
  Builder b(&list);
  const int64_t d = c.hidden_size;
  b.Other(c.vocab_size * d + c.max_position_embeddings * d);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = absl::StrCat("text_model.encoder.layers.", i);
    b.Linear(p + ".self_attn.q_proj", d, d);
    b.Linear(p + ".self_attn.k_proj", d, d);
    b.Linear(p + ".self_attn.v_proj", d, d);
    b.Linear(p + ".self_attn.out_proj", d, d);
    b.Norm(d);
    b.Linear(p + ".mlp.fc1", d, c.intermediate_size);
    b.Linear(p + ".mlp.fc2", c.intermediate_size, d);
    b.Norm(d);
  }
  b.Norm(d);
  return list;
}

int64_t LoraParameters(const LayerList& list, int rank, const std::vector<std::string>& targets) {
  int64_t total = 0;
  for (const Layer& l : list.layers) {
    bool hit = false;
    for (const std::string& t : targets) hit = hit || Matches(l.name, t);
    if (!hit) continue;
    const int64_t k2 = l.kernel > 0 ? l.kernel * l.kernel : 1;
    total += static_cast<int64_t>(rank) * (l.in * k2 + l.out);  // down (in -> r), up (r -> out)
  }
  return total;
}

// Element counts per sample. A resnet (in -> out channels) keeps its input, the norm and SiLU
// outputs (3 x in) and the second half's norm input, norm and SiLU outputs (3 x out); a
// transformer layer keeps 29 x C per token (residual stream, norms, q/k/v, attention outputs,
// the GEGLU's 8C projection and 4C gate/product) plus one probability matrix per attention when
// the score matrix is materialized (fused kernels keep a row statistic instead).
UNetActivations CountUNetActivations(const diffusion::UNet2DConditionConfig& c, int64_t h,
                                     int64_t w, bool (*math_attention)(int64_t, int64_t)) {
  UNetActivations a;
  const std::vector<int64_t>& boc = c.block_out_channels;
  const size_t n = boc.size();
  auto note_block = [&](double saved, double input, double work) {
    a.saved += saved;
    a.checkpointed += input;
    a.largest_block = std::max(a.largest_block, saved);
    a.inference = std::max(a.inference, a.skips + work);
  };
  auto resnet = [&](int64_t in, int64_t out, int64_t hw) {
    a.largest_tensor = std::max(a.largest_tensor, static_cast<double>(std::max(in, out) * hw));
    note_block(static_cast<double>(3 * in + 3 * out) * hw, static_cast<double>(in * hw),
               static_cast<double>(in + 2 * out) * hw);
  };
  auto transformer = [&](int64_t ch, int64_t heads, int64_t layers, int64_t hw) {
    const double self = math_attention(hw, hw) ? static_cast<double>(heads) * hw * hw
                                               : static_cast<double>(heads) * hw;
    const double cross = math_attention(hw, kContextTokens)
                             ? static_cast<double>(heads) * hw * kContextTokens
                             : static_cast<double>(heads) * hw;
    a.largest_tensor = std::max({a.largest_tensor, self, static_cast<double>(8 * ch * hw)});
    const double saved =
        5.0 * ch * hw + layers * (29.0 * ch * hw + self + cross + 2.0 * kContextTokens * ch);
    note_block(saved, static_cast<double>(ch * hw), 14.0 * ch * hw);
  };
  auto other = [&](double elements) {  // layers outside checkpointed blocks
    a.saved += elements;
    a.checkpointed += elements;
  };
  int64_t hh = h, ww = w;
  other(static_cast<double>(c.in_channels * hh * ww));
  a.skips += static_cast<double>(boc[0] * hh * ww);  // conv_in output
  for (size_t i = 0; i < n; ++i) {
    const int64_t in = i == 0 ? boc[0] : boc[i - 1];
    for (int64_t j = 0; j < c.LayersPerBlock(i); ++j) {
      resnet(j == 0 ? in : boc[i], boc[i], hh * ww);
      if (IsCrossAttn(c.down_block_types[i])) {
        transformer(boc[i], c.NumHeads(i), c.TransformerLayers(i), hh * ww);
      }
      a.skips += static_cast<double>(boc[i] * hh * ww);
    }
    if (i + 1 < n) {
      other(static_cast<double>(boc[i] * hh * ww));  // the downsampler's input
      hh = (hh + 1) / 2;
      ww = (ww + 1) / 2;
      a.skips += static_cast<double>(boc[i] * hh * ww);
    }
  }
  if (!c.mid_block_type.empty()) {
    resnet(boc[n - 1], boc[n - 1], hh * ww);
    transformer(boc[n - 1], c.NumHeads(n - 1), c.TransformerLayers(n - 1), hh * ww);
    resnet(boc[n - 1], boc[n - 1], hh * ww);
  }
  int64_t prev = boc[n - 1];
  for (size_t i = 0; i < n; ++i) {
    const size_t r = n - 1 - i;
    const int64_t out = boc[r];
    const int64_t input = boc[r > 0 ? r - 1 : 0];
    const int64_t layers = c.LayersPerBlock(r) + 1;
    for (int64_t j = 0; j < layers; ++j) {
      const int64_t skip = j == layers - 1 ? input : out;
      resnet((j == 0 ? prev : out) + skip, out, hh * ww);
      if (IsCrossAttn(c.up_block_types[i])) {
        transformer(out, c.NumHeads(r), c.TransformerLayers(r), hh * ww);
      }
    }
    if (i + 1 < n) {
      hh *= 2;
      ww *= 2;
      other(static_cast<double>(out * hh * ww));  // the upsampled input of the conv
    }
    prev = out;
  }
  other(3.0 * boc[0] * h * w);  // conv_norm_out, SiLU, conv_out input
  return a;
}

double VaeEncodeElements(const diffusion::AutoencoderKLConfig& c, int64_t h, int64_t w) {
  double peak = 0;
  int64_t hh = h, ww = w;
  const size_t n = c.block_out_channels.size();
  for (size_t i = 0; i < n; ++i) {
    const int64_t ch = c.block_out_channels[i];
    const int64_t in = i == 0 ? ch : c.block_out_channels[i - 1];
    peak = std::max(peak, static_cast<double>(2 * in + 2 * ch) * hh * ww);
    if (i + 1 < n) {
      hh = (hh + 1) / 2;
      ww = (ww + 1) / 2;
    }
  }
  return peak;
}

double VaeDecodeElements(const diffusion::AutoencoderKLConfig& c, int64_t h, int64_t w) {
  const size_t n = c.block_out_channels.size();
  double peak = 0;
  int64_t prev = c.block_out_channels[n - 1];
  for (size_t i = 0; i < n; ++i) {
    const int64_t out = c.block_out_channels[n - 1 - i];
    const int64_t scale = int64_t{1} << (n - 1 - i);  // this block's resolution is h / scale
    const int64_t hw = (h / scale) * (w / scale);
    peak = std::max(peak, static_cast<double>(2 * prev + 2 * out) * hw);
    if (i + 1 < n) {  // upsampled copy and its conv output at the next resolution
      peak = std::max(peak, 3.0 * out * hw * 4);
    }
    prev = out;
  }
  return peak;
}

double TextEncoderSavedElements(const diffusion::ClipTextConfig& c) {
  const double tokens = kContextTokens;
  const double per_layer = tokens * (10.0 * c.hidden_size + 3.0 * c.intermediate_size) +
                           2.0 * c.num_attention_heads * tokens * tokens;
  return per_layer * c.num_hidden_layers;
}

}  // namespace dreambooth::train::memory_internal
