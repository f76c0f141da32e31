// EulerDiscreteScheduler and EulerAncestralDiscreteScheduler of diffusers 0.25.1 (Karras et al.
// 2022 / k-diffusion): float timesteps, sigmas interpolated linearly from the training table.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/diffusion/schedulers/scheduler.h"
#include "worker/diffusion/schedulers/scheduler_internal.h"
#include "worker/diffusion/schedulers/scheduler_numpy.h"

namespace dreambooth::diffusion::scheduler_internal {
namespace {

// Not thread-safe (one sampling run).
class EulerScheduler : public Scheduler {
 public:
  EulerScheduler(SchedulerConfig config, bool ancestral, at::Tensor alphas_cumprod)
      : config_(std::move(config)),
        ancestral_(ancestral),
        spacing_(config_.SpacingOr("linspace")),
        alphas_cumprod_(std::move(alphas_cumprod)) {
    // Before SetTimesteps: every training timestep, like diffusers' constructor.
    at::Tensor sigmas = TrainingSigmas(alphas_cumprod_).flip({0});
    timesteps_ =
        at::linspace(0, config_.num_train_timesteps - 1, config_.num_train_timesteps, at::kDouble)
            .flip({0})
            .to(at::kFloat);
    sigmas_ = at::cat({sigmas, at::zeros({1}, at::kFloat)});
  }

  std::string name() const override { return ancestral_ ? "euler_ancestral" : "euler"; }

  absl::Status SetTimesteps(int64_t num_inference_steps) override {
    RETURN_IF_ERROR(CheckStepCount(num_inference_steps, config_.num_train_timesteps));
    const int64_t train = config_.num_train_timesteps;
    std::vector<float> timesteps;
    if (spacing_ == "linspace") {
      std::vector<double> points = numpy_compat::Linspace(0, train - 1, num_inference_steps);
      for (auto it = points.rbegin(); it != points.rend(); ++it) {
        timesteps.push_back(static_cast<float>(*it));
      }
    } else if (spacing_ == "leading") {
      const int64_t step_ratio = train / num_inference_steps;
      for (int64_t i = num_inference_steps - 1; i >= 0; --i) {
        timesteps.push_back(static_cast<float>(i * step_ratio) +
                            static_cast<float>(config_.steps_offset));
      }
    } else if (spacing_ == "trailing") {
      const double step_ratio = static_cast<double>(train) / num_inference_steps;
      for (double v : numpy_compat::Arange(static_cast<double>(train), 0, -step_ratio)) {
        timesteps.push_back(static_cast<float>(numpy_compat::RoundHalfEven(v)) - 1.0f);
      }
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("Euler: timestep_spacing '", spacing_,
                       "' is not supported (linspace, leading, trailing)"));
    }
    if (config_.interpolation_type != "linear") {
      return absl::UnimplementedError(absl::StrCat("Euler: interpolation_type '",
                                                   config_.interpolation_type,
                                                   "' is not supported (linear)"));
    }
    if (config_.use_karras_sigmas) {
      return absl::UnimplementedError("Euler: use_karras_sigmas is not supported");
    }
    if (!ancestral_ && config_.timestep_type != "discrete") {
      return absl::UnimplementedError("Euler: only timestep_type 'discrete' is supported");
    }
    at::Tensor table = TrainingSigmas(alphas_cumprod_).contiguous();
    std::vector<float> fp(table.data_ptr<float>(), table.data_ptr<float>() + table.numel());
    std::vector<double> x(timesteps.begin(), timesteps.end());
    std::vector<double> interpolated = numpy_compat::InterpOnIndex(x, fp);
    std::vector<float> sigmas(interpolated.begin(), interpolated.end());
    sigmas.push_back(0.0f);
    timesteps_ = at::tensor(timesteps, at::kFloat);
    sigmas_ = at::tensor(sigmas, at::kFloat);
    step_index_ = -1;
    return absl::OkStatus();
  }

  const at::Tensor& timesteps() const override { return timesteps_; }
  // The sigma table of the current schedule (N + 1 values, the last 0), float32 CPU.
  at::Tensor sigmas() const override { return sigmas_; }

  double init_noise_sigma() const override {
    at::Tensor max_sigma = sigmas_.max();
    if (spacing_ == "linspace" || spacing_ == "trailing") return max_sigma.item<float>();
    return (max_sigma.pow(2) + 1).pow(0.5).item<float>();
  }

  absl::StatusOr<at::Tensor> ScaleModelInput(const at::Tensor& sample,
                                             const at::Tensor& timestep) override {
    if (step_index_ < 0) step_index_ = InitStepIndex(timesteps_, timestep);
    if (step_index_ < 0 || step_index_ >= sigmas_.size(0)) {
      return absl::InvalidArgumentError(
          absl::StrCat(name(), ": timestep ", timestep.item<double>(), " is not in the schedule"));
    }
    at::Tensor sigma = sigmas_[step_index_];
    return sample / (sigma.pow(2) + 1).pow(0.5);
  }

  absl::StatusOr<SchedulerStepOutput> Step(const at::Tensor& model_output,
                                           const at::Tensor& timestep, const at::Tensor& in_sample,
                                           at::Generator* generator) override {
    if (step_index_ < 0) step_index_ = InitStepIndex(timesteps_, timestep);
    if (step_index_ < 0 || step_index_ + 1 >= sigmas_.size(0)) {
      return absl::InvalidArgumentError(
          absl::StrCat(name(), ": timestep ", timestep.item<double>(), " is not in the schedule"));
    }
    at::Tensor sample = in_sample.to(at::kFloat);
    at::Tensor sigma = sigmas_[step_index_];
    at::Tensor pred_original_sample;
    if (config_.prediction_type == "epsilon") {
      // sigma_hat = sigma * (gamma + 1) with gamma = 0 (s_churn = 0).
      pred_original_sample = sample - sigma * model_output;
    } else if (config_.prediction_type == "v_prediction") {
      pred_original_sample =
          model_output * (-sigma / (sigma.pow(2) + 1).pow(0.5)) + (sample / (sigma.pow(2) + 1));
    } else if (config_.prediction_type == "sample" && !ancestral_) {
      pred_original_sample = model_output;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(name(), ": unsupported prediction_type '", config_.prediction_type, "'"));
    }
    at::Tensor prev_sample;
    if (!ancestral_) {
      // diffusers draws (and discards) noise even when s_churn = 0; draw it too so a shared
      // generator stays in step with upstream.
      at::Tensor unused_noise = RandnLike(model_output, generator);
      (void)unused_noise;
      at::Tensor derivative = (sample - pred_original_sample) / sigma;
      at::Tensor dt = sigmas_[step_index_ + 1] - sigma;
      prev_sample = sample + derivative * dt;
    } else {
      at::Tensor sigma_from = sigmas_[step_index_];
      at::Tensor sigma_to = sigmas_[step_index_ + 1];
      at::Tensor sigma_up =
          (sigma_to.pow(2) * (sigma_from.pow(2) - sigma_to.pow(2)) / sigma_from.pow(2)).pow(0.5);
      at::Tensor sigma_down = (sigma_to.pow(2) - sigma_up.pow(2)).pow(0.5);
      at::Tensor derivative = (sample - pred_original_sample) / sigma;
      at::Tensor dt = sigma_down - sigma;
      prev_sample = sample + derivative * dt;
      at::Tensor noise = RandnLike(model_output, generator);
      prev_sample = prev_sample + noise * sigma_up;
    }
    prev_sample = prev_sample.to(model_output.scalar_type());
    ++step_index_;
    return SchedulerStepOutput{prev_sample, pred_original_sample};
  }

 private:
  const SchedulerConfig config_;
  const bool ancestral_;
  const std::string spacing_;
  const at::Tensor alphas_cumprod_;
  at::Tensor timesteps_;  // float32
  at::Tensor sigmas_;     // float32, N + 1
  int64_t step_index_ = -1;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Scheduler>> MakeEuler(const SchedulerConfig& config,
                                                     bool ancestral) {
  ASSIGN_OR_RETURN(at::Tensor betas, ComputeBetas(config));
  at::Tensor alphas_cumprod = at::cumprod(1.0 - betas, 0);
  if (config.rescale_betas_zero_snr) {
    // Close to 0 without being 0 so the first sigma is finite (diffusers uses 2**-24).
    alphas_cumprod[-1] = std::ldexp(1.0, -24);
  }
  return std::unique_ptr<Scheduler>(new EulerScheduler(config, ancestral, alphas_cumprod));
}

}  // namespace dreambooth::diffusion::scheduler_internal
