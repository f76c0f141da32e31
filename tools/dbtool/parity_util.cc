#include "tools/dbtool/parity_util.h"

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "worker/diffusion/io/safetensors.h"

namespace dreambooth::dbtool {

absl::StatusOr<diffusion::SchedulerConfig> FixtureSchedulerConfig(const ParityContext& context) {
  return diffusion::SchedulerConfig::FromFile(
      (std::filesystem::path(context.fixture_dir) / "scheduler" / "scheduler_config.json")
          .string());
}

std::set<int64_t> IndexedGroups(const diffusion::TensorMap& golden, const std::string& prefix) {
  std::set<int64_t> out;
  for (const auto& [name, tensor] : golden) {
    if (!absl::StartsWith(name, prefix)) continue;
    const size_t dot = name.find('.', prefix.size());
    if (dot == std::string::npos) continue;
    int64_t k = 0;
    if (absl::SimpleAtoi(name.substr(prefix.size(), dot - prefix.size()), &k)) out.insert(k);
  }
  return out;
}

train::AdamWOptions AdamFromGolden(const ParityContext& ctx, ParityReporter& r, bool* ok) {
  train::AdamWOptions o;
  const at::Tensor* lr = ctx.Get("in.lr", r);
  const at::Tensor* b1 = ctx.Get("in.adam_beta1", r);
  const at::Tensor* b2 = ctx.Get("in.adam_beta2", r);
  const at::Tensor* eps = ctx.Get("in.adam_eps", r);
  const at::Tensor* wd = ctx.Get("in.weight_decay", r);
  *ok = lr && b1 && b2 && eps && wd;
  if (!*ok) return o;
  // The golden stores the hyper-parameters as float32; the reference ran with the Python
  // doubles they came from (0.001, 0.9, ...), which float32 -> shortest decimal recovers.
  auto value = [](const at::Tensor* t) {
    return std::stod(c10::str(t->to(at::kFloat).item<float>()));
  };
  o.lr = value(lr);
  o.beta1 = value(b1);
  o.beta2 = value(b2);
  o.eps = value(eps);
  o.weight_decay = value(wd);
  return o;
}

std::vector<std::string> GoldenParamNames(const ParityContext& ctx) {
  std::map<std::string, std::string> meta;
  if (!diffusion::ReadSafetensors(ctx.golden_path, &meta).ok() || !meta.count("param_names")) {
    return {};
  }
  nlohmann::json j = nlohmann::json::parse(meta["param_names"], nullptr, false);
  return j.is_array() ? j.get<std::vector<std::string>>() : std::vector<std::string>{};
}

}  // namespace dreambooth::dbtool
