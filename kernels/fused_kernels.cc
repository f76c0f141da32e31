#include "kernels/fused_kernels.h"

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace dreambooth::kernels {
namespace {

std::atomic<bool> g_group_norm_silu{false};
std::atomic<bool> g_guided_ddim_step{false};

// Applies DB_FUSED_KERNELS once; a bad value is reported and ignored (everything stays off).
void InitFromEnvironment() {
  static const bool done = [] {
    const char* env = std::getenv("DB_FUSED_KERNELS");
    if (env == nullptr) return true;
    absl::StatusOr<FusedKernels> parsed = ParseFusedKernels(env);
    if (!parsed.ok()) {
      std::cerr << "DB_FUSED_KERNELS ignored: " << parsed.status().message() << "\n";
      return true;
    }
    g_group_norm_silu = parsed->group_norm_silu;
    g_guided_ddim_step = parsed->guided_ddim_step;
    return true;
  }();
  (void)done;
}

}  // namespace

absl::StatusOr<FusedKernels> ParseFusedKernels(absl::string_view spec) {
  FusedKernels out;
  if (spec == "none" || spec.empty()) return out;
  if (spec == "all") return FusedKernels{true, true};
  for (absl::string_view name : absl::StrSplit(spec, ',')) {
    if (name == "group_norm_silu") {
      out.group_norm_silu = true;
    } else if (name == "guided_ddim_step") {
      out.guided_ddim_step = true;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown fused kernel '", name,
                       "' (expected none, all, or a comma list of group_norm_silu, "
                       "guided_ddim_step)"));
    }
  }
  return out;
}

std::string FusedKernelsName(const FusedKernels& kernels) {
  std::vector<std::string> names;
  if (kernels.group_norm_silu) names.push_back("group_norm_silu");
  if (kernels.guided_ddim_step) names.push_back("guided_ddim_step");
  if (names.empty()) return "none";
  if (names.size() == 2) return "all";
  return absl::StrJoin(names, ",");
}

FusedKernels ActiveFusedKernels() {
  InitFromEnvironment();
  return FusedKernels{g_group_norm_silu.load(), g_guided_ddim_step.load()};
}

void SetFusedKernels(const FusedKernels& kernels) {
  InitFromEnvironment();
  g_group_norm_silu = kernels.group_norm_silu;
  g_guided_ddim_step = kernels.guided_ddim_step;
}

}  // namespace dreambooth::kernels
