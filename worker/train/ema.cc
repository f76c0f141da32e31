#include "worker/train/ema.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace dreambooth::train {

ExponentialMovingAverage::ExponentialMovingAverage(
    std::vector<std::pair<std::string, at::Tensor>> params, double decay)
    : params_(std::move(params)), decay_(decay) {
  at::NoGradGuard no_grad;
  for (const auto& [name, p] : params_) shadow_.push_back(p.detach().to(at::kFloat).clone());
}

double ExponentialMovingAverage::NextDecay() const {
  // diffusers: step = optimization_step - 1 (after incrementing); 0 => decay 0 (copy).
  const double step = static_cast<double>(num_updates_);
  if (step <= 0) return 0.0;
  return std::min(decay_, (1.0 + step) / (10.0 + step));
}

void ExponentialMovingAverage::Update() {
  at::NoGradGuard no_grad;
  const double decay = NextDecay();
  for (size_t i = 0; i < params_.size(); ++i) {
    shadow_[i].sub_((shadow_[i] - params_[i].second.detach().to(at::kFloat)) * (1.0 - decay));
  }
  ++num_updates_;
}

diffusion::TensorMap ExponentialMovingAverage::StateDict() const {
  diffusion::TensorMap out;
  for (size_t i = 0; i < params_.size(); ++i) out[params_[i].first] = shadow_[i].to(at::kCPU);
  return out;
}

absl::Status ExponentialMovingAverage::LoadStateDict(const diffusion::TensorMap& state,
                                                     int64_t num_updates) {
  if (state.size() != params_.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("EMA state holds ", state.size(), " tensors, the model ", params_.size()));
  }
  std::vector<at::Tensor> next;
  for (size_t i = 0; i < params_.size(); ++i) {
    auto it = state.find(params_[i].first);
    if (it == state.end() || !it->second.sizes().equals(params_[i].second.sizes())) {
      return absl::InvalidArgumentError(
          absl::StrCat("EMA state: missing or mis-shaped '", params_[i].first, "'"));
    }
    next.push_back(it->second.to(shadow_[i].options()).clone());
  }
  shadow_ = std::move(next);
  num_updates_ = num_updates;
  return absl::OkStatus();
}

void ExponentialMovingAverage::CopyToParams() {
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) params_[i].second.copy_(shadow_[i]);
}

}  // namespace dreambooth::train
