// Internal to memory_estimate.cc and its test: the layers of the Stable Diffusion modules as the
// configs describe them (names as the module paths, so LoRA targets match like peft's rule), and
// per-sample activation element counts of the UNet.
#ifndef DREAMBOOTH_WORKER_TRAIN_MEMORY_ESTIMATE_ARCH_H_
#define DREAMBOOTH_WORKER_TRAIN_MEMORY_ESTIMATE_ARCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "worker/diffusion/models/autoencoder_kl_config.h"
#include "worker/diffusion/models/clip_text_config.h"
#include "worker/diffusion/models/unet_2d_condition_config.h"

namespace dreambooth::train::memory_internal {

// A Linear (kernel 0) or Conv2d (kernel k x k) layer.
struct Layer {
  std::string
      name;  // module path, e.g. "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
  int64_t in = 0;
  int64_t out = 0;
  int64_t kernel = 0;
  bool bias = true;
  int64_t Parameters() const;
};

// The Linear/Conv2d layers of a module plus the parameters of everything else (norms,
// embeddings).
struct LayerList {
  std::vector<Layer> layers;
  int64_t other_parameters = 0;
  int64_t Parameters() const;
};

LayerList UNetLayers(const diffusion::UNet2DConditionConfig& config);
LayerList VaeLayers(const diffusion::AutoencoderKLConfig& config);
LayerList TextEncoderLayers(const diffusion::ClipTextConfig& config);

// Parameters of rank-`rank` adapters on the layers of `list` that match `targets` (a layer
// matches when its path equals a target or ends with "." + target).
int64_t LoraParameters(const LayerList& list, int rank, const std::vector<std::string>& targets);

// Element counts of one sample through the UNet at latent size h x w (77 context tokens).
struct UNetActivations {
  double saved = 0;           // kept for backward by a full (non-checkpointed) forward
  double checkpointed = 0;    // kept with gradient checkpointing (block inputs + other layers)
  double largest_block = 0;   // the largest checkpointed block's `saved` (recomputed in backward)
  double skips = 0;           // skip connections (held through the up path; their gradients too)
  double largest_tensor = 0;  // the largest single activation (attention scores included)
  double inference = 0;       // peak of a no-grad forward: skips + the largest block's work set
};

// `math_attention(n_query, n_key)` says whether the training path materializes a score
// matrix for that attention (else a fused kernel keeps only per-row statistics).
UNetActivations CountUNetActivations(const diffusion::UNet2DConditionConfig& config, int64_t h,
                                     int64_t w, bool (*math_attention)(int64_t, int64_t));

// Peak no-grad working set (elements per sample) of the VAE encoder at h x w pixels and of the
// decoder producing h x w pixels.
double VaeEncodeElements(const diffusion::AutoencoderKLConfig& config, int64_t h, int64_t w);
double VaeDecodeElements(const diffusion::AutoencoderKLConfig& config, int64_t h, int64_t w);

// Elements kept for backward by the text encoder (one sample of 77 tokens).
double TextEncoderSavedElements(const diffusion::ClipTextConfig& config);

}  // namespace dreambooth::train::memory_internal

#endif  // DREAMBOOTH_WORKER_TRAIN_MEMORY_ESTIMATE_ARCH_H_
