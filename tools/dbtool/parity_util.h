// Helpers shared by the parity checks of tools/dbtool.
#ifndef DREAMBOOTH_TOOLS_DBTOOL_PARITY_UTIL_H_
#define DREAMBOOTH_TOOLS_DBTOOL_PARITY_UTIL_H_

#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "tools/dbtool/parity_registry.h"
#include "worker/diffusion/schedulers/scheduler.h"

namespace dreambooth::dbtool {

// The fixture's scheduler/scheduler_config.json.
absl::StatusOr<diffusion::SchedulerConfig> FixtureSchedulerConfig(const ParityContext& context);

// The integers K of golden tensors named "<prefix>K.<anything>" (e.g. "step" -> {0, 5, 9}).
std::set<int64_t> IndexedGroups(const diffusion::TensorMap& golden, const std::string& prefix);

}  // namespace dreambooth::dbtool

#endif  // DREAMBOOTH_TOOLS_DBTOOL_PARITY_UTIL_H_
