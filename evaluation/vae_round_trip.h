// Makes renders look like a latent diffusion model's samples, for training and testing the
// attribute classifier on the images it will score: a VAE encodes the image, Gaussian noise
// perturbs the scaled latents (a sampler never lands exactly on a clean image's latents, and
// the decoder turns small latent errors into the blotchy texture generated images carry), and the
// VAE decodes.
#ifndef DREAMBOOTH_EVALUATION_VAE_ROUND_TRIP_H_
#define DREAMBOOTH_EVALUATION_VAE_ROUND_TRIP_H_

#include <ATen/ATen.h>

#include <string>

#include "absl/status/statusor.h"
#include "worker/diffusion/models/autoencoder_kl.h"

namespace dreambooth::evaluation {

class VaeRoundTrip {
 public:
  // The VAE of `model` ("toy", a diffusers folder or a single file); each image's latent noise
  // std is drawn from U(0, max_latent_noise) in the UNet's (scaled) latent units.
  // INVALID_ARGUMENT for a negative noise; the loader's errors otherwise.
  static absl::StatusOr<VaeRoundTrip> Load(const std::string& model, double max_latent_noise);

  // images [B, 3, H, W] in [-1, 1] -> the round-tripped images, clamped to [-1, 1]. No gradient;
  // the noise is drawn from `gen`.
  at::Tensor operator()(const at::Tensor& images, at::Generator& gen);

  double max_latent_noise() const { return max_latent_noise_; }

 private:
  VaeRoundTrip(diffusion::AutoencoderKL vae, double max_latent_noise)
      : vae_(std::move(vae)), max_latent_noise_(max_latent_noise) {}

  diffusion::AutoencoderKL vae_;
  double max_latent_noise_;
};

}  // namespace dreambooth::evaluation

#endif  // DREAMBOOTH_EVALUATION_VAE_ROUND_TRIP_H_
