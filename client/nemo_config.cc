#include "client/nemo_config.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/nemo_mapper.h"

namespace dreambooth::client {

using nemo_internal::Flatten;
using nemo_internal::Leaf;
using nemo_internal::Mapper;

absl::StatusOr<NemoMapping> MapNemoConfig(std::string_view yaml_text) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("not valid YAML: ", e.what()));
  }
  if (!root.IsMap()) {
    return absl::InvalidArgumentError("not a NeMo config: the top level must be a mapping");
  }
  std::vector<Leaf> leaves;
  try {
    Flatten(root, "", &leaves);
    return Mapper(std::move(leaves)).Run();
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("unreadable NeMo config: ", e.what()));
  }
}

absl::StatusOr<NemoMapping> LoadNemoConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot read"));
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<NemoMapping> mapping = MapNemoConfig(text.str());
  if (!mapping.ok()) {
    return absl::Status(mapping.status().code(),
                        absl::StrCat(path, ": ", mapping.status().message()));
  }
  return mapping;
}

}  // namespace dreambooth::client
