// Noise schedulers of diffusers 0.25.1: the sampling schedulers (DDIM, PNDM/PLMS, Euler, Euler
// ancestral, DPM-Solver++ 2M, DDPM) behind one interface, their configuration
// (scheduler_config.json), and the DDPM training helper (forward noising, targets, SNR).
#ifndef DREAMBOOTH_WORKER_DIFFUSION_SCHEDULERS_SCHEDULER_H_
#define DREAMBOOTH_WORKER_DIFFUSION_SCHEDULERS_SCHEDULER_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/diffusion/schedulers/scheduler_config.h"

namespace dreambooth::diffusion {

// float32 betas [num_train_timesteps] for `config` (linear, scaled_linear, squaredcos_cap_v2,
// trained_betas; rescaled to zero terminal SNR when asked), computed like diffusers.
absl::StatusOr<at::Tensor> ComputeBetas(const SchedulerConfig& config);

// Result of one sampling step; tensors have the sample's shape, dtype and device.
struct SchedulerStepOutput {
  at::Tensor prev_sample;
  at::Tensor pred_original_sample;
};

// A sampling scheduler. Stateful (step index, history of model outputs): one instance per
// sampling run, not thread-safe. SetTimesteps resets the state.
class Scheduler {
 public:
  virtual ~Scheduler() = default;

  // Factory name ("ddim", "euler", ...).
  virtual std::string name() const = 0;
  // Chooses the inference timesteps (diffusers' set_timesteps) and resets the state.
  // INVALID_ARGUMENT when num_inference_steps is < 1 or > num_train_timesteps.
  virtual absl::Status SetTimesteps(int64_t num_inference_steps) = 0;
  // Timesteps in sampling order, CPU: int64 for DDPM/DDIM/PNDM/DPM, float32 for Euler
  // (fractional). PNDM repeats its second timestep (one UNet call per entry).
  virtual const at::Tensor& timesteps() const = 0;
  // Noise levels of the schedule for sigma-based schedulers (Euler, DPM: N + 1 values, float32
  // CPU, the last one the final level); undefined for DDPM/DDIM.
  virtual at::Tensor sigmas() const { return at::Tensor(); }
  // Standard deviation of the initial noise (multiply N(0, I) latents by it).
  virtual double init_noise_sigma() const = 0;
  // The UNet input for `sample` at `timestep` (an element of timesteps()); INVALID_ARGUMENT
  // for a timestep a sigma-based scheduler cannot place in its schedule.
  virtual absl::StatusOr<at::Tensor> ScaleModelInput(const at::Tensor& sample,
                                                     const at::Tensor& timestep) = 0;
  // One denoising step from `timestep` (an element of timesteps()). `generator` (may be null:
  // the default CPU generator) draws the noise of stochastic schedulers; noise is drawn on CPU
  // in float32 and moved to the sample's device, like diffusers' randn_tensor.
  virtual absl::StatusOr<SchedulerStepOutput> Step(const at::Tensor& model_output,
                                                   const at::Tensor& timestep,
                                                   const at::Tensor& sample,
                                                   at::Generator* generator = nullptr) = 0;

  // When Step at `timestep` is exactly a deterministic DDIM update (DDIM, eta 0, no clipping or
  // thresholding, epsilon or v prediction): its coefficients, for the fused guided step of
  // kernels/guided_ddim_step.h. nullopt for every other scheduler or setting.
  struct DdimCoefficients {
    double alpha_prod_t = 1;
    double alpha_prod_prev = 1;
    bool v_prediction = false;
  };
  virtual std::optional<DdimCoefficients> DeterministicDdimCoefficients(
      const at::Tensor& /*timestep*/) const {
    return std::nullopt;
  }
};

// Options that diffusers passes to step() rather than storing in the config.
struct SchedulerOptions {
  double eta = 0.0;  // DDIM: 0 = deterministic
};

// Names accepted by CreateScheduler.
std::vector<std::string> SchedulerNames();

// Creates the named scheduler from `config` the way diffusers' <Class>.from_config does.
// INVALID_ARGUMENT for an unknown name (listing the known ones) or unsupported config values.
absl::StatusOr<std::unique_ptr<Scheduler>> CreateScheduler(const std::string& name,
                                                           const SchedulerConfig& config,
                                                           const SchedulerOptions& options = {});

// DDPM forward process for training (DDPMScheduler.add_noise / get_velocity and the training
// target). Immutable after construction, thread-safe. Timesteps are int64 tensors [B] on any
// device; results have the samples' dtype and device.
class DdpmTrainingSchedule {
 public:
  static absl::StatusOr<DdpmTrainingSchedule> Create(const SchedulerConfig& config);

  int64_t num_train_timesteps() const { return num_train_timesteps_; }
  const std::string& prediction_type() const { return prediction_type_; }
  // float32 CPU [num_train_timesteps].
  const at::Tensor& betas() const { return betas_; }
  const at::Tensor& alphas_cumprod() const { return alphas_cumprod_; }

  // sqrt(a_t) x0 + sqrt(1 - a_t) noise.
  at::Tensor AddNoise(const at::Tensor& original_samples, const at::Tensor& noise,
                      const at::Tensor& timesteps) const;
  // sqrt(a_t) noise - sqrt(1 - a_t) x0.
  at::Tensor GetVelocity(const at::Tensor& sample, const at::Tensor& noise,
                         const at::Tensor& timesteps) const;
  // The regression target for prediction_type: noise (epsilon), GetVelocity (v_prediction) or
  // the clean latents (sample).
  absl::StatusOr<at::Tensor> Target(const at::Tensor& latents, const at::Tensor& noise,
                                    const at::Tensor& timesteps) const;
  // a_t / (1 - a_t) as float32 [B] on the timesteps' device.
  at::Tensor Snr(const at::Tensor& timesteps) const;

 private:
  DdpmTrainingSchedule() = default;

  int64_t num_train_timesteps_ = 0;
  std::string prediction_type_;
  at::Tensor betas_;
  at::Tensor alphas_cumprod_;
};

}  // namespace dreambooth::diffusion

#endif  // DREAMBOOTH_WORKER_DIFFUSION_SCHEDULERS_SCHEDULER_H_
