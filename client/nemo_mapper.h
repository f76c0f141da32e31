// Internal to db_nemo_config: the mapping of a NeMo DreamBooth config's leaves onto a JobSpec
// (client/nemo_config.h is the interface). nemo_mapper.cc holds the key tables, the walk and the
// model/data/trainer keys; nemo_mapper_sections.cc the optim.* and infer.* keys.
#ifndef DREAMBOOTH_CLIENT_NEMO_MAPPER_H_
#define DREAMBOOTH_CLIENT_NEMO_MAPPER_H_

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/nemo_config.h"

namespace dreambooth::client::nemo_internal {

// One leaf of the YAML tree: a scalar, a sequence, null or an empty mapping.
struct Leaf {
  std::string key;
  YAML::Node node;
};

// The leaves under `node`, keys joined with "." after `prefix`, in file order.
void Flatten(const YAML::Node& node, const std::string& prefix, std::vector<Leaf>* out);
// A node as it reads in YAML (a scalar's text, "null", or flow style).
std::string Text(const YAML::Node& node);
// A key that configures NeMo itself (its architecture, logging, experiment layout).
bool IsInternal(const std::string& key);

// Maps the leaves, in file order, and records which key set which JobSpec field.
class Mapper {
 public:
  explicit Mapper(std::vector<Leaf> leaves) : leaves_(std::move(leaves)) {
    for (const Leaf& leaf : leaves_) index_[leaf.key] = leaf.node;
  }

  absl::StatusOr<NemoMapping> Run() {
    for (const Leaf& leaf : leaves_) {
      std::string unresolved;
      YAML::Node value = Resolve(leaf.node, &unresolved);
      if (!unresolved.empty()) {
        Unmapped(leaf.key, IsInternal(leaf.key)
                               ? "ignored: NeMo internal"
                               : absl::StrCat("unresolved interpolation ", unresolved));
        continue;
      }
      absl::StatusOr<bool> mapped = Map(leaf.key, value);
      if (!mapped.ok()) return mapped.status();
      if (*mapped) continue;
      if (const std::string_view* path = PathHint(leaf.key)) {
        Unmapped(leaf.key,
                 absl::StrCat("no equivalent: a path on the NeMo host; ", std::string(*path)));
      } else if (IsInternal(leaf.key)) {
        Unmapped(leaf.key, "ignored: NeMo internal");
      } else {
        Unmapped(leaf.key, "no equivalent");
      }
    }
    if (absl::Status s = Validate(); !s.ok()) return s;
    return std::move(result_);
  }

 private:
  // What takes the place of a key that is a path on the NeMo host; null for other keys.
  static const std::string_view* PathHint(const std::string& key);

  // The value of `node` after whole-value "${a.b}" interpolations; sets *unresolved to the
  // interpolation text when it cannot be resolved here.
  YAML::Node Resolve(YAML::Node node, std::string* unresolved) const {
    for (int depth = 0; depth < 16; ++depth) {
      if (!node.IsScalar()) return node;
      const std::string& text = node.Scalar();
      if (text.find("${") == std::string::npos) return node;
      const bool whole = absl::StartsWith(text, "${") && absl::EndsWith(text, "}") &&
                         text.find("${", 2) == std::string::npos &&
                         text.find_first_of(":{}", 2) == text.size() - 1;
      auto target = whole ? index_.find(text.substr(2, text.size() - 3)) : index_.end();
      if (target == index_.end()) {
        *unresolved = text;
        return node;
      }
      node = target->second;
    }
    *unresolved = Text(node);
    return node;
  }

  // The resolved value of another key, or an undefined node.
  YAML::Node Lookup(const std::string& key) const {
    auto it = index_.find(key);
    if (it == index_.end()) return YAML::Node(YAML::NodeType::Undefined);
    std::string unresolved;
    YAML::Node node = Resolve(it->second, &unresolved);
    return unresolved.empty() ? node : YAML::Node(YAML::NodeType::Undefined);
  }

  void Unmapped(const std::string& key, std::string reason) {
    result_.unmapped.push_back({key, std::move(reason)});
  }
  void Set(const std::string& field, const std::string& key) { field_keys_[field] = key; }

  static absl::Status TypeError(const std::string& key, const char* expected, const YAML::Node& v) {
    return absl::InvalidArgumentError(
        absl::StrCat(key, ": expected ", expected, ", got '", Text(v), "'"));
  }
  static absl::StatusOr<int64_t> Int(const std::string& key, const YAML::Node& v) {
    int64_t n = 0;
    if (!v.IsScalar() || !absl::SimpleAtoi(v.Scalar(), &n)) return TypeError(key, "an integer", v);
    return n;
  }
  static absl::StatusOr<int32_t> Int32(const std::string& key, const YAML::Node& v) {
    absl::StatusOr<int64_t> n = Int(key, v);
    if (!n.ok()) return n.status();
    if (*n < INT32_MIN || *n > INT32_MAX) {
      return absl::InvalidArgumentError(absl::StrCat(key, ": ", *n, " is out of range"));
    }
    return static_cast<int32_t>(*n);
  }
  static absl::StatusOr<double> Real(const std::string& key, const YAML::Node& v) {
    double d = 0;
    if (!v.IsScalar() || !absl::SimpleAtod(v.Scalar(), &d) || !std::isfinite(d)) {
      return TypeError(key, "a number", v);
    }
    return d;
  }
  static absl::StatusOr<bool> Bool(const std::string& key, const YAML::Node& v) {
    bool b = false;
    if (!v.IsScalar() || !YAML::convert<bool>::decode(v, b))
      return TypeError(key, "true or false", v);
    return b;
  }
  static absl::StatusOr<std::string> String(const std::string& key, const YAML::Node& v) {
    if (!v.IsScalar()) return TypeError(key, "a string", v);
    return v.Scalar();
  }

  // Maps one key: true when it is handled (set a field, or was reported unmapped with a
  // specific reason), false when it is not a key this mapping knows.
  absl::StatusOr<bool> Map(const std::string& key, const YAML::Node& v);
  absl::StatusOr<bool> MapOptim(const std::string& key, const YAML::Node& v);
  absl::StatusOr<bool> MapInfer(const std::string& key, const YAML::Node& v);

  // Runs the spec rules on the mapped fields (placeholders standing in for what flags give)
  // and names the NeMo key behind the first offending field.
  absl::Status Validate() const;

  std::vector<Leaf> leaves_;
  std::map<std::string, YAML::Node> index_;
  std::map<std::string, std::string> field_keys_;  // "spec.max_train_steps" -> "trainer.max_steps"
  NemoMapping result_;
};

// Assigns the value of a StatusOr expression to a new variable `lhs`, returning its error.
#define NEMO_ASSIGN(lhs, expr)                  \
  auto lhs##_or = (expr);                       \
  if (!lhs##_or.ok()) return lhs##_or.status(); \
  auto lhs = *lhs##_or

}  // namespace dreambooth::client::nemo_internal

#endif  // DREAMBOOTH_CLIENT_NEMO_MAPPER_H_
