// Name maps between diffusers state dicts and the original LDM single-file checkpoint layout
// (CompVis / Stability "model.diffusion_model.*", "first_stage_model.*",
// "cond_stage_model.transformer.*"), following diffusers' conversion scripts. Internal to
// worker/diffusion.
#ifndef DREAMBOOTH_WORKER_DIFFUSION_IO_LDM_KEY_MAP_H_
#define DREAMBOOTH_WORKER_DIFFUSION_IO_LDM_KEY_MAP_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/diffusion/io/safetensors.h"
#include "worker/diffusion/models/autoencoder_kl_config.h"
#include "worker/diffusion/models/unet_2d_condition_config.h"

namespace dreambooth::diffusion {

inline constexpr char kLdmUNetPrefix[] = "model.diffusion_model.";
inline constexpr char kLdmVaePrefix[] = "first_stage_model.";
inline constexpr char kLdmTextPrefix[] = "cond_stage_model.transformer.";

// A bidirectional name map for one component. Immutable, thread-safe.
class LdmKeyMap {
 public:
  // UNet map for `config` (uniform layers_per_block required, as in every LDM checkpoint).
  static absl::StatusOr<LdmKeyMap> ForUNet(const UNet2DConditionConfig& config);
  static absl::StatusOr<LdmKeyMap> ForVae(const AutoencoderKLConfig& config);

  // diffusers name -> LDM name (without the component prefix); error when no rule applies.
  absl::StatusOr<std::string> ToLdm(const std::string& diffusers_name) const;
  // LDM name (without prefix) -> diffusers name; error when no rule applies.
  absl::StatusOr<std::string> FromLdm(const std::string& ldm_name) const;

  // Whole state dicts. VAE attention weights are reshaped between [C, C] (diffusers Linear) and
  // [C, C, 1, 1] (LDM 1x1 Conv2d).
  absl::StatusOr<TensorMap> MapToLdm(const TensorMap& diffusers) const;
  absl::StatusOr<TensorMap> MapFromLdm(const TensorMap& ldm) const;

 private:
  enum class Kind { kPlain, kResnet, kVaeResnet, kVaeAttention };
  struct Rule {
    std::string diffusers_prefix;
    std::string ldm_prefix;
    Kind kind;
  };
  static absl::StatusOr<std::string> Apply(const std::vector<Rule>& rules, const std::string& name,
                                           bool to_ldm);

  std::vector<Rule> rules_;
  bool is_vae_ = false;
};

// Renames legacy diffusers VAE attention keys (query/key/value/proj_attn) to the current ones
// (to_q/to_k/to_v/to_out.0), squeezing 1x1-conv shaped weights to [C, C].
TensorMap NormalizeVaeKeys(TensorMap vae);

}  // namespace dreambooth::diffusion

#endif  // DREAMBOOTH_WORKER_DIFFUSION_IO_LDM_KEY_MAP_H_
