#include "evaluation/vae_round_trip.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/diffusion/io/model_loader.h"

namespace dreambooth::evaluation {

absl::StatusOr<VaeRoundTrip> VaeRoundTrip::Load(const std::string& model, double max_latent_noise) {
  if (!(max_latent_noise >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the latent noise must be >= 0, got ", max_latent_noise));
  }
  ASSIGN_OR_RETURN(diffusion::StableDiffusion sd, diffusion::LoadStableDiffusion(model));
  sd.vae->eval();
  return VaeRoundTrip(std::move(sd.vae), max_latent_noise);
}

at::Tensor VaeRoundTrip::operator()(const at::Tensor& images, at::Generator& gen) {
  at::NoGradGuard no_grad;
  const double scale = vae_->scaling_factor();
  at::Tensor latents = vae_->Encode(images).mean * scale;
  const at::Tensor sigma =
      at::rand({images.size(0), 1, 1, 1}, gen) * static_cast<float>(max_latent_noise_);
  latents = latents + at::randn(latents.sizes(), gen) * sigma;
  return vae_->Decode(latents / scale).clamp(-1.0, 1.0);
}

}  // namespace dreambooth::evaluation
