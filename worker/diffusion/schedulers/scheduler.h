// Noise schedulers of diffusers 0.25.1: the sampling schedulers (DDIM, PNDM/PLMS, Euler, Euler
// ancestral, DPM-Solver++ 2M, DDPM) behind one interface, their configuration
// (scheduler_config.json), and the DDPM training helper (forward noising, targets, SNR).
#ifndef DREAMBOOTH_WORKER_DIFFUSION_SCHEDULERS_SCHEDULER_H_
#define DREAMBOOTH_WORKER_DIFFUSION_SCHEDULERS_SCHEDULER_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dreambooth::diffusion {

// Every field of the scheduler_config.json files of the supported schedulers, with the upstream
// defaults. Fields whose default depends on the scheduler class are optional: absent means "the
// class default" (e.g. timestep_spacing is "leading" for DDPM/DDIM, "linspace" for Euler/DPM).
// A config read from one class and used by another behaves like diffusers' from_config.
struct SchedulerConfig {
  std::string class_name = "DDPMScheduler";  // "_class_name"
  int64_t num_train_timesteps = 1000;
  double beta_start = 0.0001;
  double beta_end = 0.02;
  std::string beta_schedule = "linear";         // linear | scaled_linear | squaredcos_cap_v2
  std::vector<double> trained_betas;            // empty: none
  std::string prediction_type = "epsilon";      // epsilon | v_prediction | sample
  std::optional<std::string> timestep_spacing;  // leading | trailing | linspace
  int64_t steps_offset = 0;
  bool rescale_betas_zero_snr = false;
  // DDPM / DDIM.
  bool clip_sample = true;
  double clip_sample_range = 1.0;
  bool set_alpha_to_one = true;
  bool thresholding = false;
  double dynamic_thresholding_ratio = 0.995;
  double sample_max_value = 1.0;
  std::string variance_type = "fixed_small";  // DDPM
  bool skip_prk_steps = false;                // PNDM: only true (PLMS) is supported
  // Euler.
  std::string interpolation_type = "linear";
  bool use_karras_sigmas = false;
  std::string timestep_type = "discrete";
  // DPM-Solver multistep.
  int64_t solver_order = 2;
  std::string algorithm_type = "dpmsolver++";
  std::string solver_type = "midpoint";
  bool lower_order_final = true;
  bool euler_at_final = false;
  // (diffusers 0.25.1 ends the DPM schedule at the smallest training sigma, not at zero.)

  // Parses a scheduler_config.json object; unknown keys are ignored, wrong types are an error
  // naming the key.
  static absl::StatusOr<SchedulerConfig> FromJson(const nlohmann::json& json);
  static absl::StatusOr<SchedulerConfig> FromFile(const std::string& path);
  // The fields as a scheduler_config.json object (class_name as "_class_name").
  nlohmann::json ToJson() const;
  // timestep_spacing, or `class_default` when absent.
  std::string SpacingOr(const std::string& class_default) const;
};

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
