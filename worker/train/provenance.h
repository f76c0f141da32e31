// How a trained model was made, recorded in what training writes: a "dreambooth.*" entry per fact
// in every safetensors file's metadata of SAMPLEABLE checkpoints and the FINAL export, and a
// README.md model card (Hugging Face's format: YAML front matter, then prose) in those folders.
#ifndef DREAMBOOTH_WORKER_TRAIN_PROVENANCE_H_
#define DREAMBOOTH_WORKER_TRAIN_PROVENANCE_H_

#include <cstdint>
#include <map>
#include <string>

#include "worker/diffusion/io/model_loader.h"

namespace dreambooth::train {

struct TrainOptions;

// The metadata and model card of one checkpoint folder.
struct ModelProvenance {
  std::map<std::string, std::string> metadata;
  std::string model_card;  // README.md; "" => none written
};

// The provenance of `model` trained with `options` up to `step`: the options' own `provenance`
// entries (the service adds the job id, attempt and spec digest) plus the software version,
// seed, step, training settings, base model (name, weight digest, license when its folder says),
// and the instance images' digests when known (TrainOptions::verified_image_digests).
ModelProvenance DescribeProvenance(const TrainOptions& options,
                                   const diffusion::StableDiffusion& model, int64_t step);

}  // namespace dreambooth::train

#endif  // DREAMBOOTH_WORKER_TRAIN_PROVENANCE_H_
