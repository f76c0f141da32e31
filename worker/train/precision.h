// Mixed-precision helpers: an autocast scope that works across LibTorch versions, dynamic loss
// scaling for fp16 (what torch.cuda.amp.GradScaler does; LibTorch has no C++ GradScaler), and
// global-norm gradient clipping.
#ifndef DREAMBOOTH_WORKER_TRAIN_PRECISION_H_
#define DREAMBOOTH_WORKER_TRAIN_PRECISION_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "worker/train/train_options.h"

namespace dreambooth::train {

// The dtype forward passes compute in: bf16 or fp16 under mixed precision, else float32.
at::ScalarType ComputeDtype(MixedPrecision precision);

// Enables autocast to `dtype` for `device_type` (kCPU: bf16; kCUDA: fp16 or bf16) for the
// scope's lifetime and restores the previous setting. Inactive when `enabled` is false.
// Autocast state is thread-local: use on the training thread only.
class AutocastScope {
 public:
  AutocastScope(bool enabled, at::DeviceType device_type, at::ScalarType dtype);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_;
  at::DeviceType device_type_;
  bool prev_enabled_ = false;
  at::ScalarType prev_dtype_ = at::kFloat;
};

// Dynamic loss scaling with GradScaler's defaults: initial scale 2^16, halve on inf/NaN
// gradients (the step is skipped), double after 2000 consecutive finite steps. Not thread-safe.
class DynamicLossScaler {
 public:
  explicit DynamicLossScaler(double initial_scale = 65536.0) : scale_(initial_scale) {}

  double scale() const { return scale_; }
  int64_t growth_tracker() const { return growth_tracker_; }
  void Restore(double scale, int64_t growth_tracker) {
    scale_ = scale;
    growth_tracker_ = growth_tracker;
  }
  // Divides the gradients by the scale in place; returns false when any is inf/NaN.
  bool Unscale(const std::vector<at::Tensor>& params) const;
  // Updates the scale after a step whose gradients were finite (`found_inf` false) or not.
  void Update(bool found_inf);

 private:
  double scale_;
  int64_t growth_tracker_ = 0;
};

// The L2 norm of all gradients together (torch.nn.utils.clip_grad_norm_'s total_norm); when
// max_norm > 0 the gradients are scaled by min(1, max_norm / (norm + 1e-6)) in place. Returns
// the norm before clipping (0 when no parameter has a gradient).
double ClipGradNorm(const std::vector<at::Tensor>& params, double max_norm);

}  // namespace dreambooth::train

#endif  // DREAMBOOTH_WORKER_TRAIN_PRECISION_H_
