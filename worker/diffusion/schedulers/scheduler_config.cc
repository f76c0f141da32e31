// SchedulerConfig parsing and serialisation (diffusers 0.25.1).
#include "worker/diffusion/schedulers/scheduler_config.h"

#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/diffusion/io/file_util.h"

namespace dreambooth::diffusion {
namespace {

absl::Status WrongType(const std::string& key, const char* expected) {
  return absl::InvalidArgumentError(
      absl::StrCat("scheduler config: '", key, "' must be ", expected));
}

// Reads json[key] into *out when present and not null.
absl::Status Get(const nlohmann::json& json, const std::string& key, std::string* out) {
  auto it = json.find(key);
  if (it == json.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_string()) return WrongType(key, "a string");
  *out = it->get<std::string>();
  return absl::OkStatus();
}
absl::Status Get(const nlohmann::json& json, const std::string& key, double* out) {
  auto it = json.find(key);
  if (it == json.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number()) return WrongType(key, "a number");
  *out = it->get<double>();
  return absl::OkStatus();
}
absl::Status Get(const nlohmann::json& json, const std::string& key, int64_t* out) {
  auto it = json.find(key);
  if (it == json.end() || it->is_null()) return absl::OkStatus();
  // An unsigned value above int64's range would wrap; it is refused like any non-integer.
  if (!it->is_number_integer() ||
      (it->is_number_unsigned() &&
       it->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))) {
    return WrongType(key, "an integer");
  }
  *out = it->get<int64_t>();
  return absl::OkStatus();
}
absl::Status Get(const nlohmann::json& json, const std::string& key, bool* out) {
  auto it = json.find(key);
  if (it == json.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_boolean()) return WrongType(key, "true or false");
  *out = it->get<bool>();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SchedulerConfig> SchedulerConfig::FromJson(const nlohmann::json& json) {
  if (!json.is_object()) {
    return absl::InvalidArgumentError("scheduler config must be a JSON object");
  }
  SchedulerConfig c;
  RETURN_IF_ERROR(Get(json, "_class_name", &c.class_name));
  RETURN_IF_ERROR(Get(json, "num_train_timesteps", &c.num_train_timesteps));
  RETURN_IF_ERROR(Get(json, "beta_start", &c.beta_start));
  RETURN_IF_ERROR(Get(json, "beta_end", &c.beta_end));
  RETURN_IF_ERROR(Get(json, "beta_schedule", &c.beta_schedule));
  if (auto it = json.find("trained_betas"); it != json.end() && !it->is_null()) {
    if (!it->is_array()) return WrongType("trained_betas", "null or an array of numbers");
    for (const auto& value : *it) {
      if (!value.is_number()) return WrongType("trained_betas", "null or an array of numbers");
      c.trained_betas.push_back(value.get<double>());
    }
  }
  RETURN_IF_ERROR(Get(json, "prediction_type", &c.prediction_type));
  std::string spacing;
  RETURN_IF_ERROR(Get(json, "timestep_spacing", &spacing));
  if (!spacing.empty()) c.timestep_spacing = spacing;
  RETURN_IF_ERROR(Get(json, "steps_offset", &c.steps_offset));
  RETURN_IF_ERROR(Get(json, "rescale_betas_zero_snr", &c.rescale_betas_zero_snr));
  RETURN_IF_ERROR(Get(json, "clip_sample", &c.clip_sample));
  RETURN_IF_ERROR(Get(json, "clip_sample_range", &c.clip_sample_range));
  RETURN_IF_ERROR(Get(json, "set_alpha_to_one", &c.set_alpha_to_one));
  RETURN_IF_ERROR(Get(json, "thresholding", &c.thresholding));
  RETURN_IF_ERROR(Get(json, "dynamic_thresholding_ratio", &c.dynamic_thresholding_ratio));
  RETURN_IF_ERROR(Get(json, "sample_max_value", &c.sample_max_value));
  RETURN_IF_ERROR(Get(json, "variance_type", &c.variance_type));
  RETURN_IF_ERROR(Get(json, "skip_prk_steps", &c.skip_prk_steps));
  RETURN_IF_ERROR(Get(json, "interpolation_type", &c.interpolation_type));
  RETURN_IF_ERROR(Get(json, "use_karras_sigmas", &c.use_karras_sigmas));
  RETURN_IF_ERROR(Get(json, "timestep_type", &c.timestep_type));
  RETURN_IF_ERROR(Get(json, "solver_order", &c.solver_order));
  RETURN_IF_ERROR(Get(json, "algorithm_type", &c.algorithm_type));
  RETURN_IF_ERROR(Get(json, "solver_type", &c.solver_type));
  RETURN_IF_ERROR(Get(json, "lower_order_final", &c.lower_order_final));
  RETURN_IF_ERROR(Get(json, "euler_at_final", &c.euler_at_final));
  if (c.num_train_timesteps < 1) {
    return absl::InvalidArgumentError("scheduler config: num_train_timesteps must be >= 1");
  }
  if (!c.trained_betas.empty() &&
      static_cast<int64_t>(c.trained_betas.size()) != c.num_train_timesteps) {
    return absl::InvalidArgumentError(
        absl::StrCat("scheduler config: trained_betas has ", c.trained_betas.size(),
                     " values but num_train_timesteps is ", c.num_train_timesteps));
  }
  return c;
}

absl::StatusOr<SchedulerConfig> SchedulerConfig::FromFile(const std::string& path) {
  ASSIGN_OR_RETURN(nlohmann::json json, ReadJsonFile(path));
  absl::StatusOr<SchedulerConfig> config = FromJson(json);
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

nlohmann::json SchedulerConfig::ToJson() const {
  nlohmann::json j;
  j["_class_name"] = class_name;
  j["num_train_timesteps"] = num_train_timesteps;
  j["beta_start"] = beta_start;
  j["beta_end"] = beta_end;
  j["beta_schedule"] = beta_schedule;
  j["trained_betas"] =
      trained_betas.empty() ? nlohmann::json(nullptr) : nlohmann::json(trained_betas);
  j["prediction_type"] = prediction_type;
  if (timestep_spacing.has_value()) j["timestep_spacing"] = *timestep_spacing;
  j["steps_offset"] = steps_offset;
  j["rescale_betas_zero_snr"] = rescale_betas_zero_snr;
  j["clip_sample"] = clip_sample;
  j["clip_sample_range"] = clip_sample_range;
  j["set_alpha_to_one"] = set_alpha_to_one;
  j["thresholding"] = thresholding;
  j["dynamic_thresholding_ratio"] = dynamic_thresholding_ratio;
  j["sample_max_value"] = sample_max_value;
  j["variance_type"] = variance_type;
  j["skip_prk_steps"] = skip_prk_steps;
  if (class_name.find("Euler") != std::string::npos) {
    j["interpolation_type"] = interpolation_type;
    j["use_karras_sigmas"] = use_karras_sigmas;
    j["timestep_type"] = timestep_type;
  }
  if (class_name.find("DPMSolver") != std::string::npos) {
    j["solver_order"] = solver_order;
    j["algorithm_type"] = algorithm_type;
    j["solver_type"] = solver_type;
    j["lower_order_final"] = lower_order_final;
    j["euler_at_final"] = euler_at_final;
    j["use_karras_sigmas"] = use_karras_sigmas;
  }
  return j;
}

std::string SchedulerConfig::SpacingOr(const std::string& class_default) const {
  return timestep_spacing.value_or(class_default);
}

}  // namespace dreambooth::diffusion
