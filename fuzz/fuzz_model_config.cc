// Fuzzes the diffusers / transformers config.json readers of worker/diffusion (UNet, VAE, CLIP
// text encoder, scheduler; all built on io/config_json.h) with arbitrary bytes parsed as JSON. An
// accepted config must validate, and ToJson -> FromJson must give it back unchanged.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "fuzz/fuzz_check.h"
#include "worker/diffusion/models/autoencoder_kl_config.h"
#include "worker/diffusion/models/clip_text_config.h"
#include "worker/diffusion/models/unet_2d_condition_config.h"
#include "worker/diffusion/schedulers/scheduler_config.h"

namespace {

namespace diffusion = ::dreambooth::diffusion;

// FromJson(json), and when it succeeds the round trip through ToJson.
template <typename Config>
void CheckConfig(const nlohmann::json& json) {
  absl::StatusOr<Config> config = Config::FromJson(json);
  if (!config.ok()) {
    FUZZ_CHECK(config.status().code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  const nlohmann::json written = config->ToJson();
  absl::StatusOr<Config> again = Config::FromJson(written);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->ToJson() == written);
}

void CheckUNet(const nlohmann::json& json) {
  CheckConfig<diffusion::UNet2DConditionConfig>(json);
  absl::StatusOr<diffusion::UNet2DConditionConfig> unet =
      diffusion::UNet2DConditionConfig::FromJson(json);
  if (!unet.ok()) return;
  FUZZ_CHECK(unet->Validate().ok());
  // The per-block accessors are valid for every down block of a validated config.
  for (size_t block = 0; block < unet->down_block_types.size(); ++block) {
    (void)unet->LayersPerBlock(block);
    (void)unet->CrossAttentionDim(block);
    (void)unet->TransformerLayers(block);
    (void)unet->NumHeads(block);
  }
  (void)unet->TimeEmbedDim();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const nlohmann::json json =
      nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return 0;
  CheckUNet(json);
  CheckConfig<diffusion::AutoencoderKLConfig>(json);
  CheckConfig<diffusion::ClipTextConfig>(json);
  CheckConfig<diffusion::SchedulerConfig>(json);
  return 0;
}
