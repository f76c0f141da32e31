#include "storage/labels.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace dreambooth::storage {

std::string LabelsToJson(const Labels& labels) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [key, value] : labels) j[key] = value;
  return j.dump();
}

Labels LabelsFromJson(const std::string& json) {
  Labels labels;
  const nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return labels;
  for (const auto& [key, value] : j.items()) {
    if (value.is_string()) labels[key] = value.get<std::string>();
  }
  return labels;
}

std::string LabelPath(const std::string& key) { return absl::StrCat("$.\"", key, "\""); }

}  // namespace dreambooth::storage
