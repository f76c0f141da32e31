// LoRA adapter files: reading the layouts other tools write and writing the two that Stable
// Diffusion tools load (docs/lora.md says which tool loads which).
//   kDiffusers: diffusers' pytorch_lora_weights.safetensors (StableDiffusionLoraLoaderMixin.
//     save_lora_weights after convert_state_dict_to_diffusers): "unet.<attention>.to_q.lora.down.
//     weight", "text_encoder.text_model.<...>.q_proj.lora_linear_layer.up.weight", other layers
//     peft's "<path>.lora_A.weight" / ".lora_B.weight"; no alpha (diffusers assumes alpha =
//     rank), so the writer folds alpha / rank into the up weights.
//   kKohya: kohya sd-scripts / A1111 / ComfyUI: "lora_unet_<path with _>.lora_down.weight",
//     ".lora_up.weight", ".alpha" (0-dim), "lora_te_<path>..." for the text encoder, and ss_*
//     metadata.
// Reading also accepts peft names (lora_A / lora_B, "base_model.model." prefixes), diffusers'
// older attention-processor names ("attn1.processor.to_q_lora.down.weight") and kohya names in
// the original LDM layout ("lora_unet_input_blocks_1_1_..."). Layer names are resolved against the
// model the adapters are for.
#ifndef DREAMBOOTH_WORKER_DIFFUSION_IO_LORA_FILE_H_
#define DREAMBOOTH_WORKER_DIFFUSION_IO_LORA_FILE_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/diffusion/io/safetensors.h"
#include "worker/diffusion/models/lora.h"

namespace dreambooth::diffusion {

enum class LoraFileFormat { kDiffusers, kKohya };

// Names used in job specs, flags and docs: "diffusers", "kohya".
const char* LoraFileFormatName(LoraFileFormat format);

// The conventional file name of a format: "pytorch_lora_weights.safetensors" for diffusers,
// "<stem>.safetensors" for kohya (callers choose the stem).
inline constexpr char kDiffusersLoraFileName[] = "pytorch_lora_weights.safetensors";

struct LoraFile {
  std::map<std::string, LoraWeights> adapters;  // layer name ("unet.<path>") -> float32 weights
  std::map<std::string, std::string> metadata;  // the file's __metadata__
  LoraFileFormat format = LoraFileFormat::kDiffusers;
};

// Adapters of `tensors` (a file's content) for `model`. INVALID_ARGUMENT naming the first key that
// is not a LoRA weight of a layer of this model, an adapter missing its down or up half, or a
// shape mismatch; UNIMPLEMENTED for other adapter types (LoHa, LoKr, DoRA) and SDXL keys.
absl::StatusOr<LoraFile> ParseLoraTensors(const TensorMap& tensors,
                                          const std::map<std::string, std::string>& metadata,
                                          const StableDiffusion& model);
// Reads `path` (safetensors) and parses it as above.
absl::StatusOr<LoraFile> ReadLoraFile(const std::string& path, const StableDiffusion& model);

// The tensors a file of `format` holds for `adapters` (float32, on CPU).
TensorMap LoraFileTensors(const std::map<std::string, LoraWeights>& adapters,
                          LoraFileFormat format);

// Writes `adapters` to `path` in `format` (atomically), with `metadata` (kohya: add the ss_*
// keys, see KohyaMetadata; diffusers: written as given).
absl::Status WriteLoraFile(const std::string& path,
                           const std::map<std::string, LoraWeights>& adapters,
                           LoraFileFormat format,
                           const std::map<std::string, std::string>& metadata = {});

// What kohya's sd-scripts record about a training run, as far as this service knows it. Unknown
// (zero / empty) fields are left out of the metadata.
struct KohyaRunInfo {
  std::string base_model;  // ss_sd_model_name
  int64_t rank = 0;        // ss_network_dim
  double alpha = 0;        // ss_network_alpha
  int64_t steps = 0;       // ss_steps / ss_max_train_steps
  double learning_rate = 0;
  std::string instance_prompt;  // in ss_training_comment and ss_tag_frequency
  int64_t resolution = 0;
  bool text_encoder_trained = false;
  double dropout = 0;
  int64_t num_images = 0;
};
std::map<std::string, std::string> KohyaMetadata(const KohyaRunInfo& info);

}  // namespace dreambooth::diffusion

#endif  // DREAMBOOTH_WORKER_DIFFUSION_IO_LORA_FILE_H_
