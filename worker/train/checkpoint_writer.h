// Artefacts of a training run other than the resume state: validation images, sampleable
// checkpoints (a complete diffusers folder in fp16 plus the validation PNGs of that step, kept
// with their own retention) and the final export (a complete float32 diffusers folder).
// Every folder is written to a staging path and renamed into place.
#ifndef DREAMBOOTH_WORKER_TRAIN_CHECKPOINT_WRITER_H_
#define DREAMBOOTH_WORKER_TRAIN_CHECKPOINT_WRITER_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/train/provenance.h"
#include "worker/train/train_options.h"

namespace dreambooth::train {

// A named image: file name ("prompt-00-00.png") and uint8 [H, W, 3] pixels.
using NamedImage = std::pair<std::string, at::Tensor>;

// Samples every validation prompt (num_validation_images each) with the validation sampler, at
// the training resolution, with the fixed seed options.seed, using the model's current weights.
// The UNet and text encoder are put in eval mode for sampling and restored afterwards.
absl::StatusOr<std::vector<NamedImage>> RenderValidationImages(diffusion::StableDiffusion& model,
                                                               const TrainOptions& options);

// Writes `images` as PNGs into `dir` (created); returns the paths.
absl::StatusOr<std::vector<std::string>> WritePngs(const std::string& dir,
                                                   const std::vector<NamedImage>& images);

// Writes <root>/checkpoint-<step>/ (diffusers folder in fp16, validation/ PNGs, and
// training_step.json), then keeps only the newest `keep` checkpoints (0 = all). Returns the
// folder and, through `image_paths`, the PNG paths inside it.
// `provenance` goes into every weight file's metadata and the folder's README.md model card.
absl::StatusOr<std::string> WriteSampleableCheckpoint(diffusion::StableDiffusion& model,
                                                      const std::string& root, int64_t step,
                                                      const std::vector<NamedImage>& images,
                                                      int keep,
                                                      std::vector<std::string>* image_paths,
                                                      const ModelProvenance& provenance = {});

// Writes the complete model as a float32 diffusers folder at `dir` (replacing an existing one),
// with `provenance` as for WriteSampleableCheckpoint.
absl::Status ExportDiffusersFolder(diffusion::StableDiffusion& model, const std::string& dir,
                                   const ModelProvenance& provenance = {});

// Writes provenance.model_card as <dir>/README.md; nothing when the card is empty.
absl::Status WriteModelCard(const std::string& dir, const ModelProvenance& provenance);

}  // namespace dreambooth::train

#endif  // DREAMBOOTH_WORKER_TRAIN_CHECKPOINT_WRITER_H_
