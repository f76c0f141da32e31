// The built-in `tiny` Stable Diffusion: small configs and a fixed-seed random initialisation,
// so that every tool, test and demo runs without model files.
#ifndef WORKER_DIFFUSION_TINY_MODEL_H_
#define WORKER_DIFFUSION_TINY_MODEL_H_

#include <torch/nn/module.h>

#include <cstdint>
#include <nlohmann/json_fwd.hpp>

#include "worker/diffusion/models/autoencoder_kl_config.h"
#include "worker/diffusion/models/clip_text_config.h"
#include "worker/diffusion/models/unet_2d_condition_config.h"

namespace dreambooth::diffusion {

// Seed of the tiny model's weights; with it the weights (and the digest) never change.
inline constexpr uint64_t kTinyModelSeed = 20240001;

// The tiny UNet: the tiny-a fixture architecture (block_out_channels 32/64, 8 heads,
// cross_attention_dim 32, latents 32x32).
UNet2DConditionConfig TinyUNetConfig();
// The tiny VAE: block_out_channels 32/64 (2x spatial factor: 64x64 images), scaling 0.18215.
AutoencoderKLConfig TinyVaeConfig();
// The tiny text encoder: the real CLIP vocabulary size (49408, so the built-in tokenizer's ids
// fit), 77 positions, hidden 32, 5 layers, 4 heads, quick_gelu, SD 1.x special-id quirks.
ClipTextConfig TinyTextConfig();
// scheduler_config.json of the tiny model (SD 1.x DDPM settings: scaled_linear 0.00085..0.012,
// steps_offset 1, leading spacing, epsilon prediction).
nlohmann::json TinySchedulerConfigJson();

// The `toy` architecture (pretrained on the rendered toy world, docs/toy-world.md; the shipped
// weights live in assets/models/toy): 64x64 images, an f=4 VAE (32/64/64 channels, 16x16x4
// latents), a 3-level UNet (32/64/128 channels, cross-attention at 8x8 and 4x4 and in the mid
// block, a few million parameters) and a 4-layer CLIP text encoder of width 64.
UNet2DConditionConfig ToyUNetConfig();
AutoencoderKLConfig ToyVaeConfig();
ClipTextConfig ToyTextConfig();
// Seed of the toy model's initial (untrained) weights.
inline constexpr uint64_t kToyInitSeed = 20261201;

// Overwrites every parameter of `module` (in named_parameters() order) from a CPU generator
// seeded with `seed`: weights of rank >= 2 ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), embeddings
// ~ N(0, 0.02), norm weights 1 + U(-0.1, 0.1) and norm biases U(-0.1, 0.1), other biases
// ~ U(-b, b) with b the bound of the weight registered before them.
// Deterministic for a given module structure and seed on any LibTorch version. Parameters may
// be on any device/dtype (values are drawn on CPU in float32, then copied).
void InitializeRandomWeights(torch::nn::Module& module, uint64_t seed);

}  // namespace dreambooth::diffusion

#endif  // WORKER_DIFFUSION_TINY_MODEL_H_
