// Small helpers for reading diffusers / transformers config.json values with defaults.
#ifndef WORKER_DIFFUSION_CONFIG_JSON_H_
#define WORKER_DIFFUSION_CONFIG_JSON_H_

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dreambooth::diffusion::config_json {

// Each Read* leaves *out unchanged when `key` is absent or null, and returns InvalidArgument
// naming `key` when the value has the wrong type. Integers must fit in int64; ReadInt also takes
// a float with an integral value in that range (1.0, 1e3).
absl::Status ReadInt(const nlohmann::json& json, const std::string& key, int64_t* out);
absl::Status ReadDouble(const nlohmann::json& json, const std::string& key, double* out);
absl::Status ReadBool(const nlohmann::json& json, const std::string& key, bool* out);
absl::Status ReadString(const nlohmann::json& json, const std::string& key, std::string* out);
absl::Status ReadStrings(const nlohmann::json& json, const std::string& key,
                         std::vector<std::string>* out);
// Accepts an integer (stored as a one-element list) or a list of integers.
absl::Status ReadIntOrList(const nlohmann::json& json, const std::string& key,
                           std::vector<int64_t>* out);
// InvalidArgument "<component>: unsupported <key> = <value>" when `key` is present, not null and
// differs from `allowed` (compared as JSON values).
absl::Status RequireValue(const nlohmann::json& json, const std::string& key,
                          const nlohmann::json& allowed, const std::string& component);
// Reads and parses a JSON file (NotFound / InvalidArgument with the path).
absl::StatusOr<nlohmann::json> ReadJsonFile(const std::string& path);
// A one-element list as a scalar JSON value, else the list.
nlohmann::json IntOrList(const std::vector<int64_t>& values);

}  // namespace dreambooth::diffusion::config_json

#endif  // WORKER_DIFFUSION_CONFIG_JSON_H_
