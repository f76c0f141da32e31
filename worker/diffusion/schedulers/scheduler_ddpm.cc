// DDPMScheduler of diffusers 0.25.1: the ancestral sampler and the training-side forward
// process (add_noise, get_velocity, targets, SNR).
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/diffusion/schedulers/scheduler.h"
#include "worker/diffusion/schedulers/scheduler_internal.h"
#include "worker/diffusion/torch_status.h"

namespace dreambooth::diffusion {
namespace scheduler_internal {
namespace {

// Not thread-safe (one sampling run).
class DdpmScheduler : public DiscreteTimestepScheduler {
 public:
  using DiscreteTimestepScheduler::DiscreteTimestepScheduler;

  std::string name() const override { return "ddpm"; }

  absl::StatusOr<SchedulerStepOutput> Step(const at::Tensor& model_output,
                                           const at::Tensor& timestep, const at::Tensor& sample,
                                           at::Generator* generator) override {
    const int64_t t = timestep.item<double>();
    if (t < 0 || t >= config_.num_train_timesteps) {
      return absl::InvalidArgumentError(absl::StrCat("DDPM: timestep ", t, " out of range"));
    }
    const int64_t steps =
        num_inference_steps_ > 0 ? num_inference_steps_ : config_.num_train_timesteps;
    const int64_t prev_t = t - config_.num_train_timesteps / steps;
    const at::Tensor one = at::scalar_tensor(1.0, at::kFloat);
    at::Tensor alpha_prod_t = alphas_cumprod_[t];
    at::Tensor alpha_prod_t_prev = prev_t >= 0 ? alphas_cumprod_[prev_t] : one;
    at::Tensor beta_prod_t = 1 - alpha_prod_t;
    at::Tensor beta_prod_t_prev = 1 - alpha_prod_t_prev;
    at::Tensor current_alpha_t = alpha_prod_t / alpha_prod_t_prev;
    at::Tensor current_beta_t = 1 - current_alpha_t;

    at::Tensor pred_original_sample;
    if (config_.prediction_type == "epsilon") {
      pred_original_sample = (sample - beta_prod_t.pow(0.5) * model_output) / alpha_prod_t.pow(0.5);
    } else if (config_.prediction_type == "sample") {
      pred_original_sample = model_output;
    } else if (config_.prediction_type == "v_prediction") {
      pred_original_sample = alpha_prod_t.pow(0.5) * sample - beta_prod_t.pow(0.5) * model_output;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("DDPM: unsupported prediction_type '", config_.prediction_type, "'"));
    }
    pred_original_sample = ClipOrThreshold(pred_original_sample, config_);

    at::Tensor original_coeff = (alpha_prod_t_prev.pow(0.5) * current_beta_t) / beta_prod_t;
    at::Tensor current_coeff = current_alpha_t.pow(0.5) * beta_prod_t_prev / beta_prod_t;
    at::Tensor prev_sample = original_coeff * pred_original_sample + current_coeff * sample;
    if (t > 0) {
      at::Tensor noise = RandnLike(model_output, generator);
      at::Tensor variance = (1 - alpha_prod_t_prev) / (1 - alpha_prod_t) * current_beta_t;
      variance = at::clamp(variance, 1e-20);
      if (config_.variance_type == "fixed_small") {
        prev_sample = prev_sample + variance.pow(0.5) * noise;
      } else if (config_.variance_type == "fixed_small_log") {
        prev_sample = prev_sample + at::exp(0.5 * at::log(variance)) * noise;
      } else if (config_.variance_type == "fixed_large") {
        prev_sample = prev_sample + current_beta_t.pow(0.5) * noise;
      } else {
        return absl::UnimplementedError(absl::StrCat("DDPM: variance_type '", config_.variance_type,
                                                     "' is not supported for sampling"));
      }
    }
    return SchedulerStepOutput{prev_sample, pred_original_sample};
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<Scheduler>> MakeDdpm(const SchedulerConfig& config) {
  ASSIGN_OR_RETURN(at::Tensor betas, ComputeBetas(config));
  return std::unique_ptr<Scheduler>(new DdpmScheduler(config, at::cumprod(1.0 - betas, 0)));
}

}  // namespace scheduler_internal

absl::StatusOr<DdpmTrainingSchedule> DdpmTrainingSchedule::Create(const SchedulerConfig& config) {
  if (config.prediction_type != "epsilon" && config.prediction_type != "v_prediction" &&
      config.prediction_type != "sample") {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported prediction_type '", config.prediction_type, "'"));
  }
  DdpmTrainingSchedule schedule;
  try {
    ASSIGN_OR_RETURN(schedule.betas_, ComputeBetas(config));
    schedule.alphas_cumprod_ = at::cumprod(1.0 - schedule.betas_, 0);
  } catch (const c10::Error& e) {
    return StatusFromException(e, "cannot build the DDPM schedule");
  }
  schedule.num_train_timesteps_ = config.num_train_timesteps;
  schedule.prediction_type_ = config.prediction_type;
  return schedule;
}

namespace {

// alphas_cumprod[timesteps] ** 0.5 and (1 - alphas_cumprod[timesteps]) ** 0.5, shaped [B, 1, ...]
// to broadcast over `like`, in `like`'s dtype and device (the order of diffusers' add_noise).
std::pair<at::Tensor, at::Tensor> Coefficients(const at::Tensor& alphas_cumprod,
                                               const at::Tensor& like,
                                               const at::Tensor& timesteps) {
  at::Tensor ac = alphas_cumprod.to(like.device(), like.scalar_type());
  at::Tensor t = timesteps.to(like.device()).to(at::kLong);
  at::Tensor sqrt_alpha = ac.index({t}).pow(0.5).flatten();
  at::Tensor sqrt_one_minus = (1 - ac.index({t})).pow(0.5).flatten();
  while (sqrt_alpha.dim() < like.dim()) sqrt_alpha = sqrt_alpha.unsqueeze(-1);
  while (sqrt_one_minus.dim() < like.dim()) sqrt_one_minus = sqrt_one_minus.unsqueeze(-1);
  return {sqrt_alpha, sqrt_one_minus};
}

}  // namespace

at::Tensor DdpmTrainingSchedule::AddNoise(const at::Tensor& original_samples,
                                          const at::Tensor& noise,
                                          const at::Tensor& timesteps) const {
  auto [sqrt_alpha, sqrt_one_minus] = Coefficients(alphas_cumprod_, original_samples, timesteps);
  return sqrt_alpha * original_samples + sqrt_one_minus * noise;
}

at::Tensor DdpmTrainingSchedule::GetVelocity(const at::Tensor& sample, const at::Tensor& noise,
                                             const at::Tensor& timesteps) const {
  auto [sqrt_alpha, sqrt_one_minus] = Coefficients(alphas_cumprod_, sample, timesteps);
  return sqrt_alpha * noise - sqrt_one_minus * sample;
}

absl::StatusOr<at::Tensor> DdpmTrainingSchedule::Target(const at::Tensor& latents,
                                                        const at::Tensor& noise,
                                                        const at::Tensor& timesteps) const {
  if (prediction_type_ == "epsilon") return noise;
  if (prediction_type_ == "v_prediction") return GetVelocity(latents, noise, timesteps);
  if (prediction_type_ == "sample") return latents;
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported prediction_type '", prediction_type_, "'"));
}

at::Tensor DdpmTrainingSchedule::Snr(const at::Tensor& timesteps) const {
  // diffusers' training_utils.compute_snr: (alpha / sigma) ** 2 with alpha = sqrt(a_t),
  // sigma = sqrt(1 - a_t).
  at::Tensor ac = alphas_cumprod_.to(timesteps.device());
  at::Tensor t = timesteps.to(at::kLong);
  at::Tensor alpha = ac.pow(0.5).index({t}).to(at::kFloat);
  at::Tensor sigma = (1.0 - ac).pow(0.5).index({t}).to(at::kFloat);
  return (alpha / sigma).pow(2);
}

}  // namespace dreambooth::diffusion
