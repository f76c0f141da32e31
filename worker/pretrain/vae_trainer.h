// Training the VAE of a small Stable Diffusion from scratch (the `toy` model's first stage):
// reconstruction (L1) plus a small KL term, as the LDM autoencoder without its perceptual and
// adversarial losses, on random crops of a folder of images. Resumable: the weights, the AdamW
// state and the step are saved every `checkpoint_every` steps and picked up by the next run with
// the same options. At the end the VAE's scaling_factor is set to 1 / std of the latents of the
// training images (as SD's 0.18215 was measured) and the model folder is rewritten.
#ifndef DREAMBOOTH_WORKER_PRETRAIN_VAE_TRAINER_H_
#define DREAMBOOTH_WORKER_PRETRAIN_VAE_TRAINER_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"

namespace dreambooth::pretrain {

struct VaeTrainOptions {
  std::string model_dir;   // diffusers folder whose VAE is trained and rewritten in place
  std::string image_dir;   // PNG/JPEG images, resized/cropped to the VAE's sample_size
  std::string state_dir;   // resume state; default <model_dir>/../<model_dir name>.vae-train
  int max_images = 20000;  // images read from image_dir (sorted by name)
  int max_steps = 3000;
  int batch_size = 16;
  int crop_size = 32;  // random square crops (the VAE is convolutional); 0: whole images
  double learning_rate = 5e-4;
  int warmup_steps = 100;
  double kl_weight = 1e-6;  // per-element KL weight against the per-element L1
  uint64_t seed = 0;
  int checkpoint_every = 250;
  std::string device = "cpu";
  int num_threads = 0;  // 0: LibTorch's default
};

struct VaeTrainProgress {
  int step = 0;  // steps done
  int max_steps = 0;
  double l1 = 0;  // mean absolute reconstruction error in [-1, 1] units
  double kl = 0;  // mean KL per latent element
  double seconds = 0;
};

struct VaeTrainResult {
  int steps = 0;
  int resumed_from = 0;  // step the run started at (0: fresh)
  double psnr_db = 0;    // reconstruction PSNR of whole images (posterior means), 8-bit scale
  double scaling_factor = 0;
};

// Trains; `on_progress` is called every step and returning false stops after saving the state
// (CANCELLED). Errors: NOT_FOUND / INVALID_ARGUMENT for a missing model or image folder,
// FAILED_PRECONDITION when the resume state was written with other options.
absl::StatusOr<VaeTrainResult> TrainVae(
    const VaeTrainOptions& options,
    const std::function<bool(const VaeTrainProgress&)>& on_progress);

}  // namespace dreambooth::pretrain

#endif  // DREAMBOOTH_WORKER_PRETRAIN_VAE_TRAINER_H_
