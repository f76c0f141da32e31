// The frozen modules of a mixed-precision run (the VAE, the text encoder unless it trains, and
// the UNet too in a LoRA run, where only adapters train)
// held in the compute dtype, as diffusers' train_dreambooth.py does with weight_dtype, while
// their float32 weights stay on the host so that every export writes exactly the loaded weights.
#ifndef DREAMBOOTH_WORKER_TRAIN_FROZEN_MODULES_H_
#define DREAMBOOTH_WORKER_TRAIN_FROZEN_MODULES_H_

#include <ATen/ATen.h>

#include <functional>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/train/train_options.h"

namespace dreambooth::train {

// Not thread-safe; lives as long as the training run.
class FrozenModules {
 public:
  // Casts `model`'s VAE (and the text encoder when `text_encoder_frozen`, the UNet when
  // `unet_frozen`) to `dtype`, keeping a float32 host copy of their weights. With dtype float32
  // nothing changes.
  static absl::StatusOr<FrozenModules> Cast(diffusion::StableDiffusion& model, at::ScalarType dtype,
                                            bool text_encoder_frozen, bool unet_frozen = false);

  // Runs `fn` with the frozen modules' float32 weights in place (for exports), then casts them
  // back to the compute dtype (bit-identical to before: rounding is deterministic).
  absl::Status WithFloat32Weights(diffusion::StableDiffusion& model,
                                  const std::function<absl::Status()>& fn) const;

  at::ScalarType dtype() const { return dtype_; }

 private:
  at::ScalarType dtype_ = at::kFloat;
  bool text_encoder_ = false;
  bool unet_ = false;
  diffusion::TensorMap vae_master_;  // float32 host copies by state-dict name
  diffusion::TensorMap text_master_;
  diffusion::TensorMap unet_master_;
};

}  // namespace dreambooth::train

#endif  // DREAMBOOTH_WORKER_TRAIN_FROZEN_MODULES_H_
