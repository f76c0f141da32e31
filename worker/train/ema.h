// Exponential moving average of model weights, with the decay schedule of diffusers' EMAModel
// (training_utils.py, use_ema_warmup=False): decay_t = min(decay, (1 + t) / (10 + t)) where t
// is the number of updates so far minus one; the first update copies the weights.
#ifndef DREAMBOOTH_WORKER_TRAIN_EMA_H_
#define DREAMBOOTH_WORKER_TRAIN_EMA_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "worker/diffusion/io/safetensors.h"

namespace dreambooth::train {

// Not thread-safe. Holds float32 shadow copies of the given named parameters (same device).
class ExponentialMovingAverage {
 public:
  ExponentialMovingAverage(std::vector<std::pair<std::string, at::Tensor>> params, double decay);

  // shadow -= (1 - decay_t) * (shadow - param), under no-grad.
  void Update();
  // The decay the next Update() uses.
  double NextDecay() const;
  int64_t num_updates() const { return num_updates_; }

  // Shadow weights by name (CPU copies) and their restore; LoadStateDict checks names/shapes.
  diffusion::TensorMap StateDict() const;
  absl::Status LoadStateDict(const diffusion::TensorMap& state, int64_t num_updates);
  // Copies the shadow weights into the parameters (e.g. before export).
  void CopyToParams();

 private:
  std::vector<std::pair<std::string, at::Tensor>> params_;
  std::vector<at::Tensor> shadow_;
  double decay_;
  int64_t num_updates_ = 0;
};

}  // namespace dreambooth::train

#endif  // DREAMBOOTH_WORKER_TRAIN_EMA_H_
