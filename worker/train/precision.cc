#include "worker/train/precision.h"

#include <ATen/autocast_mode.h>
#include <ATen/core/grad_mode.h>
#include <torch/version.h>

// LibTorch 2.4 replaced the per-device autocast setters with device-type-generic ones.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define DB_AUTOCAST_GENERIC_API 1
#else
#define DB_AUTOCAST_GENERIC_API 0
#endif

namespace dreambooth::train {
namespace {

bool IsEnabled(at::DeviceType type) {
#if DB_AUTOCAST_GENERIC_API
  return at::autocast::is_autocast_enabled(type);
#else
  return type == at::kCPU ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
#endif
}

at::ScalarType GetDtype(at::DeviceType type) {
#if DB_AUTOCAST_GENERIC_API
  return at::autocast::get_autocast_dtype(type);
#else
  return type == at::kCPU ? at::autocast::get_autocast_cpu_dtype()
                          : at::autocast::get_autocast_gpu_dtype();
#endif
}

void Set(at::DeviceType type, bool enabled, at::ScalarType dtype) {
#if DB_AUTOCAST_GENERIC_API
  at::autocast::set_autocast_enabled(type, enabled);
  at::autocast::set_autocast_dtype(type, dtype);
#else
  if (type == at::kCPU) {
    at::autocast::set_cpu_enabled(enabled);
    at::autocast::set_autocast_cpu_dtype(dtype);
  } else {
    at::autocast::set_enabled(enabled);
    at::autocast::set_autocast_gpu_dtype(dtype);
  }
#endif
}

}  // namespace

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
  const double inv = 1.0 / scale_;
  bool finite = true;
  for (const at::Tensor& p : params) {
    if (!p.grad().defined()) continue;
    at::Tensor g = p.mutable_grad();
    g.mul_(inv);
    finite = finite && g.isfinite().all().item<bool>();
  }
  return finite;
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
