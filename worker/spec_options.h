// The one place where a resolved job spec (proto dreambooth.v1.JobSpec; its rules live in spec/)
// becomes the training engine's TrainOptions, and sampler settings become scheduler names.
#ifndef DREAMBOOTH_WORKER_SPEC_OPTIONS_H_
#define DREAMBOOTH_WORKER_SPEC_OPTIONS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dreambooth/v1/job_spec.pb.h"
#include "worker/train/train_options.h"

namespace dreambooth::worker {

namespace v1 = ::dreambooth::v1;

// Local paths and runtime settings the spec does not carry.
struct TaskPaths {
  std::string base_model;    // resolved base model: "tiny" or a folder under --model-root
  std::string instance_dir;  // downloaded instance images
  std::string class_dir;     // downloaded user class images ("" when none)
  std::string output_dir;    // per-task work folder (resume states, checkpoints, export)
  std::string class_cache_dir;
  std::string latent_cache_dir;
  std::string device = "cpu";
  int num_threads = 0;
  // Data parallel (spec.num_devices x spec.num_nodes > 1): this process's global rank (node n's
  // ranks are n x num_devices ..), rank 0's rendezvous host:port, how long a silent rank may
  // take and how long the ranks wait for each other to join (0: the engine's defaults). The
  // ranks of one worker share its caches and split class-image generation and latent caching.
  int rank = 0;
  std::string rendezvous;
  int64_t collective_timeout_ms = 0;
  int64_t rendezvous_timeout_ms = 0;
};

// The diffusion scheduler name for `kind`. A kind the diffusion library does not implement would
// fall back to DDIM, with the substitution appended to `warnings` (may be null); every kind of
// the v1 API is implemented today.
std::string SchedulerName(v1::SchedulerKind kind, std::vector<std::string>* warnings);

// Maps resolved sampler settings (spec::ResolveSampler).
train::SamplerOptions ToSamplerOptions(const v1::SamplerSettings& settings,
                                       std::vector<std::string>* warnings);

// Maps every field of a resolved `spec` (spec::ResolveJobSpec) without defaulting anything.
// INVALID_ARGUMENT (naming the spec field) when the spec is not resolved or breaks a rule
// (spec::CheckResolvedJobSpec); the result is also checked with train::ValidateTrainOptions.
absl::StatusOr<train::TrainOptions> ToTrainOptions(const v1::JobSpec& spec, const TaskPaths& paths,
                                                   std::vector<std::string>* warnings);

}  // namespace dreambooth::worker

#endif  // DREAMBOOTH_WORKER_SPEC_OPTIONS_H_
