// PNDMScheduler of diffusers 0.25.1 with skip_prk_steps (PLMS: pseudo linear multistep, Liu et al.
// 2022), the sampler Stable Diffusion 1.x/2.x ship in their scheduler_config.json and NeMo's
// default for regularization images. The Runge-Kutta warm-up (skip_prk_steps false) is refused.
#include <deque>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/diffusion/schedulers/scheduler.h"
#include "worker/diffusion/schedulers/scheduler_internal.h"

namespace dreambooth::diffusion::scheduler_internal {
namespace {

// Not thread-safe (one sampling run).
class PndmScheduler : public DiscreteTimestepScheduler {
 public:
  PndmScheduler(SchedulerConfig config, at::Tensor alphas_cumprod)
      : DiscreteTimestepScheduler(std::move(config), std::move(alphas_cumprod)) {
    final_alpha_cumprod_ =
        config_.set_alpha_to_one ? at::scalar_tensor(1.0, at::kFloat) : alphas_cumprod_[0];
  }

  std::string name() const override { return "pndm"; }

  // diffusers' step_plms: combines the last (up to four) model outputs with the Adams-Bashforth
  // weights and moves the sample one spaced step.
  absl::StatusOr<SchedulerStepOutput> Step(const at::Tensor& model_output,
                                           const at::Tensor& timestep, const at::Tensor& sample,
                                           at::Generator*) override {
    if (num_inference_steps_ == 0) {
      return absl::FailedPreconditionError("PNDM: call SetTimesteps before Step");
    }
    const int64_t step_ratio = config_.num_train_timesteps / num_inference_steps_;
    int64_t t = static_cast<int64_t>(timestep.item<double>());
    if (t < 0 || t >= config_.num_train_timesteps) {
      return absl::InvalidArgumentError(absl::StrCat("PNDM: timestep ", t, " out of range"));
    }
    int64_t prev_t = t - step_ratio;
    if (counter_ != 1) {
      if (ets_.size() > 3) ets_.pop_front();
      ets_.push_back(model_output);
    } else {
      // The duplicated timestep redoes the first step from the same starting sample.
      prev_t = t;
      t = t + step_ratio;
      if (t >= config_.num_train_timesteps) {
        return absl::InvalidArgumentError(absl::StrCat("PNDM: timestep ", t, " out of range"));
      }
    }
    at::Tensor x = sample;
    at::Tensor e;
    if (ets_.size() == 1 && counter_ == 0) {
      e = model_output;
      cur_sample_ = sample;
    } else if (ets_.size() == 1 && counter_ == 1) {
      e = (model_output + ets_.back()) / 2;
      x = cur_sample_;
      cur_sample_ = at::Tensor();
    } else if (ets_.size() == 2) {
      e = (3 * ets_[1] - ets_[0]) / 2;
    } else if (ets_.size() == 3) {
      e = (23 * ets_[2] - 16 * ets_[1] + 5 * ets_[0]) / 12;
    } else {
      e = (1.0 / 24) * (55 * ets_[3] - 59 * ets_[2] + 37 * ets_[1] - 9 * ets_[0]);
    }
    ASSIGN_OR_RETURN(at::Tensor prev_sample, PrevSample(x, t, prev_t, e));
    ++counter_;
    return SchedulerStepOutput{prev_sample, at::Tensor()};
  }

 protected:
  // The spaced timesteps with the second one repeated: N = 50 -> 981, 961, 961, 941, ..., 1
  // (N + 1 UNet calls; the first two together make the method's first, second-order step).
  std::vector<int64_t> Arrange(std::vector<int64_t> spaced) override {
    std::vector<int64_t> plms;
    for (size_t i = 0; i < spaced.size(); ++i) {
      plms.push_back(spaced[i]);
      if (i == 1) plms.push_back(spaced[i]);
    }
    return plms;
  }

  void Reset() override {
    ets_.clear();
    counter_ = 0;
    cur_sample_ = at::Tensor();
  }

 private:
  // Formula (9) of the PNDM paper: x_{t-1} from x_t and the combined epsilon.
  absl::StatusOr<at::Tensor> PrevSample(const at::Tensor& sample, int64_t t, int64_t prev_t,
                                        at::Tensor model_output) const {
    at::Tensor alpha_prod_t = alphas_cumprod_[t];
    at::Tensor alpha_prod_t_prev = prev_t >= 0 ? alphas_cumprod_[prev_t] : final_alpha_cumprod_;
    at::Tensor beta_prod_t = 1 - alpha_prod_t;
    at::Tensor beta_prod_t_prev = 1 - alpha_prod_t_prev;
    if (config_.prediction_type == "v_prediction") {
      model_output = alpha_prod_t.pow(0.5) * model_output + beta_prod_t.pow(0.5) * sample;
    } else if (config_.prediction_type != "epsilon") {
      return absl::InvalidArgumentError(absl::StrCat("PNDM: prediction_type '",
                                                     config_.prediction_type,
                                                     "' is not supported (epsilon, v_prediction)"));
    }
    at::Tensor sample_coeff = (alpha_prod_t_prev / alpha_prod_t).pow(0.5);
    at::Tensor denom = alpha_prod_t * beta_prod_t_prev.pow(0.5) +
                       (alpha_prod_t * beta_prod_t * alpha_prod_t_prev).pow(0.5);
    return sample_coeff * sample - (alpha_prod_t_prev - alpha_prod_t) * model_output / denom;
  }

  at::Tensor final_alpha_cumprod_;
  std::deque<at::Tensor> ets_;  // the last <= 4 model outputs
  int64_t counter_ = 0;         // Step calls since SetTimesteps
  at::Tensor cur_sample_;       // the sample the first step started from
};

}  // namespace

absl::StatusOr<std::unique_ptr<Scheduler>> MakePndm(const SchedulerConfig& config) {
  // A config of another class (from_config) has no say in skip_prk_steps: "pndm" means PLMS.
  if (config.class_name == "PNDMScheduler" && !config.skip_prk_steps) {
    return absl::InvalidArgumentError(
        "PNDM: only skip_prk_steps=true (PLMS, what Stable Diffusion ships) is supported; the "
        "Runge-Kutta warm-up of skip_prk_steps=false is not implemented (use ddim or dpmpp_2m)");
  }
  ASSIGN_OR_RETURN(at::Tensor betas, ComputeBetas(config));
  at::Tensor alphas_cumprod = at::cumprod(1.0 - betas, 0);
  return std::unique_ptr<Scheduler>(new PndmScheduler(config, std::move(alphas_cumprod)));
}

}  // namespace dreambooth::diffusion::scheduler_internal
