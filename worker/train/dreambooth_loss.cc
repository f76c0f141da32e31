#include "worker/train/dreambooth_loss.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/diffusion/torch_status.h"

namespace dreambooth::train {
namespace {

// Per-sample mean of the squared error [B] in float32.
at::Tensor PerSampleMse(const at::Tensor& pred, const at::Tensor& target) {
  at::Tensor diff = pred.to(at::kFloat) - target.to(at::kFloat);
  return diff.pow(2).flatten(1).mean(1);
}

}  // namespace

absl::StatusOr<DreamBoothLossOutput> ComputeDreamBoothLoss(
    diffusion::UNet2DConditionModel& unet, const diffusion::DdpmTrainingSchedule& schedule,
    const DreamBoothStepInputs& in, const DreamBoothLossOptions& options) {
  if (in.latents.dim() != 4 || !in.noise.sizes().equals(in.latents.sizes())) {
    return absl::InvalidArgumentError("DreamBooth loss: latents and noise must be equal [B,C,h,w]");
  }
  const int64_t batch = in.latents.size(0);
  if (in.timesteps.dim() != 1 || in.timesteps.size(0) != batch ||
      in.encoder_hidden_states.size(0) != batch) {
    return absl::InvalidArgumentError(
        absl::StrCat("DreamBooth loss: batch sizes differ (latents ", batch, ", timesteps ",
                     in.timesteps.numel(), ", text ", in.encoder_hidden_states.size(0), ")"));
  }
  if (options.with_prior_preservation && batch % 2 != 0) {
    return absl::InvalidArgumentError(
        "DreamBooth loss: with prior preservation the batch must hold as many class samples as "
        "instance samples");
  }
  return GuardTorch("DreamBooth step", [&]() -> absl::StatusOr<DreamBoothLossOutput> {
    DreamBoothLossOutput out;
    out.noisy_latents = schedule.AddNoise(in.latents, in.noise, in.timesteps);
    ASSIGN_OR_RETURN(out.target, schedule.Target(in.latents, in.noise, in.timesteps));
    out.model_pred = unet->forward(out.noisy_latents, in.timesteps, in.encoder_hidden_states);

    const int64_t n_inst = options.with_prior_preservation ? batch / 2 : batch;
    at::Tensor pred_i = out.model_pred.narrow(0, 0, n_inst);
    at::Tensor target_i = out.target.narrow(0, 0, n_inst);
    at::Tensor instance_loss;
    at::Tensor prior_loss;
    if (options.snr_gamma > 0.0) {
      at::Tensor snr = schedule.Snr(in.timesteps).to(at::kFloat);  // [B]
      at::Tensor weights = at::clamp_max(snr, options.snr_gamma) / snr;
      if (schedule.prediction_type() == "v_prediction") weights = weights + 1.0;
      at::Tensor per_sample = PerSampleMse(out.model_pred, out.target) * weights;
      instance_loss = per_sample.narrow(0, 0, n_inst).mean();
      if (options.with_prior_preservation) prior_loss = per_sample.narrow(0, n_inst, n_inst).mean();
    } else {
      instance_loss = at::mse_loss(pred_i.to(at::kFloat), target_i.to(at::kFloat));
      if (options.with_prior_preservation) {
        prior_loss = at::mse_loss(out.model_pred.narrow(0, n_inst, n_inst).to(at::kFloat),
                                  out.target.narrow(0, n_inst, n_inst).to(at::kFloat));
      }
    }
    out.loss = options.with_prior_preservation
                   ? instance_loss + options.prior_loss_weight * prior_loss
                   : instance_loss;
    out.instance_loss = instance_loss.detach();
    if (prior_loss.defined()) out.prior_loss = prior_loss.detach();
    return out;
  });
}

StepRandomness DrawStepRandomness(const at::Tensor& posterior_mean, const at::Tensor& posterior_std,
                                  int64_t num_train_timesteps, double offset_noise,
                                  at::Generator& generator) {
  const auto cpu_f32 = at::TensorOptions().dtype(at::kFloat).device(at::kCPU);
  const at::IntArrayRef shape = posterior_mean.sizes();
  StepRandomness r;
  if (posterior_std.defined()) {
    at::Tensor eps = at::randn(shape, generator, cpu_f32).to(posterior_mean.options());
    r.latents = posterior_mean + posterior_std * eps;
  } else {
    r.latents = posterior_mean;
  }
  at::Tensor noise = at::randn(shape, generator, cpu_f32);
  if (offset_noise > 0.0) {
    noise = noise + offset_noise * at::randn({shape[0], shape[1], 1, 1}, generator, cpu_f32);
  }
  r.noise = noise.to(posterior_mean.options());
  r.timesteps = at::randint(0, num_train_timesteps, {shape[0]}, generator,
                            at::TensorOptions().dtype(at::kLong))
                    .to(posterior_mean.device());
  return r;
}

}  // namespace dreambooth::train
