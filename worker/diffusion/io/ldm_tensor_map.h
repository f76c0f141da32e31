// The LDM name rules (ldm_key_map.h) applied to whole state dicts. Internal to worker/diffusion.
#ifndef DREAMBOOTH_WORKER_DIFFUSION_IO_LDM_TENSOR_MAP_H_
#define DREAMBOOTH_WORKER_DIFFUSION_IO_LDM_TENSOR_MAP_H_

#include "absl/status/statusor.h"
#include "worker/diffusion/io/ldm_key_map.h"
#include "worker/diffusion/io/safetensors.h"

namespace dreambooth::diffusion {

// A diffusers state dict under its LDM names (without the component prefix), and back. VAE
// attention weights are reshaped between [C, C] (diffusers Linear) and [C, C, 1, 1] (LDM 1x1
// Conv2d); the tensors share storage with the input.
absl::StatusOr<TensorMap> MapToLdm(const LdmKeyMap& map, const TensorMap& diffusers);
absl::StatusOr<TensorMap> MapFromLdm(const LdmKeyMap& map, const TensorMap& ldm);

// Renames legacy diffusers VAE attention keys (query/key/value/proj_attn) to the current ones
// (to_q/to_k/to_v/to_out.0), squeezing 1x1-conv shaped weights to [C, C].
TensorMap NormalizeVaeKeys(TensorMap vae);

}  // namespace dreambooth::diffusion

#endif  // DREAMBOOTH_WORKER_DIFFUSION_IO_LDM_TENSOR_MAP_H_
