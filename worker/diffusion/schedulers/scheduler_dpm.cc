// DPMSolverMultistepScheduler of diffusers 0.25.1 (Lu et al. 2022), as "dpmpp_2m":
// algorithm dpmsolver++ (or dpmsolver), solver order 1-3, midpoint or heun second-order update,
// lower-order final steps for short schedules (< 15 steps).
#include <array>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/diffusion/schedulers/scheduler.h"
#include "worker/diffusion/schedulers/scheduler_internal.h"
#include "worker/diffusion/schedulers/scheduler_numpy.h"

namespace dreambooth::diffusion::scheduler_internal {
namespace {

// Not thread-safe (one sampling run).
class DpmSolverMultistepScheduler : public Scheduler {
 public:
  DpmSolverMultistepScheduler(SchedulerConfig config, at::Tensor alphas_cumprod)
      : config_(std::move(config)), alphas_cumprod_(std::move(alphas_cumprod)) {
    sigmas_ = TrainingSigmas(alphas_cumprod_);
    timesteps_ =
        at::linspace(0, config_.num_train_timesteps - 1, config_.num_train_timesteps, at::kDouble)
            .flip({0})
            .to(at::kLong);
    model_outputs_.assign(config_.solver_order, at::Tensor());
  }

  std::string name() const override { return "dpmpp_2m"; }

  absl::Status SetTimesteps(int64_t num_inference_steps) override {
    RETURN_IF_ERROR(CheckStepCount(num_inference_steps, config_.num_train_timesteps));
    if (config_.use_karras_sigmas) {
      return absl::UnimplementedError("DPM-Solver: use_karras_sigmas is not supported");
    }
    // lambda_min_clipped = -inf: nothing is clipped, last_timestep = num_train_timesteps.
    const int64_t last = config_.num_train_timesteps;
    const std::string spacing = config_.SpacingOr("linspace");
    std::vector<int64_t> timesteps;
    if (spacing == "linspace") {
      std::vector<double> points = numpy_compat::Linspace(0, last - 1, num_inference_steps + 1);
      for (int64_t i = num_inference_steps; i >= 1; --i) {
        timesteps.push_back(static_cast<int64_t>(numpy_compat::RoundHalfEven(points[i])));
      }
    } else if (spacing == "leading") {
      const int64_t step_ratio = last / (num_inference_steps + 1);
      for (int64_t i = num_inference_steps; i >= 1; --i) {
        timesteps.push_back(i * step_ratio + config_.steps_offset);
      }
    } else if (spacing == "trailing") {
      const double step_ratio = static_cast<double>(config_.num_train_timesteps) /
                                static_cast<double>(num_inference_steps);
      for (double v : numpy_compat::Arange(static_cast<double>(last), 0, -step_ratio)) {
        timesteps.push_back(static_cast<int64_t>(numpy_compat::RoundHalfEven(v)) - 1);
      }
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("DPM-Solver: timestep_spacing '", spacing, "' is not supported"));
    }
    at::Tensor table = TrainingSigmas(alphas_cumprod_).contiguous();
    std::vector<float> fp(table.data_ptr<float>(), table.data_ptr<float>() + table.numel());
    std::vector<double> x(timesteps.begin(), timesteps.end());
    std::vector<double> interpolated = numpy_compat::InterpOnIndex(x, fp);
    std::vector<float> sigmas(interpolated.begin(), interpolated.end());
    sigmas.push_back(table[0].item<float>());
    sigmas_ = at::tensor(sigmas, at::kFloat);
    timesteps_ = at::tensor(timesteps, at::kLong);
    model_outputs_.assign(config_.solver_order, at::Tensor());
    lower_order_nums_ = 0;
    step_index_ = -1;
    return absl::OkStatus();
  }

  const at::Tensor& timesteps() const override { return timesteps_; }
  at::Tensor sigmas() const override { return sigmas_; }
  double init_noise_sigma() const override { return 1.0; }
  absl::StatusOr<at::Tensor> ScaleModelInput(const at::Tensor& sample, const at::Tensor&) override {
    return sample;
  }

  absl::StatusOr<SchedulerStepOutput> Step(const at::Tensor& model_output,
                                           const at::Tensor& timestep, const at::Tensor& sample,
                                           at::Generator* generator) override {
    (void)generator;  // only the SDE variants draw noise; they are not offered here
    if (step_index_ < 0) {
      step_index_ = InitStepIndex(timesteps_, timestep);
      if (step_index_ < 0) step_index_ = timesteps_.size(0) - 1;
    }
    const int64_t n = timesteps_.size(0);
    if (step_index_ >= n) return absl::FailedPreconditionError("DPM-Solver: schedule exhausted");
    const bool lower_order_final =
        step_index_ == n - 1 && (config_.euler_at_final || (config_.lower_order_final && n < 15));
    const bool lower_order_second = step_index_ == n - 2 && config_.lower_order_final && n < 15;

    ASSIGN_OR_RETURN(at::Tensor converted, ConvertModelOutput(model_output, sample));
    for (int64_t i = 0; i + 1 < config_.solver_order; ++i)
      model_outputs_[i] = model_outputs_[i + 1];
    model_outputs_.back() = converted;

    at::Tensor prev_sample;
    if (config_.solver_order == 1 || lower_order_nums_ < 1 || lower_order_final) {
      prev_sample = FirstOrder(converted, sample);
    } else if (config_.solver_order == 2 || lower_order_nums_ < 2 || lower_order_second) {
      prev_sample = SecondOrder(sample);
    } else {
      prev_sample = ThirdOrder(sample);
    }
    if (lower_order_nums_ < config_.solver_order) ++lower_order_nums_;
    ++step_index_;
    at::Tensor pred_original_sample;
    if (config_.algorithm_type == "dpmsolver++") pred_original_sample = converted;
    return SchedulerStepOutput{prev_sample, pred_original_sample};
  }

 private:
  std::pair<at::Tensor, at::Tensor> AlphaSigma(const at::Tensor& sigma) const {
    at::Tensor alpha_t = 1 / (sigma.pow(2) + 1).pow(0.5);
    return {alpha_t, sigma * alpha_t};
  }
  at::Tensor Lambda(int64_t index) const {
    auto [alpha, sigma] = AlphaSigma(sigmas_[index]);
    return at::log(alpha) - at::log(sigma);
  }

  absl::StatusOr<at::Tensor> ConvertModelOutput(const at::Tensor& model_output,
                                                const at::Tensor& sample) const {
    auto [alpha_t, sigma_t] = AlphaSigma(sigmas_[step_index_]);
    const std::string& type = config_.prediction_type;
    if (config_.algorithm_type == "dpmsolver++") {
      at::Tensor x0;
      if (type == "epsilon") {
        x0 = (sample - sigma_t * model_output) / alpha_t;
      } else if (type == "sample") {
        x0 = model_output;
      } else if (type == "v_prediction") {
        x0 = alpha_t * sample - sigma_t * model_output;
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("DPM-Solver: unsupported prediction_type '", type, "'"));
      }
      if (config_.thresholding) {
        SchedulerConfig threshold = config_;
        x0 = ClipOrThreshold(x0, threshold);
      }
      return x0;
    }
    at::Tensor epsilon;
    if (type == "epsilon") {
      epsilon = model_output;
    } else if (type == "sample") {
      epsilon = (sample - alpha_t * model_output) / sigma_t;
    } else if (type == "v_prediction") {
      epsilon = alpha_t * model_output + sigma_t * sample;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("DPM-Solver: unsupported prediction_type '", type, "'"));
    }
    if (config_.thresholding) {
      at::Tensor x0 = (sample - sigma_t * epsilon) / alpha_t;
      x0 = ClipOrThreshold(x0, config_);
      epsilon = (sample - alpha_t * x0) / sigma_t;
    }
    return epsilon;
  }

  at::Tensor FirstOrder(const at::Tensor& model_output, const at::Tensor& sample) const {
    auto [alpha_t, sigma_t] = AlphaSigma(sigmas_[step_index_ + 1]);
    auto [alpha_s, sigma_s] = AlphaSigma(sigmas_[step_index_]);
    at::Tensor lambda_t = at::log(alpha_t) - at::log(sigma_t);
    at::Tensor lambda_s = at::log(alpha_s) - at::log(sigma_s);
    at::Tensor h = lambda_t - lambda_s;
    if (config_.algorithm_type == "dpmsolver++") {
      return (sigma_t / sigma_s) * sample - (alpha_t * (at::exp(-h) - 1.0)) * model_output;
    }
    return (alpha_t / alpha_s) * sample - (sigma_t * (at::exp(h) - 1.0)) * model_output;
  }

  at::Tensor SecondOrder(const at::Tensor& sample) const {
    auto [alpha_t, sigma_t] = AlphaSigma(sigmas_[step_index_ + 1]);
    auto [alpha_s0, sigma_s0] = AlphaSigma(sigmas_[step_index_]);
    auto [alpha_s1, sigma_s1] = AlphaSigma(sigmas_[step_index_ - 1]);
    at::Tensor lambda_t = at::log(alpha_t) - at::log(sigma_t);
    at::Tensor lambda_s0 = at::log(alpha_s0) - at::log(sigma_s0);
    at::Tensor lambda_s1 = at::log(alpha_s1) - at::log(sigma_s1);
    const at::Tensor& m0 = model_outputs_[model_outputs_.size() - 1];
    const at::Tensor& m1 = model_outputs_[model_outputs_.size() - 2];
    at::Tensor h = lambda_t - lambda_s0;
    at::Tensor h_0 = lambda_s0 - lambda_s1;
    at::Tensor r0 = h_0 / h;
    at::Tensor d0 = m0;
    at::Tensor d1 = (1.0 / r0) * (m0 - m1);
    const bool midpoint = config_.solver_type == "midpoint";
    if (config_.algorithm_type == "dpmsolver++") {
      if (midpoint) {
        return (sigma_t / sigma_s0) * sample - (alpha_t * (at::exp(-h) - 1.0)) * d0 -
               0.5 * (alpha_t * (at::exp(-h) - 1.0)) * d1;
      }
      return (sigma_t / sigma_s0) * sample - (alpha_t * (at::exp(-h) - 1.0)) * d0 +
             (alpha_t * ((at::exp(-h) - 1.0) / h + 1.0)) * d1;
    }
    if (midpoint) {
      return (alpha_t / alpha_s0) * sample - (sigma_t * (at::exp(h) - 1.0)) * d0 -
             0.5 * (sigma_t * (at::exp(h) - 1.0)) * d1;
    }
    return (alpha_t / alpha_s0) * sample - (sigma_t * (at::exp(h) - 1.0)) * d0 -
           (sigma_t * ((at::exp(h) - 1.0) / h - 1.0)) * d1;
  }

  at::Tensor ThirdOrder(const at::Tensor& sample) const {
    auto [alpha_t, sigma_t] = AlphaSigma(sigmas_[step_index_ + 1]);
    auto [alpha_s0, sigma_s0] = AlphaSigma(sigmas_[step_index_]);
    at::Tensor lambda_t = at::log(alpha_t) - at::log(sigma_t);
    at::Tensor lambda_s0 = Lambda(step_index_);
    at::Tensor lambda_s1 = Lambda(step_index_ - 1);
    at::Tensor lambda_s2 = Lambda(step_index_ - 2);
    const size_t k = model_outputs_.size();
    const at::Tensor& m0 = model_outputs_[k - 1];
    const at::Tensor& m1 = model_outputs_[k - 2];
    const at::Tensor& m2 = model_outputs_[k - 3];
    at::Tensor h = lambda_t - lambda_s0;
    at::Tensor r0 = (lambda_s0 - lambda_s1) / h;
    at::Tensor r1 = (lambda_s1 - lambda_s2) / h;
    at::Tensor d1_0 = (1.0 / r0) * (m0 - m1);
    at::Tensor d1_1 = (1.0 / r1) * (m1 - m2);
    at::Tensor d1 = d1_0 + (r0 / (r0 + r1)) * (d1_0 - d1_1);
    at::Tensor d2 = (1.0 / (r0 + r1)) * (d1_0 - d1_1);
    if (config_.algorithm_type == "dpmsolver++") {
      return (sigma_t / sigma_s0) * sample - (alpha_t * (at::exp(-h) - 1.0)) * m0 +
             (alpha_t * ((at::exp(-h) - 1.0) / h + 1.0)) * d1 -
             (alpha_t * ((at::exp(-h) - 1.0 + h) / h.pow(2) - 0.5)) * d2;
    }
    return (alpha_t / alpha_s0) * sample - (sigma_t * (at::exp(h) - 1.0)) * m0 -
           (sigma_t * ((at::exp(h) - 1.0) / h - 1.0)) * d1 -
           (sigma_t * ((at::exp(h) - 1.0 - h) / h.pow(2) - 0.5)) * d2;
  }

  const SchedulerConfig config_;
  const at::Tensor alphas_cumprod_;
  at::Tensor sigmas_;     // float32, N + 1 after SetTimesteps
  at::Tensor timesteps_;  // int64
  std::vector<at::Tensor> model_outputs_;
  int64_t lower_order_nums_ = 0;
  int64_t step_index_ = -1;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Scheduler>> MakeDpmSolverMultistep(const SchedulerConfig& config) {
  if (config.algorithm_type != "dpmsolver++" && config.algorithm_type != "dpmsolver") {
    return absl::UnimplementedError(absl::StrCat("DPM-Solver: algorithm_type '",
                                                 config.algorithm_type,
                                                 "' is not supported (dpmsolver++, dpmsolver)"));
  }
  if (config.solver_type != "midpoint" && config.solver_type != "heun") {
    return absl::InvalidArgumentError(absl::StrCat("DPM-Solver: solver_type '", config.solver_type,
                                                   "' is not supported (midpoint, heun)"));
  }
  if (config.solver_order < 1 || config.solver_order > 3) {
    return absl::InvalidArgumentError("DPM-Solver: solver_order must be 1, 2 or 3");
  }
  ASSIGN_OR_RETURN(at::Tensor betas, ComputeBetas(config));
  return std::unique_ptr<Scheduler>(
      new DpmSolverMultistepScheduler(config, at::cumprod(1.0 - betas, 0)));
}

}  // namespace dreambooth::diffusion::scheduler_internal
