// Ranks 1..N-1 of a TRAIN task with spec.num_devices = N: child processes of the worker that
// leased the task (rank 0). Rank 0 fetches the images and resume checkpoint, fills the local
// class-image and latent caches, then writes one plan per rank; each child trains its share of
// every step from that plan and the local caches, and never talks to the server.
#ifndef DREAMBOOTH_WORKER_TRAIN_RANK_H_
#define DREAMBOOTH_WORKER_TRAIN_RANK_H_

#include <atomic>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dreambooth/v1/job_spec.pb.h"
#include "worker/spec_options.h"

namespace dreambooth::worker {

struct RankPlan {
  v1::JobSpec spec;         // resolved
  TaskPaths paths;          // rank 0's folders, with this rank's rank, device and rendezvous
  std::string resume_from;  // rank 0's downloaded resume folder ("" => from step 0)
};

// The plan as a JSON file (written atomically) and back; INVALID_ARGUMENT naming what is wrong.
absl::Status WriteRankPlan(const RankPlan& plan, const std::string& path);
absl::StatusOr<RankPlan> ReadRankPlan(const std::string& path);

// Trains one rank of the plan to the end: loads the base model on the plan's device, takes the
// class images and latents from the local caches, joins the rendezvous and trains. `cancel`
// (may be null) stops it between steps.
absl::Status RunTrainRank(const RankPlan& plan, const std::atomic<bool>* cancel);

}  // namespace dreambooth::worker

#endif  // DREAMBOOTH_WORKER_TRAIN_RANK_H_
