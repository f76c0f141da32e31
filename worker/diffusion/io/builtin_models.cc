#include "worker/diffusion/io/builtin_models.h"

#include <cstdlib>
#include <filesystem>

#ifndef DB_MODELS_DIR
#error "DB_MODELS_DIR must be defined by the build (worker/diffusion/CMakeLists.txt)"
#endif

namespace dreambooth::diffusion {

namespace {

std::string FromEnvOr(const char* name, const char* file) {
  const char* env = std::getenv(name);
  if (env != nullptr && env[0] != '\0') return env;
  return (std::filesystem::path(DB_MODELS_DIR) / file).string();
}

}  // namespace

std::string ToyModelDir() { return FromEnvOr("DREAMBOOTH_TOY_MODEL_DIR", "toy"); }

std::string ToyClassifierPath() {
  return FromEnvOr("DREAMBOOTH_TOY_CLASSIFIER", "toy-classifier.safetensors");
}

bool ToyModelAvailable() {
  std::error_code ec;
  return std::filesystem::is_regular_file(std::filesystem::path(ToyModelDir()) / "model_index.json",
                                          ec);
}

}  // namespace dreambooth::diffusion
