// CLIPTextModel: the text encoder of Stable Diffusion (transformers' CLIP text tower).
#ifndef WORKER_DIFFUSION_CLIP_TEXT_MODEL_H_
#define WORKER_DIFFUSION_CLIP_TEXT_MODEL_H_

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <vector>

#include "worker/diffusion/models/clip_text_config.h"

namespace dreambooth::diffusion {

// transformers CLIPTextEmbeddings: token_embedding + position_embedding.
class CLIPTextEmbeddingsImpl : public torch::nn::Module {
 public:
  explicit CLIPTextEmbeddingsImpl(const ClipTextConfig& config);
  torch::Tensor forward(const torch::Tensor& input_ids);  // [B, L] -> [B, L, D]

  torch::nn::Embedding token_embedding{nullptr};
  torch::nn::Embedding position_embedding{nullptr};
};
TORCH_MODULE(CLIPTextEmbeddings);

// transformers CLIPAttention (q/k/v/out projections with bias).
class CLIPAttentionImpl : public torch::nn::Module {
 public:
  explicit CLIPAttentionImpl(const ClipTextConfig& config);
  // x [B, L, D]; mask additive, broadcastable to [B, H, L, L].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask);

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};

 private:
  int64_t heads_;
};
TORCH_MODULE(CLIPAttention);

// transformers CLIPMLP: fc1 -> activation -> fc2.
class CLIPMLPImpl : public torch::nn::Module {
 public:
  explicit CLIPMLPImpl(const ClipTextConfig& config);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Linear fc1{nullptr}, fc2{nullptr};

 private:
  std::string act_;
};
TORCH_MODULE(CLIPMLP);

// transformers CLIPEncoderLayer (pre-LayerNorm).
class CLIPEncoderLayerImpl : public torch::nn::Module {
 public:
  explicit CLIPEncoderLayerImpl(const ClipTextConfig& config);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask);

  CLIPAttention self_attn{nullptr};
  torch::nn::LayerNorm layer_norm1{nullptr};
  CLIPMLP mlp{nullptr};
  torch::nn::LayerNorm layer_norm2{nullptr};
};
TORCH_MODULE(CLIPEncoderLayer);

// transformers CLIPEncoder: the stack of layers.
class CLIPEncoderImpl : public torch::nn::Module {
 public:
  explicit CLIPEncoderImpl(const ClipTextConfig& config);
  torch::nn::ModuleList layers{nullptr};
};
TORCH_MODULE(CLIPEncoder);

// Outputs of CLIPTextModel::forward.
struct ClipTextOutput {
  // final_layer_norm(hidden_states.back()): the Stable Diffusion prompt embeddings [B, L, D].
  torch::Tensor last_hidden_state;
  // last_hidden_state at the EOS position of each row [B, D] (see forward for the rule).
  torch::Tensor pooler_output;
  // Embedding output, then the output of each evaluated layer (not layer-normed) [B, L, D].
  std::vector<torch::Tensor> hidden_states;
};

// transformers CLIPTextTransformer: embeddings, encoder, final_layer_norm.
class CLIPTextTransformerImpl : public torch::nn::Module {
 public:
  explicit CLIPTextTransformerImpl(const ClipTextConfig& config);
  ClipTextOutput forward(const torch::Tensor& input_ids, int64_t clip_skip);

  CLIPTextEmbeddings embeddings{nullptr};
  CLIPEncoder encoder{nullptr};
  torch::nn::LayerNorm final_layer_norm{nullptr};

 private:
  ClipTextConfig config_;
};
TORCH_MODULE(CLIPTextTransformer);

// transformers.CLIPTextModel (v4.33). Parameter names equal transformers'
// (`text_model.embeddings.token_embedding.weight`, ...). Attention is causal, with no padding
// mask (as the SD pipelines call it). Concurrent forward calls are safe; mutation is not.
class CLIPTextModelImpl : public torch::nn::Module {
 public:
  // `config` must pass Validate(); throws c10::Error otherwise.
  explicit CLIPTextModelImpl(const ClipTextConfig& config);

  // input_ids [B, L] int64 with L <= max_position_embeddings.
  // clip_skip (diffusers' pipeline option): 0 uses the last layer; k > 0 stops after layer
  // L-k and applies final_layer_norm to that output (hidden_states then has L-k+1 entries).
  // Pooling: with eos_token_id == 2 (legacy SD configs) the position of the largest id in each
  // row (first occurrence); otherwise the first position whose id equals eos_token_id.
  ClipTextOutput forward(const torch::Tensor& input_ids, int64_t clip_skip = 0);

  const ClipTextConfig& config() const { return config_; }

  CLIPTextTransformer text_model{nullptr};

 private:
  ClipTextConfig config_;
};
TORCH_MODULE(CLIPTextModel);

}  // namespace dreambooth::diffusion

#endif  // WORKER_DIFFUSION_CLIP_TEXT_MODEL_H_
