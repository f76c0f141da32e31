// DDIMScheduler of diffusers 0.25.1 (Song et al. 2020), with eta.
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/diffusion/schedulers/scheduler.h"
#include "worker/diffusion/schedulers/scheduler_internal.h"

namespace dreambooth::diffusion::scheduler_internal {
namespace {

// Not thread-safe (one sampling run).
class DdimScheduler : public DiscreteTimestepScheduler {
 public:
  DdimScheduler(SchedulerConfig config, double eta, at::Tensor alphas_cumprod)
      : DiscreteTimestepScheduler(std::move(config), std::move(alphas_cumprod)), eta_(eta) {
    final_alpha_cumprod_ =
        config_.set_alpha_to_one ? at::scalar_tensor(1.0, at::kFloat) : alphas_cumprod_[0];
  }

  std::string name() const override { return "ddim"; }

  absl::StatusOr<SchedulerStepOutput> Step(const at::Tensor& model_output,
                                           const at::Tensor& timestep, const at::Tensor& sample,
                                           at::Generator* generator) override {
    if (num_inference_steps_ == 0) {
      return absl::FailedPreconditionError("DDIM: call SetTimesteps before Step");
    }
    const int64_t t = timestep.item<double>();
    if (t < 0 || t >= config_.num_train_timesteps) {
      return absl::InvalidArgumentError(absl::StrCat("DDIM: timestep ", t, " out of range"));
    }
    const int64_t prev_t = t - config_.num_train_timesteps / num_inference_steps_;
    at::Tensor alpha_prod_t = alphas_cumprod_[t];
    at::Tensor alpha_prod_t_prev = prev_t >= 0 ? alphas_cumprod_[prev_t] : final_alpha_cumprod_;
    at::Tensor beta_prod_t = 1 - alpha_prod_t;

    at::Tensor pred_original_sample;
    at::Tensor pred_epsilon;
    if (config_.prediction_type == "epsilon") {
      pred_original_sample = (sample - beta_prod_t.pow(0.5) * model_output) / alpha_prod_t.pow(0.5);
      pred_epsilon = model_output;
    } else if (config_.prediction_type == "sample") {
      pred_original_sample = model_output;
      pred_epsilon = (sample - alpha_prod_t.pow(0.5) * pred_original_sample) / beta_prod_t.pow(0.5);
    } else if (config_.prediction_type == "v_prediction") {
      pred_original_sample = alpha_prod_t.pow(0.5) * sample - beta_prod_t.pow(0.5) * model_output;
      pred_epsilon = alpha_prod_t.pow(0.5) * model_output + beta_prod_t.pow(0.5) * sample;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("DDIM: unsupported prediction_type '", config_.prediction_type, "'"));
    }
    pred_original_sample = ClipOrThreshold(pred_original_sample, config_);

    at::Tensor beta_prod_t_prev = 1 - alpha_prod_t_prev;
    at::Tensor variance = (beta_prod_t_prev / beta_prod_t) * (1 - alpha_prod_t / alpha_prod_t_prev);
    at::Tensor std_dev_t = eta_ * variance.pow(0.5);
    at::Tensor pred_sample_direction =
        (1 - alpha_prod_t_prev - std_dev_t.pow(2)).pow(0.5) * pred_epsilon;
    at::Tensor prev_sample =
        alpha_prod_t_prev.pow(0.5) * pred_original_sample + pred_sample_direction;
    if (eta_ > 0) {
      prev_sample = prev_sample + std_dev_t * RandnLike(model_output, generator);
    }
    return SchedulerStepOutput{prev_sample, pred_original_sample};
  }

  std::optional<DdimCoefficients> DeterministicDdimCoefficients(
      const at::Tensor& timestep) const override {
    const bool v = config_.prediction_type == "v_prediction";
    if (num_inference_steps_ == 0 || eta_ != 0 || config_.clip_sample || config_.thresholding ||
        (!v && config_.prediction_type != "epsilon")) {
      return std::nullopt;
    }
    const int64_t t = timestep.item<double>();
    if (t < 0 || t >= config_.num_train_timesteps) return std::nullopt;
    const int64_t prev_t = t - config_.num_train_timesteps / num_inference_steps_;
    DdimCoefficients c;
    c.alpha_prod_t = alphas_cumprod_[t].item<double>();
    c.alpha_prod_prev =
        (prev_t >= 0 ? alphas_cumprod_[prev_t] : final_alpha_cumprod_).item<double>();
    c.v_prediction = v;
    return c;
  }

 private:
  const double eta_;
  at::Tensor final_alpha_cumprod_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Scheduler>> MakeDdim(const SchedulerConfig& config,
                                                    const SchedulerOptions& options) {
  if (options.eta < 0) return absl::InvalidArgumentError("DDIM: eta must be >= 0");
  ASSIGN_OR_RETURN(at::Tensor betas, ComputeBetas(config));
  at::Tensor alphas_cumprod = at::cumprod(1.0 - betas, 0);
  return std::unique_ptr<Scheduler>(
      new DdimScheduler(config, options.eta, std::move(alphas_cumprod)));
}

}  // namespace dreambooth::diffusion::scheduler_internal
