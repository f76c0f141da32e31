// CreateScheduler and the helpers shared by the scheduler implementations.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "worker/diffusion/schedulers/scheduler.h"
#include "worker/diffusion/schedulers/scheduler_internal.h"
#include "worker/diffusion/schedulers/scheduler_numpy.h"
#include "worker/diffusion/torch_status.h"

namespace dreambooth::diffusion {
namespace scheduler_internal {

absl::StatusOr<std::vector<int64_t>> DiscreteTimesteps(const std::string& spacing,
                                                       int64_t num_train_timesteps,
                                                       int64_t num_inference_steps,
                                                       int64_t steps_offset) {
  std::vector<int64_t> out;
  if (spacing == "linspace") {
    std::vector<double> points = numpy_compat::Linspace(
        0, static_cast<double>(num_train_timesteps - 1), num_inference_steps);
    for (auto it = points.rbegin(); it != points.rend(); ++it) {
      out.push_back(static_cast<int64_t>(numpy_compat::RoundHalfEven(*it)));
    }
  } else if (spacing == "leading") {
    const int64_t step_ratio = num_train_timesteps / num_inference_steps;
    for (int64_t i = num_inference_steps - 1; i >= 0; --i) {
      out.push_back(i * step_ratio + steps_offset);
    }
  } else if (spacing == "trailing") {
    const double step_ratio =
        static_cast<double>(num_train_timesteps) / static_cast<double>(num_inference_steps);
    for (double v :
         numpy_compat::Arange(static_cast<double>(num_train_timesteps), 0, -step_ratio)) {
      out.push_back(static_cast<int64_t>(numpy_compat::RoundHalfEven(v)) - 1);
    }
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "timestep_spacing '", spacing, "' is not supported (leading, trailing, linspace)"));
  }
  return out;
}

at::Tensor TrainingSigmas(const at::Tensor& alphas_cumprod) {
  return ((1 - alphas_cumprod) / alphas_cumprod).pow(0.5);
}

int64_t InitStepIndex(const at::Tensor& timesteps, const at::Tensor& timestep) {
  at::Tensor t = timestep.to(at::kCPU).to(timesteps.scalar_type()).reshape({});
  at::Tensor candidates = (timesteps == t).nonzero();
  if (candidates.size(0) == 0) return -1;
  return candidates[candidates.size(0) > 1 ? 1 : 0][0].item<int64_t>();
}

at::Tensor RandnLike(const at::Tensor& like, at::Generator* generator) {
  c10::optional<at::Generator> gen;
  if (generator != nullptr) gen = *generator;
  const at::ScalarType dtype = (like.scalar_type() == at::kDouble) ? at::kDouble : at::kFloat;
  at::Tensor noise = at::randn(like.sizes(), gen, at::TensorOptions().dtype(dtype));
  return noise.to(like.device(), like.scalar_type());
}

at::Tensor ClipOrThreshold(const at::Tensor& x0, const SchedulerConfig& config) {
  if (config.thresholding) {
    const at::ScalarType dtype = x0.scalar_type();
    at::Tensor sample = x0;
    if (dtype != at::kFloat && dtype != at::kDouble) sample = sample.to(at::kFloat);
    const int64_t batch = sample.size(0);
    at::Tensor flat = sample.reshape({batch, -1});
    at::Tensor s = at::quantile(flat.abs(), config.dynamic_thresholding_ratio, 1);
    s = at::clamp(s, 1, config.sample_max_value).unsqueeze(1);
    flat = at::clamp(flat, -s, s) / s;
    return flat.reshape(x0.sizes()).to(dtype);
  }
  if (config.clip_sample) {
    return x0.clamp(-config.clip_sample_range, config.clip_sample_range);
  }
  return x0;
}

absl::Status CheckStepCount(int64_t num_inference_steps, int64_t num_train_timesteps) {
  if (num_inference_steps < 1 || num_inference_steps > num_train_timesteps) {
    return absl::InvalidArgumentError(absl::StrCat("num_inference_steps must be in [1, ",
                                                   num_train_timesteps, "], got ",
                                                   num_inference_steps));
  }
  return absl::OkStatus();
}

DiscreteTimestepScheduler::DiscreteTimestepScheduler(SchedulerConfig config,
                                                     at::Tensor alphas_cumprod)
    : config_(std::move(config)), alphas_cumprod_(std::move(alphas_cumprod)) {
  timesteps_ = at::arange(config_.num_train_timesteps - 1, -1, -1, at::kLong);
}

absl::Status DiscreteTimestepScheduler::SetTimesteps(int64_t num_inference_steps) {
  RETURN_IF_ERROR(CheckStepCount(num_inference_steps, config_.num_train_timesteps));
  ASSIGN_OR_RETURN(std::vector<int64_t> spaced,
                   DiscreteTimesteps(config_.SpacingOr("leading"), config_.num_train_timesteps,
                                     num_inference_steps, config_.steps_offset));
  num_inference_steps_ = num_inference_steps;
  timesteps_ = at::tensor(Arrange(std::move(spaced)), at::kLong);
  Reset();
  return absl::OkStatus();
}

}  // namespace scheduler_internal

std::vector<std::string> SchedulerNames() {
  return {"ddim", "ddpm", "dpmpp_2m", "euler", "euler_ancestral", "pndm"};
}

absl::StatusOr<std::unique_ptr<Scheduler>> CreateScheduler(const std::string& name,
                                                           const SchedulerConfig& config,
                                                           const SchedulerOptions& options) {
  try {
    if (name == "ddim") return scheduler_internal::MakeDdim(config, options);
    if (name == "ddpm") return scheduler_internal::MakeDdpm(config);
    if (name == "euler") return scheduler_internal::MakeEuler(config, /*ancestral=*/false);
    if (name == "euler_ancestral") return scheduler_internal::MakeEuler(config, true);
    if (name == "dpmpp_2m") return scheduler_internal::MakeDpmSolverMultistep(config);
    if (name == "pndm") return scheduler_internal::MakePndm(config);
  } catch (const c10::Error& e) {
    return StatusFromException(e, absl::StrCat("cannot create scheduler ", name));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown scheduler '", name, "' (known: ", absl::StrJoin(SchedulerNames(), ", "), ")"));
}

}  // namespace dreambooth::diffusion
