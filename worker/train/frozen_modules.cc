#include "worker/train/frozen_modules.h"

#include <ATen/core/grad_mode.h>

#include "common/status_macros.h"
#include "worker/diffusion/torch_status.h"

namespace dreambooth::train {

absl::StatusOr<FrozenModules> FrozenModules::Cast(diffusion::StableDiffusion& model,
                                                  at::ScalarType dtype, bool text_encoder_frozen,
                                                  bool unet_frozen) {
  FrozenModules frozen;
  frozen.dtype_ = dtype;
  frozen.text_encoder_ = text_encoder_frozen;
  frozen.unet_ = unet_frozen;
  if (dtype == at::kFloat) return frozen;
  RETURN_IF_ERROR(GuardTorch("casting the frozen modules", [&]() -> absl::Status {
    at::NoGradGuard no_grad;
    frozen.vae_master_ = diffusion::ModuleStateDictOnHost(*model.vae);
    model.vae->to(dtype);
    if (text_encoder_frozen) {
      frozen.text_master_ = diffusion::ModuleStateDictOnHost(*model.text_encoder);
      model.text_encoder->to(dtype);
    }
    if (unet_frozen) {
      frozen.unet_master_ = diffusion::ModuleStateDictOnHost(*model.unet);
      model.unet->to(dtype);
    }
    return absl::OkStatus();
  }));
  return frozen;
}

absl::Status FrozenModules::WithFloat32Weights(diffusion::StableDiffusion& model,
                                               const std::function<absl::Status()>& fn) const {
  if (dtype_ == at::kFloat) return fn();
  auto set = [&](bool full) -> absl::Status {
    return GuardTorch("restoring the frozen modules' weights", [&]() -> absl::Status {
      at::NoGradGuard no_grad;
      model.vae->to(full ? at::kFloat : dtype_);
      if (full) RETURN_IF_ERROR(diffusion::LoadStateDictStrict(*model.vae, vae_master_, "vae"));
      if (text_encoder_) {
        model.text_encoder->to(full ? at::kFloat : dtype_);
        if (full) {
          RETURN_IF_ERROR(
              diffusion::LoadStateDictStrict(*model.text_encoder, text_master_, "text_encoder"));
        }
      }
      if (unet_) {
        model.unet->to(full ? at::kFloat : dtype_);
        if (full)
          RETURN_IF_ERROR(diffusion::LoadStateDictStrict(*model.unet, unet_master_, "unet"));
      }
      return absl::OkStatus();
    });
  };
  RETURN_IF_ERROR(set(true));
  absl::Status status = fn();
  RETURN_IF_ERROR(set(false));
  return status;
}

}  // namespace dreambooth::train
