// Loading and saving whole Stable Diffusion models: diffusers folders (model_index.json, fp32 /
// fp16 / bf16 safetensors, `.fp16` variants), single-file LDM checkpoints (.safetensors with the
// original key names) and the built-in `tiny` model; strict state-dict loading; conversion
// between a diffusers folder and a single file.
#ifndef DREAMBOOTH_WORKER_DIFFUSION_IO_MODEL_LOADER_H_
#define DREAMBOOTH_WORKER_DIFFUSION_IO_MODEL_LOADER_H_

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/diffusion/io/safetensors.h"
#include "worker/diffusion/models/autoencoder_kl.h"
#include "worker/diffusion/models/autoencoder_kl_config.h"
#include "worker/diffusion/models/clip_text_config.h"
#include "worker/diffusion/models/clip_text_model.h"
#include "worker/diffusion/models/unet_2d_condition.h"
#include "worker/diffusion/models/unet_2d_condition_config.h"
#include "worker/diffusion/schedulers/scheduler.h"
#include "worker/diffusion/tokenizer/clip_tokenizer.h"

namespace dreambooth::diffusion {

// A loaded model. Modules are in eval mode on LoadOptions' device and dtype. Not thread-safe
// for concurrent forward calls that change module state (training); inference is fine.
struct StableDiffusion {
  CLIPTokenizer tokenizer;
  CLIPTextModel text_encoder;
  UNet2DConditionModel unet;
  AutoencoderKL vae;
  SchedulerConfig scheduler_config;
  ClipTextConfig text_encoder_config;
  UNet2DConditionConfig unet_config;
  AutoencoderKLConfig vae_config;
  // What was loaded: "tiny", a folder path or a file path.
  std::string source;
  // Content digest of the weights: "sha256:<hex>" over the component names, tensor names, dtypes,
  // shapes and bytes as loaded from disk (before any dtype conversion); equal weights give equal
  // digests whatever the file layout.
  std::string digest;
};

struct LoadOptions {
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;
  // Weight file variant to prefer in a diffusers folder, e.g. "fp16" for
  // diffusion_pytorch_model.fp16.safetensors; falls back to the plain file when absent.
  std::string variant;
};

// Loads `dir_file_or_name`: "tiny" (the built-in model, fixed-seed random weights), "toy" (the
// built-in pretrained toy-world model, builtin_models.h; NOT_FOUND when not installed), a diffusers
// folder (model_index.json + unet/ vae/ text_encoder/ tokenizer/ scheduler/), or a single-file
// .safetensors LDM checkpoint (SD 1.x / 2.x detected from its keys; configs from the file's
// metadata when it was written by ConvertModel, else the SD 1.5 / 2.x presets).
// Errors name the file and what is wrong: missing config or weights, malformed safetensors,
// missing / unexpected / mis-shaped tensors, and pickled checkpoints (.bin, .ckpt, .pt, .pth),
// which are refused with instructions to convert them to safetensors.
absl::StatusOr<StableDiffusion> LoadStableDiffusion(const std::string& dir_file_or_name,
                                                    const LoadOptions& options = {});

// A model of given configs with fixed-seed random weights (tiny_model.h's initialisation; text
// encoder, UNet and VAE drawn from seed, seed + 1 and seed + 2) and the built-in tokenizer.
struct RandomModelSpec {
  ClipTextConfig text_encoder_config;
  UNet2DConditionConfig unet_config;
  AutoencoderKLConfig vae_config;
  SchedulerConfig scheduler_config;
  uint64_t seed = 0;
  std::string source;  // StableDiffusion::source, e.g. "tiny"
};
// Builds a RandomModelSpec's model; INVALID_ARGUMENT when a config does not validate.
absl::StatusOr<StableDiffusion> CreateRandomModel(const RandomModelSpec& spec,
                                                  const LoadOptions& options = {});

struct SaveOptions {
  // dtype of the floating-point weights written (kFloat, kHalf or kBFloat16).
  at::ScalarType dtype = at::kFloat;
  // When set, weight files are named <name>.<variant>.safetensors (diffusers variants).
  std::string variant;
  // Added to every weight file's "__metadata__" (beside "format": "pt"), e.g. provenance.
  std::map<std::string, std::string> metadata;
};

// Writes `model` as a diffusers folder at `dir` (created if needed; existing files replaced
// atomically one by one): model_index.json, configs, tokenizer files and safetensors weights.
absl::Status SaveDiffusersFolder(const StableDiffusion& model, const std::string& dir,
                                 const SaveOptions& options = {});

// Writes `model` as one LDM single-file checkpoint at `path` (.safetensors: the original
// CompVis key names, as A1111 and ComfyUI load them; the configs in the metadata, so that
// LoadStableDiffusion reads it back exactly, beside options.metadata).
absl::Status SaveSingleFile(const StableDiffusion& model, const std::string& path,
                            const SaveOptions& options = {});

// Copies `weights` into `module`'s parameters and buffers by name (named_parameters() /
// named_buffers() keys). Fails without modifying anything when a key is missing, unexpected
// or has the wrong shape; the message lists each (first ones if many) and says `component`.
// Floating-point tensors are converted to the module's dtype.
absl::Status LoadStateDictStrict(torch::nn::Module& module, const TensorMap& weights,
                                 const std::string& component);

// The module's parameters and buffers by name, detached, on their device and dtype.
TensorMap ModuleStateDict(const torch::nn::Module& module);
// The same as independent CPU copies (what LoadStateDictStrict takes back later).
TensorMap ModuleStateDictOnHost(const torch::nn::Module& module);

// Number of parameter elements of `module` (buffers excluded), as diffusers' num_parameters().
int64_t CountParameters(const torch::nn::Module& module);

// Converts between a diffusers folder and a single-file LDM checkpoint, by the kind of `dst`:
// `dst` ending in .safetensors -> a single file (original key names; configs stored in the
// metadata so the file converts back exactly); otherwise -> a diffusers folder, which for a folder
// `src` needs another dtype or variant (re-saving, e.g. fp16 for shipping). Tensors are copied
// exactly (or cast to options.dtype).
absl::Status ConvertModel(const std::string& src, const std::string& dst,
                          const SaveOptions& options = {});

}  // namespace dreambooth::diffusion

#endif  // DREAMBOOTH_WORKER_DIFFUSION_IO_MODEL_LOADER_H_
