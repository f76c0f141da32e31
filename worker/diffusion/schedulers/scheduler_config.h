// SchedulerConfig: the scheduler_config.json of diffusers' noise schedulers (0.25.1), parsed and
// serialised without LibTorch (the schedulers themselves are in scheduler.h).
#ifndef DREAMBOOTH_WORKER_DIFFUSION_SCHEDULERS_SCHEDULER_CONFIG_H_
#define DREAMBOOTH_WORKER_DIFFUSION_SCHEDULERS_SCHEDULER_CONFIG_H_

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

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

}  // namespace dreambooth::diffusion

#endif  // DREAMBOOTH_WORKER_DIFFUSION_SCHEDULERS_SCHEDULER_CONFIG_H_
