// The base models known by name to every worker build: "tiny" (random weights, built into the
// binaries: proves the plumbing, learns nothing visible) and "toy" (a small Stable Diffusion
// pretrained on the rendered toy world, shipped in assets/models/toy; docs/toy-world.md).
#ifndef DREAMBOOTH_SPEC_BUILTIN_MODELS_H_
#define DREAMBOOTH_SPEC_BUILTIN_MODELS_H_

#include <string_view>

namespace dreambooth::spec {

inline constexpr std::string_view kTinyModel = "tiny";
inline constexpr std::string_view kToyModel = "toy";

inline bool IsBuiltinModel(std::string_view name) {
  return name == kTinyModel || name == kToyModel;
}

}  // namespace dreambooth::spec

#endif  // DREAMBOOTH_SPEC_BUILTIN_MODELS_H_
