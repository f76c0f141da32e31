#include "tools/dbtool/parity_util.h"

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"

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

}  // namespace dreambooth::dbtool
