// Runs one TRAIN task through the job's stages, as the worker's side of docs/architecture.md's job
// lifecycle:
//   PREPARING: fetch and decode-check the instance / class images (an undecodable image fails
//     the job without retries), load the base model, map the spec, fetch the resume checkpoint;
//   GENERATING_CLASS_IMAGES: the regularization set, shared through the server's cache entries;
//   CACHING_LATENTS: VAE posteriors, shared likewise;
//   TRAINING: optimizer steps; every checkpoint (sampleable + resume state) is uploaded and
//     committed under the lease before training goes on;
//   EXPORTING: the final diffusers folder, committed as the FINAL checkpoint.
// Cancellation (heartbeat reply) stops within one training step; a lost lease stops without any
// further write; a worker shutdown commits a resume state and gives the lease back.
#ifndef DREAMBOOTH_WORKER_TRAIN_RUNNER_H_
#define DREAMBOOTH_WORKER_TRAIN_RUNNER_H_

#include "absl/status/status.h"
#include "dreambooth/v1/worker_gateway.pb.h"
#include "worker/worker_context.h"

namespace dreambooth::worker {

// How a TRAIN task ended, from the worker's point of view.
enum class TrainOutcome {
  kCompleted,  // CompleteTask called (job SUCCEEDED, or CANCELLED by the user)
  kFailed,     // FailTask called (retryable or not)
  kReleased,   // worker shutdown: checkpoint committed, lease given back
  kLeaseLost,  // another attempt owns the job; nothing more was written
};

// Runs `task` (kind TRAIN) to its end and reports the end to the server. Blocks; call from the
// worker's training thread. Never throws.
TrainOutcome RunTrainTask(const WorkerContext& context, const v1::Task& task);

}  // namespace dreambooth::worker

#endif  // DREAMBOOTH_WORKER_TRAIN_RUNNER_H_
