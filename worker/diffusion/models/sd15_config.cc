#include "worker/diffusion/models/sd15_config.h"

namespace dreambooth::diffusion {

UNet2DConditionConfig Sd15UNetConfig() {
  UNet2DConditionConfig c;  // the diffusers defaults are SD 1.x's, except:
  c.sample_size = 64;
  c.cross_attention_dim = {768};
  c.attention_head_dim = {8};
  return c;
}

AutoencoderKLConfig Sd15VaeConfig() {
  AutoencoderKLConfig c;
  c.block_out_channels = {128, 256, 512, 512};
  c.down_block_types.assign(4, "DownEncoderBlock2D");
  c.up_block_types.assign(4, "UpDecoderBlock2D");
  c.layers_per_block = 2;
  c.latent_channels = 4;
  c.norm_num_groups = 32;
  c.sample_size = 512;
  c.scaling_factor = 0.18215;
  return c;
}

ClipTextConfig Sd15TextConfig() {
  ClipTextConfig c;
  c.vocab_size = 49408;
  c.hidden_size = 768;
  c.intermediate_size = 3072;
  c.projection_dim = 768;
  c.num_hidden_layers = 12;
  c.num_attention_heads = 12;
  c.max_position_embeddings = 77;
  c.hidden_act = "quick_gelu";
  c.bos_token_id = 0;
  c.eos_token_id = 2;
  c.pad_token_id = 1;
  return c;
}

}  // namespace dreambooth::diffusion
