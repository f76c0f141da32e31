// AdamW (Loshchilov & Hutter) with the exact arithmetic of torch.optim.AdamW (PyTorch 1.13,
// single-tensor path): decoupled weight decay `p *= 1 - lr * wd` first, then bias-corrected
// moments, `p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)`.
//
// LibTorch ships torch::optim::AdamW with the same formula, but its per-parameter state is keyed
// by TensorImpl address with a key type that differs between LibTorch 1.x and 2.x, which makes a
// portable, name-keyed save/restore for exact resume awkward. This class keeps its state
// explicitly, by parameter name, so resume state is a plain safetensors file.
#ifndef DREAMBOOTH_WORKER_TRAIN_ADAMW_H_
#define DREAMBOOTH_WORKER_TRAIN_ADAMW_H_

#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "worker/diffusion/io/safetensors.h"

namespace dreambooth::train {

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
};

// A group of named parameters sharing hyper-parameters (e.g. UNet and text encoder with their
// own learning rates). Parameter names must be unique across all groups.
struct AdamWParamGroup {
  std::vector<std::pair<std::string, at::Tensor>> params;
  AdamWOptions options;
};

// Not thread-safe; one optimizer per training loop. Parameters are held by reference (tensors
// share storage with the model), updated in place under NoGradGuard.
class AdamW {
 public:
  explicit AdamW(std::vector<AdamWParamGroup> groups);

  // Applies one update to every parameter with a defined gradient; parameters without a gradient
  // are left untouched and keep their step count (as torch.optim does).
  void Step();
  // Sets every gradient to undefined (PyTorch's zero_grad(set_to_none=True)).
  void ZeroGrad();

  size_t num_groups() const { return groups_.size(); }
  AdamWOptions& group_options(size_t i) { return groups_[i].options; }
  const AdamWParamGroup& group(size_t i) const { return groups_[i]; }
  // All parameters of all groups, in group order.
  std::vector<at::Tensor> Parameters() const;

  // State as tensors: "<name>.exp_avg", "<name>.exp_avg_sq" (on CPU, parameter dtype) and
  // "<name>.step" (I64 [1]) for every parameter that has been stepped.
  diffusion::TensorMap StateDict() const;
  // Restores a StateDict(). Errors name the parameter when a tensor is missing, unexpected or of
  // the wrong shape; on error the optimizer state is unchanged.
  absl::Status LoadStateDict(const diffusion::TensorMap& state);

 private:
  struct ParamState {
    int64_t step = 0;
    at::Tensor exp_avg;
    at::Tensor exp_avg_sq;
  };

  std::vector<AdamWParamGroup> groups_;
  // state_[g][i] belongs to groups_[g].params[i].
  std::vector<std::vector<ParamState>> state_;
};

}  // namespace dreambooth::train

#endif  // DREAMBOOTH_WORKER_TRAIN_ADAMW_H_
