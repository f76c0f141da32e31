// Helpers shared by the parity checks of tools/dbtool.
#ifndef DREAMBOOTH_TOOLS_DBTOOL_PARITY_UTIL_H_
#define DREAMBOOTH_TOOLS_DBTOOL_PARITY_UTIL_H_

#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tools/dbtool/parity_registry.h"
#include "worker/diffusion/schedulers/scheduler.h"
#include "worker/train/adamw.h"

namespace dreambooth::dbtool {

// The fixture's scheduler/scheduler_config.json.
absl::StatusOr<diffusion::SchedulerConfig> FixtureSchedulerConfig(const ParityContext& context);

// The integers K of golden tensors named "<prefix>K.<anything>" (e.g. "step" -> {0, 5, 9}).
std::set<int64_t> IndexedGroups(const diffusion::TensorMap& golden, const std::string& prefix);

// AdamW's hyper-parameters of an optimizer-step golden (in.lr, in.adam_beta1, in.adam_beta2,
// in.adam_eps, in.weight_decay; float32 in the file, read back as the Python doubles they were).
// *ok is false (and the reporter has a FAIL line) when one is missing.
train::AdamWOptions AdamFromGolden(const ParityContext& ctx, ParityReporter& r, bool* ok);

// The parameter names of an optimizer-step golden (its __metadata__["param_names"]), or empty.
std::vector<std::string> GoldenParamNames(const ParityContext& ctx);

}  // namespace dreambooth::dbtool

#endif  // DREAMBOOTH_TOOLS_DBTOOL_PARITY_UTIL_H_
