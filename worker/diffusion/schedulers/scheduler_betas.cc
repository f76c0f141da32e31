// The beta schedules of diffusers 0.25.1 (ComputeBetas of scheduler.h).
#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "worker/diffusion/schedulers/scheduler.h"

namespace dreambooth::diffusion {
namespace {

// Glide's cosine schedule (diffusers betas_for_alpha_bar), in float64 then float32.
at::Tensor CosineBetas(int64_t n) {
  auto alpha_bar = [](double t) {
    const double c = std::cos((t + 0.008) / 1.008 * M_PI / 2);
    return c * c;
  };
  std::vector<double> betas;
  for (int64_t i = 0; i < n; ++i) {
    const double t1 = static_cast<double>(i) / n;
    const double t2 = static_cast<double>(i + 1) / n;
    betas.push_back(std::min(1 - alpha_bar(t2) / alpha_bar(t1), 0.999));
  }
  return at::tensor(betas, at::kDouble).to(at::kFloat);
}

// rescale_zero_terminal_snr of diffusers (arXiv 2305.08891, algorithm 1).
at::Tensor RescaleZeroTerminalSnr(const at::Tensor& betas) {
  at::Tensor alphas = 1.0 - betas;
  at::Tensor alphas_cumprod = at::cumprod(alphas, 0);
  at::Tensor alphas_bar_sqrt = alphas_cumprod.sqrt();
  at::Tensor first = alphas_bar_sqrt[0].clone();
  at::Tensor last = alphas_bar_sqrt[-1].clone();
  alphas_bar_sqrt -= last;
  alphas_bar_sqrt *= first / (first - last);
  at::Tensor alphas_bar = alphas_bar_sqrt.pow(2);
  at::Tensor rescaled = alphas_bar.slice(0, 1) / alphas_bar.slice(0, 0, -1);
  rescaled = at::cat({alphas_bar.slice(0, 0, 1), rescaled});
  return 1 - rescaled;
}

}  // namespace

absl::StatusOr<at::Tensor> ComputeBetas(const SchedulerConfig& config) {
  const int64_t n = config.num_train_timesteps;
  at::Tensor betas;
  if (!config.trained_betas.empty()) {
    betas = at::tensor(config.trained_betas, at::kDouble).to(at::kFloat);
  } else if (config.beta_schedule == "linear") {
    betas = at::linspace(config.beta_start, config.beta_end, n, at::kFloat);
  } else if (config.beta_schedule == "scaled_linear") {
    betas = at::linspace(std::pow(config.beta_start, 0.5), std::pow(config.beta_end, 0.5), n,
                         at::kFloat)
                .pow(2);
  } else if (config.beta_schedule == "squaredcos_cap_v2") {
    betas = CosineBetas(n);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("scheduler config: beta_schedule '", config.beta_schedule,
                     "' is not supported (linear, scaled_linear, squaredcos_cap_v2)"));
  }
  if (config.rescale_betas_zero_snr) betas = RescaleZeroTerminalSnr(betas);
  return betas;
}

}  // namespace dreambooth::diffusion
