// The built-in architectures `dbtool init-model` and `dbtool memory` build with random weights.
#ifndef DREAMBOOTH_TOOLS_DBTOOL_RANDOM_ARCHS_H_
#define DREAMBOOTH_TOOLS_DBTOOL_RANDOM_ARCHS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "worker/diffusion/io/model_loader.h"

namespace dreambooth::dbtool {

// The names RandomArchSpec accepts, for help texts: "toy | tiny | mid | sd15".
inline constexpr char kRandomArchNames[] = "toy | tiny | mid | sd15";

// The configs of `arch` with the tiny model's scheduler and `seed`:
//   toy, tiny  the built-in architectures (worker/diffusion/models/tiny_model.h);
//   mid        tests/data/bench/mid's UNet (128/256/256 channels, cross_attention_dim 768)
//              with SD 1.5's VAE and text encoder (256x256 images give its 32x32 latents);
//   sd15       Stable Diffusion 1.5 (sd15_config.h).
// INVALID_ARGUMENT naming the choices for another name.
absl::StatusOr<diffusion::RandomModelSpec> RandomArchSpec(const std::string& arch, uint64_t seed);

}  // namespace dreambooth::dbtool

#endif  // DREAMBOOTH_TOOLS_DBTOOL_RANDOM_ARCHS_H_
