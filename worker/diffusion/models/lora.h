// Low-rank adapters (LoRA) on the Linear and Conv2d layers of a model, as peft's LoraLayer
// computes them: y = base(x) + multiplier * (alpha / rank) * up(down(dropout(x))).
//
// Adapters never change the model they apply to: a LoraAdapterSet maps layers (by module
// identity) to adapter weights, and is active only on the thread that holds a ScopedLora for it.
// The layers that can carry an adapter call LoraLinear / LoraConv2d instead of their own
// forward. So one cached base model serves requests with different adapters (or none) at once.
#ifndef WORKER_DIFFUSION_MODELS_LORA_H_
#define WORKER_DIFFUSION_MODELS_LORA_H_

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/diffusion/io/safetensors.h"

namespace dreambooth::diffusion {

struct StableDiffusion;

// Weights of one adapter. `down` (peft lora_A) is [r, in] for a Linear and [r, in, kh, kw] for a
// Conv2d (same kernel, stride and padding as the base conv); `up` (lora_B) is [out, r] or
// [out, r, 1, 1].
struct LoraWeights {
  at::Tensor down;
  at::Tensor up;
  double alpha = 0;  // scale = alpha / rank
  int64_t rank() const { return down.size(0); }
  double scale() const { return alpha / static_cast<double>(rank()); }
};

// Which layers of a model get adapters: peft's rule, a layer matches a target when its module
// path equals it or ends with "." + target ("to_q", "to_out.0", "ff.net.2", "conv1").
struct LoraTargets {
  std::vector<std::string> unet = {"to_q", "to_k", "to_v", "to_out.0"};
  std::vector<std::string> text_encoder;  // e.g. q_proj, k_proj, v_proj, out_proj; empty: none
};

// The adapters of one model, keyed by layer name "unet.<module path>" or
// "text_encoder.<module path>" (e.g. "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.
// to_q"). Bound to one StableDiffusion instance: its layers are found by identity. Not
// thread-safe for mutation; concurrent use under ScopedLora is safe.
class LoraAdapterSet {
 public:
  // New adapters on every layer of `model` that matches `targets` (Linear or Conv2d only), with
  // peft's initialisation: down Kaiming-uniform (a = sqrt(5)) drawn from `generator`, up zeros.
  // Float32, on the device of each layer. INVALID_ARGUMENT when rank < 1, alpha <= 0, a target
  // matches no layer, or matches a layer of another type.
  static absl::StatusOr<LoraAdapterSet> Create(StableDiffusion& model, const LoraTargets& targets,
                                               int64_t rank, double alpha, at::Generator generator);

  // Adapters from `weights` (layer name -> LoraWeights), bound to `model`'s layers; tensors are
  // moved to each layer's device (float32 unless `dtype` says otherwise). INVALID_ARGUMENT
  // naming the first layer that does not exist or whose shapes do not fit.
  static absl::StatusOr<LoraAdapterSet> Bind(StableDiffusion& model,
                                             const std::map<std::string, LoraWeights>& weights,
                                             at::ScalarType dtype = at::kFloat);

  // The same on a UNet and an optional text encoder (layer names "unet.<path>",
  // "text_encoder.<path>"), e.g. a UNet alone.
  static absl::StatusOr<LoraAdapterSet> Create(torch::nn::Module& unet,
                                               torch::nn::Module* text_encoder,
                                               const LoraTargets& targets, int64_t rank,
                                               double alpha, at::Generator generator);
  static absl::StatusOr<LoraAdapterSet> Bind(torch::nn::Module& unet,
                                             torch::nn::Module* text_encoder,
                                             const std::map<std::string, LoraWeights>& weights,
                                             at::ScalarType dtype = at::kFloat);

  LoraAdapterSet() = default;

  // Layer name -> weights (the tensors are the live ones: training updates them in place).
  const std::map<std::string, LoraWeights>& weights() const { return weights_; }
  // Trainable tensors with internal names "<layer>.lora_A.weight" / "<layer>.lora_B.weight", in
  // layer-name order, lora_A before lora_B. Prefix "unet." / "text_encoder." selects a model.
  std::vector<std::pair<std::string, at::Tensor>> NamedParameters(
      const std::string& prefix = "") const;
  // The same as a state dict (host copies, for resume states and exports).
  TensorMap StateDict() const;
  // Copies `state` (as StateDict() writes it) into the live tensors. INVALID_ARGUMENT when a
  // name is missing, extra or shaped differently.
  absl::Status LoadStateDict(const TensorMap& state);
  void set_requires_grad(bool requires_grad);

  int64_t rank() const;  // of the first adapter (all share it when made by Create)
  double alpha() const;  // likewise
  bool empty() const { return weights_.empty(); }

  // The adapter of `layer` (by identity), or nullptr.
  const LoraWeights* Find(const torch::nn::Module* layer) const;

  // Adds multiplier * scale * up @ down into each adapted layer's weight (peft's merge; the
  // result is a plain model). Not reversible here: merge into a copy to keep the base.
  absl::Status MergeInto(double multiplier = 1.0) const;

 private:
  std::map<std::string, LoraWeights> weights_;
  std::unordered_map<const torch::nn::Module*, LoraWeights> by_layer_;  // shares tensors
  std::map<std::string, torch::nn::Module*> layers_;                    // layer name -> module
};

// How an active adapter set is applied.
struct LoraScope {
  const LoraAdapterSet* adapters = nullptr;
  double multiplier = 1.0;  // user scale (diffusers' cross_attention_kwargs["scale"])
  double dropout = 0.0;     // on the adapter's input, only while training
  bool training = false;
};

// Makes `scope` the adapters of this thread's forward passes until destruction (restoring the
// previous one; nests). Gradient checkpointing carries the scope into its recomputation.
class ScopedLora {
 public:
  explicit ScopedLora(const LoraScope& scope);
  ~ScopedLora();
  ScopedLora(const ScopedLora&) = delete;
  ScopedLora& operator=(const ScopedLora&) = delete;

 private:
  const LoraScope* previous_;
  LoraScope scope_;
};

// This thread's active scope, or nullptr.
const LoraScope* ActiveLoraScope();

// linear(x) plus the active adapter of `linear`, if any.
at::Tensor LoraLinear(torch::nn::LinearImpl& linear, const at::Tensor& x);
// conv(x) plus the active adapter of `conv`, if any.
at::Tensor LoraConv2d(torch::nn::Conv2dImpl& conv, const at::Tensor& x);

// The layers that apply adapters (their forward goes through LoraLinear / LoraConv2d), by the
// last part(s) of their module path: UNet attention to_q/to_k/to_v/to_out.0, feed-forward
// ff.net.0.proj/ff.net.2, transformer proj_in/proj_out, resnet conv1/conv2/conv_shortcut/
// time_emb_proj; text encoder q_proj/k_proj/v_proj/out_proj/fc1/fc2.
bool IsLoraCapableLayer(const std::string& layer_name);

// Names of the layers of `model` that can carry an adapter ("unet.<path>", "text_encoder.<path>").
std::vector<std::string> LoraLayerNames(const StableDiffusion& model);

}  // namespace dreambooth::diffusion

#endif  // WORKER_DIFFUSION_MODELS_LORA_H_
