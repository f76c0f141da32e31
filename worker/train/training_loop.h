// The optimizer-step loop of DreamBoothTrainer (stage 3): resume, micro-batches, AdamW with
// clipping / accumulation / loss scaling, EMA, checkpoints, validation, final export.
// Internal to worker/train; use dreambooth_trainer.h.
#ifndef DREAMBOOTH_WORKER_TRAIN_TRAINING_LOOP_H_
#define DREAMBOOTH_WORKER_TRAIN_TRAINING_LOOP_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/train/dreambooth_trainer.h"
#include "worker/train/frozen_modules.h"
#include "worker/train/image_dataset.h"
#include "worker/train/progress.h"
#include "worker/train/train_options.h"
#include "worker/train/training_data.h"

namespace dreambooth::train::internal {

// Everything the loop borrows from the trainer; all references outlive the call.
struct LoopContext {
  const TrainOptions& options;
  diffusion::StableDiffusion& model;
  const TrainCallbacks& callbacks;
  at::Device device;
  const std::vector<ImageRecord>& instances;
  const std::vector<ImageRecord>& classes;  // empty without prior preservation
  PosteriorSource& posteriors;
  const FrozenModules& frozen;  // exports write the frozen modules' float32 weights through it
  // Embeddings [77, D] of a prompt with the frozen text encoder (no graph).
  std::function<absl::StatusOr<at::Tensor>(const std::string&)> frozen_prompt_embeddings;
  std::function<void(const TrainProgress&)> report;
};

absl::StatusOr<TrainResult> RunTrainingLoop(const LoopContext& context);

}  // namespace dreambooth::train::internal

#endif  // DREAMBOOTH_WORKER_TRAIN_TRAINING_LOOP_H_
