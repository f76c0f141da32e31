// Where the built-in `toy` model's weights and its evaluator live (`tiny` needs no files).
#ifndef DREAMBOOTH_WORKER_DIFFUSION_IO_BUILTIN_MODELS_H_
#define DREAMBOOTH_WORKER_DIFFUSION_IO_BUILTIN_MODELS_H_

#include <string>

namespace dreambooth::diffusion {

// The toy model's diffusers folder: $DREAMBOOTH_TOY_MODEL_DIR when set, else the source tree's
// assets/models/toy (the path is compiled in).
std::string ToyModelDir();

// True when ToyModelDir() holds a model (its model_index.json exists).
bool ToyModelAvailable();

// The toy world's attribute classifier (evaluation/attribute_classifier.h), which dbtool eval
// scores with: $DREAMBOOTH_TOY_CLASSIFIER when set, else the source tree's
// assets/models/toy-classifier.safetensors.
std::string ToyClassifierPath();

}  // namespace dreambooth::diffusion

#endif  // DREAMBOOTH_WORKER_DIFFUSION_IO_BUILTIN_MODELS_H_
