// Pieces shared by the model loader, saver and single-file converter (internal).
#ifndef DREAMBOOTH_WORKER_DIFFUSION_IO_MODEL_LOADER_INTERNAL_H_
#define DREAMBOOTH_WORKER_DIFFUSION_IO_MODEL_LOADER_INTERNAL_H_

#include <string>

#include "absl/status/statusor.h"
#include "worker/diffusion/io/model_loader.h"

namespace dreambooth::diffusion::loader_internal {

// Raw weights of the three neural components, with diffusers names.
struct ComponentWeights {
  TensorMap text_encoder;
  TensorMap unet;
  TensorMap vae;
};

// Everything a model is made of besides its weights.
struct ModelParts {
  ClipTextConfig text_encoder_config;
  UNet2DConditionConfig unet_config;
  AutoencoderKLConfig vae_config;
  SchedulerConfig scheduler_config;
};

// Builds the modules from `parts`, loads `weights` strictly (VAE legacy names normalised,
// text_model.embeddings.position_ids dropped when the module has no such buffer), computes the
// digest from the weights as given, and moves everything to options' device and dtype.
absl::StatusOr<StableDiffusion> AssembleModel(CLIPTokenizer tokenizer, const ModelParts& parts,
                                              ComponentWeights weights, const std::string& source,
                                              const LoadOptions& options);

// "sha256:<hex>" over component name, tensor names, dtypes, shapes and bytes.
std::string WeightsDigest(const ComponentWeights& weights);

// A model stored in an LDM single file (defined in single_file.cc).
absl::StatusOr<StableDiffusion> LoadSingleFile(const std::string& path, const LoadOptions& options);
absl::Status WriteSingleFile(const StableDiffusion& model, const std::string& path,
                             const SaveOptions& options);

// Weights of `model` converted for saving: floating tensors cast to options.dtype, on CPU.
absl::StatusOr<TensorMap> WeightsForSaving(const torch::nn::Module& module,
                                           const SaveOptions& options);

}  // namespace dreambooth::diffusion::loader_internal

#endif  // DREAMBOOTH_WORKER_DIFFUSION_IO_MODEL_LOADER_INTERNAL_H_
