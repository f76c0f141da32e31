// The resume state of a training run: everything needed to continue the same loss curve bit for
// bit on the same device (trained weights, AdamW moments, RNG state, step, loss scale, EMA).
// Stored as a folder <root>/step-<8 digits>/ holding trainer_state.json and safetensors files,
// written to a staging folder and renamed into place (a crash leaves the old or the new state).
#ifndef DREAMBOOTH_WORKER_TRAIN_RESUME_STATE_H_
#define DREAMBOOTH_WORKER_TRAIN_RESUME_STATE_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/diffusion/io/safetensors.h"

namespace dreambooth::train {

struct ResumeState {
  int64_t step = 0;                   // optimizer steps completed
  nlohmann::json fingerprint;         // TrainingFingerprint of the run that wrote it
  at::Tensor generator_state;         // the training CPU generator's state (uint8)
  diffusion::TensorMap optimizer;     // AdamW::StateDict()
  diffusion::TensorMap unet;          // trained UNet weights (float32)
  diffusion::TensorMap text_encoder;  // trained text-encoder weights; empty when frozen
  diffusion::TensorMap ema_unet;      // EMA weights; empty without EMA
  int64_t ema_updates = 0;
  double loss_scale = 0.0;  // dynamic loss scale (fp16 on CUDA); 0 when unused
  int64_t loss_scale_growth_tracker = 0;
};

// Writes `state` as <root>/step-XXXXXXXX atomically, then deletes all but the newest
// `keep_last` step folders. Returns the folder written.
absl::StatusOr<std::string> SaveResumeState(const std::string& root, const ResumeState& state,
                                            int keep_last);

// Reads a folder written by SaveResumeState. NOT_FOUND when absent, DATA_LOSS when incomplete
// or malformed (the message names the file).
absl::StatusOr<ResumeState> LoadResumeState(const std::string& dir);

// The newest complete step folder under `root`; NOT_FOUND when there is none.
absl::StatusOr<std::string> LatestResumeState(const std::string& root);

// (step, path) of the folders <root>/<prefix><digits>, ascending by step. Staging folders and
// anything else are ignored.
std::vector<std::pair<int64_t, std::string>> ListStepFolders(const std::string& root,
                                                             const std::string& prefix);

// Deletes all but the newest `keep` folders listed by ListStepFolders (keep <= 0: none deleted).
absl::Status PruneStepFolders(const std::string& root, const std::string& prefix, int keep);

}  // namespace dreambooth::train

#endif  // DREAMBOOTH_WORKER_TRAIN_RESUME_STATE_H_
