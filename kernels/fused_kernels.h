// Process-wide switches for the fused kernels of this folder. Each is used where it measures
// faster than LibTorch's ops on the device and is off by default until measured so
// (docs/benchmarks-diffusion.md); on the CPU a switched-on kernel runs its at:: reference.
// The default comes from DB_FUSED_KERNELS ("none", "all" or a comma list of names), read once.
#ifndef DREAMBOOTH_KERNELS_FUSED_KERNELS_H_
#define DREAMBOOTH_KERNELS_FUSED_KERNELS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dreambooth::kernels {

struct FusedKernels {
  bool group_norm_silu = false;   // ResnetBlock2D's norm + SiLU (group_norm_silu.h)
  bool guided_ddim_step = false;  // guidance + deterministic DDIM step (guided_ddim_step.h)
};

// Parses "none", "all" or a comma list of group_norm_silu, guided_ddim_step.
// INVALID_ARGUMENT naming an unknown entry.
absl::StatusOr<FusedKernels> ParseFusedKernels(absl::string_view spec);
// "none", "all" or the comma list of the enabled ones.
std::string FusedKernelsName(const FusedKernels& kernels);

// The switches now. Thread-safe; set them before the model runs.
FusedKernels ActiveFusedKernels();
void SetFusedKernels(const FusedKernels& kernels);

}  // namespace dreambooth::kernels

#endif  // DREAMBOOTH_KERNELS_FUSED_KERNELS_H_
