#include "worker/diffusion/io/config_json.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace dreambooth::diffusion::config_json {
namespace {

bool Present(const nlohmann::json& json, const std::string& key) {
  auto it = json.find(key);
  return it != json.end() && !it->is_null();
}

absl::Status TypeError(const std::string& key, const char* expected, const nlohmann::json& v) {
  return absl::InvalidArgumentError(
      absl::StrCat("config key '", key, "' must be ", expected, ", got ", v.dump()));
}

// An integer in int64's range or, when allowed, a float with an integral value in that range (a
// float outside it must not reach static_cast<int64_t>: that is undefined behaviour).
bool AsInt64(const nlohmann::json& v, bool allow_integral_float, int64_t* out) {
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return false;
    }
    *out = static_cast<int64_t>(v.get<uint64_t>());
    return true;
  }
  if (v.is_number_integer()) {
    *out = v.get<int64_t>();
    return true;
  }
  if (!allow_integral_float || !v.is_number_float()) return false;
  const double d = v.get<double>();
  constexpr double kTwoTo63 = 9223372036854775808.0;
  if (!(d >= -kTwoTo63 && d < kTwoTo63) || d != std::trunc(d)) return false;
  *out = static_cast<int64_t>(d);
  return true;
}

}  // namespace

absl::Status ReadInt(const nlohmann::json& json, const std::string& key, int64_t* out) {
  if (!Present(json, key)) return absl::OkStatus();
  const auto& v = json.at(key);
  if (!AsInt64(v, /*allow_integral_float=*/true, out)) return TypeError(key, "an integer", v);
  return absl::OkStatus();
}

absl::Status ReadDouble(const nlohmann::json& json, const std::string& key, double* out) {
  if (!Present(json, key)) return absl::OkStatus();
  const auto& v = json.at(key);
  if (!v.is_number()) return TypeError(key, "a number", v);
  *out = v.get<double>();
  return absl::OkStatus();
}

absl::Status ReadBool(const nlohmann::json& json, const std::string& key, bool* out) {
  if (!Present(json, key)) return absl::OkStatus();
  const auto& v = json.at(key);
  if (!v.is_boolean()) return TypeError(key, "a boolean", v);
  *out = v.get<bool>();
  return absl::OkStatus();
}

absl::Status ReadString(const nlohmann::json& json, const std::string& key, std::string* out) {
  if (!Present(json, key)) return absl::OkStatus();
  const auto& v = json.at(key);
  if (!v.is_string()) return TypeError(key, "a string", v);
  *out = v.get<std::string>();
  return absl::OkStatus();
}

absl::Status ReadStrings(const nlohmann::json& json, const std::string& key,
                         std::vector<std::string>* out) {
  if (!Present(json, key)) return absl::OkStatus();
  const auto& v = json.at(key);
  if (!v.is_array()) return TypeError(key, "a list of strings", v);
  std::vector<std::string> result;
  for (const auto& e : v) {
    if (!e.is_string()) return TypeError(key, "a list of strings", v);
    result.push_back(e.get<std::string>());
  }
  *out = std::move(result);
  return absl::OkStatus();
}

absl::Status ReadIntOrList(const nlohmann::json& json, const std::string& key,
                           std::vector<int64_t>* out) {
  if (!Present(json, key)) return absl::OkStatus();
  const auto& v = json.at(key);
  int64_t single = 0;
  if (AsInt64(v, /*allow_integral_float=*/false, &single)) {
    *out = {single};
    return absl::OkStatus();
  }
  if (!v.is_array() || v.empty()) return TypeError(key, "an integer or a list of integers", v);
  std::vector<int64_t> result;
  for (const auto& e : v) {
    int64_t value = 0;
    if (!AsInt64(e, /*allow_integral_float=*/false, &value)) {
      return TypeError(key, "an integer or a list of integers", v);
    }
    result.push_back(value);
  }
  *out = std::move(result);
  return absl::OkStatus();
}

absl::Status RequireValue(const nlohmann::json& json, const std::string& key,
                          const nlohmann::json& allowed, const std::string& component) {
  if (!Present(json, key)) return absl::OkStatus();
  const auto& v = json.at(key);
  if (v == allowed) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(component, ": unsupported ", key, " = ", v.dump(),
                                                 " (supported: ", allowed.dump(), ")"));
}

absl::StatusOr<nlohmann::json> ReadJsonFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open config file ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  nlohmann::json json = nlohmann::json::parse(buffer.str(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a JSON object"));
  }
  return json;
}

nlohmann::json IntOrList(const std::vector<int64_t>& values) {
  if (values.size() == 1) return values[0];
  return nlohmann::json(values);
}

}  // namespace dreambooth::diffusion::config_json
