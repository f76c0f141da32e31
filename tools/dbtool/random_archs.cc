#include "tools/dbtool/random_archs.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/diffusion/models/sd15_config.h"
#include "worker/diffusion/models/tiny_model.h"

namespace dreambooth::dbtool {
namespace {

// tests/data/bench/mid/unet/config.json, kept equal by hand (the test data is not installed).
diffusion::UNet2DConditionConfig MidUNetConfig() {
  diffusion::UNet2DConditionConfig c;
  c.sample_size = 32;
  c.block_out_channels = {128, 256, 256};
  c.down_block_types = {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"};
  c.up_block_types = {"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"};
  c.cross_attention_dim = {768};
  c.attention_head_dim = {8};
  return c;
}

}  // namespace

absl::StatusOr<diffusion::RandomModelSpec> RandomArchSpec(const std::string& arch, uint64_t seed) {
  diffusion::RandomModelSpec spec;
  if (arch == "toy") {
    spec.text_encoder_config = diffusion::ToyTextConfig();
    spec.unet_config = diffusion::ToyUNetConfig();
    spec.vae_config = diffusion::ToyVaeConfig();
  } else if (arch == "tiny") {
    spec.text_encoder_config = diffusion::TinyTextConfig();
    spec.unet_config = diffusion::TinyUNetConfig();
    spec.vae_config = diffusion::TinyVaeConfig();
  } else if (arch == "mid" || arch == "sd15") {
    spec.text_encoder_config = diffusion::Sd15TextConfig();
    spec.unet_config = arch == "mid" ? MidUNetConfig() : diffusion::Sd15UNetConfig();
    spec.vae_config = diffusion::Sd15VaeConfig();
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown architecture '", arch, "' (expected ", kRandomArchNames, ")"));
  }
  ASSIGN_OR_RETURN(spec.scheduler_config,
                   diffusion::SchedulerConfig::FromJson(diffusion::TinySchedulerConfigJson()));
  spec.seed = seed;
  spec.source = arch;
  return spec;
}

}  // namespace dreambooth::dbtool
