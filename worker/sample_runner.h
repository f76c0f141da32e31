// Runs one SAMPLE task: finds the model (a committed checkpoint of the job, downloaded into the
// local cache, or the job's base model), keeps it in the worker's ModelCache, renders the
// requested images one at a time and relays progress and each PNG to the waiting Sample call.
#ifndef DREAMBOOTH_WORKER_SAMPLE_RUNNER_H_
#define DREAMBOOTH_WORKER_SAMPLE_RUNNER_H_

#include "absl/status/status.h"
#include "dreambooth/v1/worker_gateway.pb.h"
#include "worker/worker_context.h"

namespace dreambooth::worker {

// Runs `task` (kind SAMPLE) to its end: CompleteTask after the last image (or when the caller
// went away), FailTask with the error otherwise. Returns the error that ended the task, if any
// (already reported to the server). Thread-compatible: one task at a time per thread.
absl::Status RunSampleTask(const WorkerContext& context, const v1::Task& task);

}  // namespace dreambooth::worker

#endif  // DREAMBOOTH_WORKER_SAMPLE_RUNNER_H_
