// Architecture presets of Stable Diffusion 1.5 (runwayml/stable-diffusion-v1-5 configs).
#ifndef WORKER_DIFFUSION_SD15_CONFIG_H_
#define WORKER_DIFFUSION_SD15_CONFIG_H_

#include "worker/diffusion/models/autoencoder_kl_config.h"
#include "worker/diffusion/models/clip_text_config.h"
#include "worker/diffusion/models/unet_2d_condition_config.h"

namespace dreambooth::diffusion {

// unet/config.json of SD 1.5: 320/640/1280/1280 channels, 8 heads, cross_attention_dim 768,
// 64x64 latents (859,520,964 parameters).
UNet2DConditionConfig Sd15UNetConfig();
// vae/config.json of SD 1.x / 2.x: 128/256/512/512 channels, 2 layers per block, scaling
// factor 0.18215 (83,653,863 parameters).
AutoencoderKLConfig Sd15VaeConfig();
// text_encoder/config.json of SD 1.x: CLIP ViT-L/14 text tower, 12 layers of width 768
// (123,060,480 parameters).
ClipTextConfig Sd15TextConfig();

}  // namespace dreambooth::diffusion

#endif  // WORKER_DIFFUSION_SD15_CONFIG_H_
