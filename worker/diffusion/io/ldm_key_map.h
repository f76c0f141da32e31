// Name maps between diffusers state dicts and the original LDM single-file checkpoint layout
// (CompVis / Stability "model.diffusion_model.*", "first_stage_model.*",
// "cond_stage_model.transformer.*"), following diffusers' conversion scripts. Names only, free of
// LibTorch (ldm_tensor_map.h applies them to state dicts).
#ifndef DREAMBOOTH_WORKER_DIFFUSION_IO_LDM_KEY_MAP_H_
#define DREAMBOOTH_WORKER_DIFFUSION_IO_LDM_KEY_MAP_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
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

  // Whether the tensor `diffusers_name` is a [C, C] Linear weight in diffusers and a [C, C, 1, 1]
  // 1x1 Conv2d weight (same bytes) in LDM: the VAE mid-block attention projections.
  bool ReshapesToConv(const std::string& diffusers_name) const;
  // The same question for the LDM name `ldm_name` (without prefix).
  bool ReshapesFromConv(const std::string& ldm_name) const;

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

}  // namespace dreambooth::diffusion

#endif  // DREAMBOOTH_WORKER_DIFFUSION_IO_LDM_KEY_MAP_H_
