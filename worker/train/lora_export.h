// Artefacts of a DreamBooth-LoRA run: the adapters in the diffusers and kohya layouts (with the
// validation images of that step), and the merged model (adapters folded into the base) as a
// diffusers folder plus an LDM single file. Every folder is staged and renamed into place.
#ifndef DREAMBOOTH_WORKER_TRAIN_LORA_EXPORT_H_
#define DREAMBOOTH_WORKER_TRAIN_LORA_EXPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/diffusion/io/lora_file.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/diffusion/models/lora.h"
#include "worker/train/checkpoint_writer.h"

namespace dreambooth::train {

// File names inside the folders below.
inline constexpr char kMergedSingleFileName[] = "merged.safetensors";

struct LoraCheckpointFolders {
  std::string diffusers_dir;                   // pytorch_lora_weights.safetensors, validation/*.png
  std::string kohya_dir;                       // <kohya_stem>.safetensors with ss_* metadata
  std::vector<std::string> validation_images;  // paths inside diffusers_dir
};

// Writes <dir>/diffusers/ and <dir>/kohya/ (replacing an existing <dir>) for `adapters`.
absl::StatusOr<LoraCheckpointFolders> WriteLoraCheckpoint(const diffusion::LoraAdapterSet& adapters,
                                                          const std::string& dir, int64_t step,
                                                          const std::vector<NamedImage>& images,
                                                          const diffusion::KohyaRunInfo& info,
                                                          const std::string& kohya_stem);

// Writes `model` with `adapters` merged into its weights at `dir`: a float32 diffusers folder and
// <dir>/merged.safetensors, with `provenance` in every weight file's metadata and as the folder's
// README.md (as ExportDiffusersFolder). The model's own weights are restored afterwards (it is
// used in place and must hold float32 weights during the call).
absl::Status ExportMergedModel(diffusion::StableDiffusion& model,
                               const diffusion::LoraAdapterSet& adapters, const std::string& dir,
                               const ModelProvenance& provenance = {});

}  // namespace dreambooth::train

#endif  // DREAMBOOTH_WORKER_TRAIN_LORA_EXPORT_H_
