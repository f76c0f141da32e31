#include "worker/train/precision.h"

#include <ATen/autocast_mode.h>
#include <ATen/core/grad_mode.h>

#include <map>
#include <string>

namespace dreambooth::train {
namespace {

bool IsEnabled(at::DeviceType type) { return at::autocast::is_autocast_enabled(type); }

at::ScalarType GetDtype(at::DeviceType type) { return at::autocast::get_autocast_dtype(type); }

void Set(at::DeviceType type, bool enabled, at::ScalarType dtype) {
  at::autocast::set_autocast_enabled(type, enabled);
  at::autocast::set_autocast_dtype(type, dtype);
}

}  // namespace

at::ScalarType ComputeDtype(MixedPrecision precision) {
  switch (precision) {
    case MixedPrecision::kFp16:
      return at::kHalf;
    case MixedPrecision::kBf16:
      return at::kBFloat16;
    case MixedPrecision::kNo:
      break;
  }
  return at::kFloat;
}

AutocastScope::AutocastScope(bool enabled, at::DeviceType device_type, at::ScalarType dtype)
    : active_(enabled), device_type_(device_type) {
  if (!active_) return;
  prev_enabled_ = IsEnabled(device_type_);
  prev_dtype_ = GetDtype(device_type_);
  Set(device_type_, true, dtype);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  Set(device_type_, prev_enabled_, prev_dtype_);
}

bool DynamicLossScaler::Unscale(const std::vector<at::Tensor>& params) const {
  at::NoGradGuard no_grad;
  // Gradients grouped by device: one fused unscale-and-check per device and one host sync in
  // all (GradScaler's _amp_foreach_non_finite_check_and_unscale_).
  std::map<std::string, std::vector<at::Tensor>> by_device;
  for (const at::Tensor& p : params) {
    if (p.grad().defined()) by_device[p.grad().device().str()].push_back(p.mutable_grad());
  }
  at::Tensor any_inf = at::zeros({1}, at::kFloat);
  for (auto& [device, grads] : by_device) {
    const auto on = at::TensorOptions().dtype(at::kFloat).device(grads.front().device());
    at::Tensor found_inf = at::zeros({1}, on);
    at::Tensor inv_scale = at::full({1}, 1.0 / scale_, on);
    at::_amp_foreach_non_finite_check_and_unscale_(grads, found_inf, inv_scale);
    any_inf += found_inf.to(at::kCPU);
  }
  return any_inf.item<float>() == 0.0f;
}

void DynamicLossScaler::Update(bool found_inf) {
  if (found_inf) {
    scale_ *= 0.5;
    growth_tracker_ = 0;
    return;
  }
  if (++growth_tracker_ >= 2000) {
    scale_ *= 2.0;
    growth_tracker_ = 0;
  }
}

double ClipGradNorm(const std::vector<at::Tensor>& params, double max_norm) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> norms;
  std::vector<at::Tensor> grads;
  for (const at::Tensor& p : params) {
    if (!p.grad().defined()) continue;
    grads.push_back(p.mutable_grad());
    norms.push_back(grads.back().norm(2));
  }
  if (grads.empty()) return 0.0;
  at::Tensor total = norms.size() == 1 ? norms[0] : at::stack(norms).norm(2);
  if (max_norm > 0.0) {
    at::Tensor coef = at::clamp_max(max_norm / (total + 1e-6), 1.0);
    for (at::Tensor& g : grads) g.mul_(coef.to(g.device()));
  }
  return total.item<double>();
}

}  // namespace dreambooth::train
