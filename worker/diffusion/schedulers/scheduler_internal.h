// Shared pieces of the scheduler implementations (internal to worker/diffusion).
#ifndef DREAMBOOTH_WORKER_DIFFUSION_SCHEDULERS_SCHEDULER_INTERNAL_H_
#define DREAMBOOTH_WORKER_DIFFUSION_SCHEDULERS_SCHEDULER_INTERNAL_H_

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/diffusion/schedulers/scheduler.h"

namespace dreambooth::diffusion::scheduler_internal {

absl::StatusOr<std::unique_ptr<Scheduler>> MakeDdim(const SchedulerConfig& config,
                                                    const SchedulerOptions& options);
absl::StatusOr<std::unique_ptr<Scheduler>> MakeDdpm(const SchedulerConfig& config);
absl::StatusOr<std::unique_ptr<Scheduler>> MakeEuler(const SchedulerConfig& config, bool ancestral);
absl::StatusOr<std::unique_ptr<Scheduler>> MakeDpmSolverMultistep(const SchedulerConfig& config);
absl::StatusOr<std::unique_ptr<Scheduler>> MakePndm(const SchedulerConfig& config);

// Integer timesteps of DDPM/DDIM for `spacing` (leading / trailing / linspace), descending.
absl::StatusOr<std::vector<int64_t>> DiscreteTimesteps(const std::string& spacing,
                                                       int64_t num_train_timesteps,
                                                       int64_t num_inference_steps,
                                                       int64_t steps_offset);

// sqrt((1 - a) / a) of the training schedule, float32 (diffusers' sigma table, ascending t).
at::Tensor TrainingSigmas(const at::Tensor& alphas_cumprod);

// Index of `timestep` in `timesteps` the way diffusers' _init_step_index picks it: the second
// match when there are several, else the first; -1 when absent.
int64_t InitStepIndex(const at::Tensor& timesteps, const at::Tensor& timestep);

// Standard normal noise shaped like `like`, drawn on CPU with `generator` (null: default) and
// moved to `like`'s device and dtype (diffusers' randn_tensor).
at::Tensor RandnLike(const at::Tensor& like, at::Generator* generator);

// Applies config.thresholding (dynamic thresholding) or clip_sample to a predicted x0.
at::Tensor ClipOrThreshold(const at::Tensor& pred_original_sample, const SchedulerConfig& config);

absl::Status CheckStepCount(int64_t num_inference_steps, int64_t num_train_timesteps);

// Base of the schedulers that sample integer timesteps of the training grid (DDPM, DDIM, PNDM):
// their config and alphas_cumprod, diffusers' discrete set_timesteps (spacing from the config,
// "leading" by default), unit initial noise and no input scaling. Not thread-safe.
class DiscreteTimestepScheduler : public Scheduler {
 public:
  DiscreteTimestepScheduler(SchedulerConfig config, at::Tensor alphas_cumprod);

  // Spaces the timesteps, lets Arrange reorder them and resets the sampling state.
  absl::Status SetTimesteps(int64_t num_inference_steps) final;
  const at::Tensor& timesteps() const final { return timesteps_; }
  double init_noise_sigma() const final { return 1.0; }
  absl::StatusOr<at::Tensor> ScaleModelInput(const at::Tensor& sample, const at::Tensor&) final {
    return sample;
  }

 protected:
  // The timesteps to sample from diffusers' spaced list (descending); default: that list.
  virtual std::vector<int64_t> Arrange(std::vector<int64_t> spaced) { return spaced; }
  // Clears per-run state (history of model outputs); called by SetTimesteps.
  virtual void Reset() {}

  const SchedulerConfig config_;
  const at::Tensor alphas_cumprod_;  // float32 [num_train_timesteps]
  int64_t num_inference_steps_ = 0;  // 0 until SetTimesteps
  at::Tensor timesteps_;             // int64, sampling order
};

}  // namespace dreambooth::diffusion::scheduler_internal

#endif  // DREAMBOOTH_WORKER_DIFFUSION_SCHEDULERS_SCHEDULER_INTERNAL_H_
