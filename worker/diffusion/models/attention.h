// Multi-head attention as used by the UNet and the VAE (diffusers' `Attention`), and the
// scaled-dot-product kernels behind it.
#ifndef WORKER_DIFFUSION_ATTENTION_H_
#define WORKER_DIFFUSION_ATTENTION_H_

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <optional>
#include <string>

namespace dreambooth::diffusion {

// How softmax(q k^T * scale) v is computed. All backends give the same result up to float
// rounding; they differ in speed and peak memory.
enum class AttentionBackend {
  kAuto,     // kSdpa, except kMath for CPU training below 512x512 scores per head
  kSdpa,     // at::scaled_dot_product_attention (flash / memory-efficient on CUDA, flash on CPU)
  kMath,     // one [B*H, Nq, Nk] score matrix (diffusers' classic AttnProcessor)
  kChunked,  // query chunks of `query_chunk_size` rows, so each score block stays in cache; when
             // training, the memory-efficient kernel (memory_efficient_attention.h) that keeps
             // no probabilities for backward
  kSliced,   // diffusers' SlicedAttnProcessor: `slice_size` (batch*head) slices at a time
};

// Parses "auto", "sdpa", "math", "chunked", "sliced"; nullopt for anything else.
std::optional<AttentionBackend> ParseAttentionBackend(const std::string& name);
const char* AttentionBackendName(AttentionBackend backend);

// Attention settings shared by every attention layer of a model. Plain value type.
struct AttentionOptions {
  AttentionBackend backend = AttentionBackend::kAuto;
  int64_t query_chunk_size = 256;  // rows of the query per block for kChunked
  int64_t slice_size = 1;          // (batch*head) slices per step for kSliced
};

// softmax(q k^T * scale) v for q [B, H, Nq, D], k/v [B, H, Nk, D] -> [B, H, Nq, D].
// `mask` (optional) is added to the scores and must broadcast to [B, H, Nq, Nk].
// `upcast` computes scores and softmax in float32 (diffusers' upcast_attention/upcast_softmax)
// for half-precision inputs (kSdpa accumulates in float32 itself). Differentiable with every
// backend.
torch::Tensor ScaledDotProductAttention(const torch::Tensor& q, const torch::Tensor& k,
                                        const torch::Tensor& v, double scale,
                                        const AttentionOptions& options, bool upcast = false,
                                        const torch::Tensor& mask = {});

// While an instance is alive on this thread, the backends pick their kernels as if autograd were
// recording, even with grad mode off. A gradient-checkpointed block's no-grad forward runs under
// it, so that forward and its recomputation in backward take the same path and give the same
// values (the no-grad chunked kernel rounds differently). Not copyable; nests.
class ScopedTrainingAttentionPath {
 public:
  ScopedTrainingAttentionPath();
  ~ScopedTrainingAttentionPath();
  ScopedTrainingAttentionPath(const ScopedTrainingAttentionPath&) = delete;
  ScopedTrainingAttentionPath& operator=(const ScopedTrainingAttentionPath&) = delete;

 private:
  bool previous_;
};

// Constructor arguments of AttentionImpl (subset of diffusers' Attention.__init__).
struct AttentionConfig {
  int64_t query_dim = 0;
  int64_t cross_attention_dim = 0;  // 0: self-attention (same as query_dim)
  int64_t heads = 8;
  int64_t dim_head = 64;
  bool bias = false;     // bias of to_q / to_k / to_v
  bool out_bias = true;  // bias of to_out.0
  bool upcast_attention = false;
  int64_t norm_num_groups = 0;  // > 0: a `group_norm` on the input (VAE mid-block attention)
  double eps = 1e-5;            // of group_norm
  bool residual_connection = false;
  double rescale_output_factor = 1.0;
};

// diffusers.models.attention_processor.Attention with the default processor. Parameters:
// to_q, to_k, to_v, to_out.0 and, when configured, group_norm. forward accepts
// [B, N, C] or [B, C, H, W] (flattened to [B, HW, C] and restored).
// Not thread-safe for concurrent mutation; concurrent forward calls are safe.
class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const AttentionConfig& config);

  // hidden_states [B, N, C] or [B, C, H, W]; context [B, M, cross_dim] or undefined for
  // self-attention. Returns a tensor shaped like hidden_states.
  torch::Tensor forward(const torch::Tensor& hidden_states, const torch::Tensor& context = {});

  void set_attention_options(const AttentionOptions& options) { options_ = options; }
  const AttentionOptions& attention_options() const { return options_; }
  const AttentionConfig& config() const { return config_; }

  torch::nn::Linear to_q{nullptr}, to_k{nullptr}, to_v{nullptr};
  torch::nn::ModuleList to_out{nullptr};  // [Linear, Dropout]
  torch::nn::GroupNorm group_norm{nullptr};

 private:
  AttentionConfig config_;
  AttentionOptions options_;
};
TORCH_MODULE(Attention);

// Applies `options` to every AttentionImpl inside `module` (including itself).
void SetAttentionOptions(torch::nn::Module& module, const AttentionOptions& options);

}  // namespace dreambooth::diffusion

#endif  // WORKER_DIFFUSION_ATTENTION_H_
