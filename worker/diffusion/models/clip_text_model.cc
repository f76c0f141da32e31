#include "worker/diffusion/models/clip_text_model.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <limits>

#include "worker/diffusion/models/lora.h"

namespace dreambooth::diffusion {

CLIPTextEmbeddingsImpl::CLIPTextEmbeddingsImpl(const ClipTextConfig& config) {
  token_embedding = register_module("token_embedding",
                                    torch::nn::Embedding(config.vocab_size, config.hidden_size));
  position_embedding =
      register_module("position_embedding",
                      torch::nn::Embedding(config.max_position_embeddings, config.hidden_size));
}

torch::Tensor CLIPTextEmbeddingsImpl::forward(const torch::Tensor& input_ids) {
  const int64_t length = input_ids.size(1);
  torch::Tensor positions =
      at::arange(length, input_ids.options().dtype(at::kLong)).unsqueeze(0);  // [1, L]
  return token_embedding(input_ids) + position_embedding(positions);          // [B, L, D]
}

CLIPAttentionImpl::CLIPAttentionImpl(const ClipTextConfig& config)
    : heads_(config.num_attention_heads) {
  const int64_t d = config.hidden_size;
  q_proj = register_module("q_proj", torch::nn::Linear(d, d));
  k_proj = register_module("k_proj", torch::nn::Linear(d, d));
  v_proj = register_module("v_proj", torch::nn::Linear(d, d));
  out_proj = register_module("out_proj", torch::nn::Linear(d, d));
}

torch::Tensor CLIPAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask) {
  const int64_t b = x.size(0), l = x.size(1), d = x.size(2), hd = d / heads_;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  // Same order as transformers: q is scaled before the product.
  torch::Tensor q =
      (LoraLinear(*q_proj, x) * scale).view({b, l, heads_, hd}).transpose(1, 2);  // [B,H,L,hd]
  torch::Tensor k = LoraLinear(*k_proj, x).view({b, l, heads_, hd}).transpose(1, 2);
  torch::Tensor v = LoraLinear(*v_proj, x).view({b, l, heads_, hd}).transpose(1, 2);
  torch::Tensor scores = at::matmul(q, k.transpose(-1, -2));  // [B, H, L, L]
  if (mask.defined()) scores = scores + mask;
  torch::Tensor probs = at::softmax(scores, -1);
  torch::Tensor o = at::matmul(probs, v).transpose(1, 2).reshape({b, l, d});  // [B, L, D]
  return LoraLinear(*out_proj, o);
}

CLIPMLPImpl::CLIPMLPImpl(const ClipTextConfig& config) : act_(config.hidden_act) {
  fc1 = register_module("fc1", torch::nn::Linear(config.hidden_size, config.intermediate_size));
  fc2 = register_module("fc2", torch::nn::Linear(config.intermediate_size, config.hidden_size));
}

torch::Tensor CLIPMLPImpl::forward(const torch::Tensor& x) {
  torch::Tensor h = LoraLinear(*fc1, x);
  if (act_ == "quick_gelu") {
    h = h * at::sigmoid(1.702 * h);
  } else if (act_ == "gelu_new") {
    h = at::gelu(h, "tanh");
  } else {
    h = at::gelu(h);
  }
  return LoraLinear(*fc2, h);
}

CLIPEncoderLayerImpl::CLIPEncoderLayerImpl(const ClipTextConfig& config) {
  const auto ln = [&] {
    return torch::nn::LayerNorm(
        torch::nn::LayerNormOptions({config.hidden_size}).eps(config.layer_norm_eps));
  };
  self_attn = register_module("self_attn", CLIPAttention(config));
  layer_norm1 = register_module("layer_norm1", ln());
  mlp = register_module("mlp", CLIPMLP(config));
  layer_norm2 = register_module("layer_norm2", ln());
}

torch::Tensor CLIPEncoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& mask) {
  torch::Tensor h = x + self_attn(layer_norm1(x), mask);
  return h + mlp(layer_norm2(h));
}

CLIPEncoderImpl::CLIPEncoderImpl(const ClipTextConfig& config) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < config.num_hidden_layers; ++i)
    layers->push_back(CLIPEncoderLayer(config));
}

CLIPTextTransformerImpl::CLIPTextTransformerImpl(const ClipTextConfig& config) : config_(config) {
  embeddings = register_module("embeddings", CLIPTextEmbeddings(config));
  encoder = register_module("encoder", CLIPEncoder(config));
  final_layer_norm = register_module(
      "final_layer_norm",
      torch::nn::LayerNorm(
          torch::nn::LayerNormOptions({config.hidden_size}).eps(config.layer_norm_eps)));
}

ClipTextOutput CLIPTextTransformerImpl::forward(const torch::Tensor& input_ids, int64_t clip_skip) {
  TORCH_CHECK(input_ids.dim() == 2, "input_ids must be [B, L], got ", input_ids.sizes());
  TORCH_CHECK(input_ids.size(1) <= config_.max_position_embeddings, "input_ids has ",
              input_ids.size(1), " tokens, more than max_position_embeddings ",
              config_.max_position_embeddings);
  const int64_t num_layers = static_cast<int64_t>(encoder->layers->size());
  TORCH_CHECK(clip_skip >= 0 && clip_skip < num_layers, "clip_skip must be in [0, ", num_layers,
              "), got ", clip_skip);
  const torch::Tensor ids = input_ids.to(at::kLong);
  ClipTextOutput out;
  torch::Tensor h = embeddings(ids);  // [B, L, D]
  const int64_t l = ids.size(1);
  // Causal additive mask: the dtype's lowest value above the diagonal (like transformers).
  const double lowest = h.scalar_type() == at::kHalf       ? -65504.0
                        : h.scalar_type() == at::kBFloat16 ? -3.3895313892515355e38
                                                           : std::numeric_limits<float>::lowest();
  torch::Tensor mask = at::full({l, l}, lowest, h.options()).triu_(1);  // [L, L]
  out.hidden_states.push_back(h);
  for (int64_t i = 0; i < num_layers - clip_skip; ++i) {
    h = encoder->layers[i]->as<CLIPEncoderLayerImpl>()->forward(h, mask);
    out.hidden_states.push_back(h);
  }
  out.last_hidden_state = final_layer_norm(h);  // [B, L, D]
  torch::Tensor positions;
  if (config_.eos_token_id == 2) {
    positions = ids.argmax(-1);  // legacy rule: largest id (EOS in real prompts)
  } else {
    positions = ids.eq(config_.eos_token_id).to(at::kInt).argmax(-1);
  }
  out.pooler_output =
      out.last_hidden_state.index({at::arange(ids.size(0), ids.options()), positions});  // [B, D]
  return out;
}

CLIPTextModelImpl::CLIPTextModelImpl(const ClipTextConfig& config) : config_(config) {
  const absl::Status valid = config.Validate();
  TORCH_CHECK(valid.ok(), std::string(valid.message()));
  text_model = register_module("text_model", CLIPTextTransformer(config));
}

ClipTextOutput CLIPTextModelImpl::forward(const torch::Tensor& input_ids, int64_t clip_skip) {
  return text_model->forward(input_ids, clip_skip);
}

}  // namespace dreambooth::diffusion
