// What every task runner of a worker process shares: its settings, the gateway client, the
// sampling model cache, and helpers to resolve base models and classify errors.
#ifndef DREAMBOOTH_WORKER_WORKER_CONTEXT_H_
#define DREAMBOOTH_WORKER_WORKER_CONTEXT_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/logging.h"
#include "dreambooth/v1/worker_gateway.pb.h"
#include "worker/gateway_client.h"
#include "worker/model_cache.h"

namespace dreambooth::worker {

// Settings of a dreambooth-worker process (its flags).
struct WorkerOptions {
  std::string server = "127.0.0.1:50052";  // dreamboothd's --worker-listen
  std::string model_root;                  // folder of diffusers model folders ("" => only "tiny")
  std::string cache_dir;                   // local caches and per-job work folders
  std::string device = "cpu";
  // Devices TRAIN tasks may use: `device` and the next num_devices - 1 of its kind (cuda:0 with 2:
  // cuda:0 and cuda:1; on the CPU every rank shares the host). A task with spec.num_devices = N
  // trains on the first N.
  int num_devices = 1;
  // Memory admission's budget per device: its free memory, capped by this when > 0.
  int64_t memory_budget_bytes = 0;
  std::string sample_dtype =
      "auto";             // Sample RPCs' weight dtype (diffusion::ResolveInferenceDtype)
  std::string worker_id;  // default "<hostname>/<pid>"
  int num_threads = 0;    // LibTorch intra-op threads (0 = LibTorch's default)
  int64_t sample_cache_bytes = int64_t{4} << 30;  // ModelCache budget
  int lease_wait_ms = 2000;                       // LeaseTask long-poll
  bool train = true;                              // run TRAIN tasks
  bool sample = true;                             // run SAMPLE tasks (own thread)
  int max_tasks = 0;  // exit after this many tasks (0 = unlimited; tests)
  // host:port other workers reach this one at when it leads a multi-node job (its TRAIN
  // ranks' rendezvous); "" => it takes no job with spec.num_nodes > 1.
  std::string gang_address;
};

// Shared by the train and sample loops. The pointed-to objects outlive every task.
struct WorkerContext {
  WorkerOptions options;
  GatewayClient* client = nullptr;
  ModelCache* models = nullptr;
  // Raised once on SIGTERM/SIGINT: running tasks checkpoint and give their lease back, loops
  // stop leasing.
  const std::atomic<bool>* shutting_down = nullptr;
  bool ShuttingDown() const { return shutting_down != nullptr && shutting_down->load(); }
};

// The worker id a loop leases `kind` tasks under: "<worker_id>/train" or "<worker_id>/sample"
// (the Job's worker_id, and the worker_id field of the daemon's and the worker's log lines).
std::string LoopWorkerId(const WorkerOptions& options, v1::TaskKind kind);

// The fields of every log line about `task`: job_id, task_id, worker_id (LoopWorkerId), attempt.
LogFields TaskLogFields(const WorkerOptions& options, const v1::Task& task);

// The device rank `rank` of a multi-device TRAIN task runs on ("cpu", or cuda:<index + rank>).
std::string RankDevice(const WorkerOptions& options, int rank);

// Base model names found under `model_root` (sub-folders holding model_index.json), plus
// "tiny" and, when its weights are installed, "toy" (spec/builtin_models.h), sorted.
std::vector<std::string> ListBaseModels(const std::string& model_root);

// What LoadStableDiffusion should load for the job's base model name: "tiny" / "toy", or the folder
// <model_root>/<name>. NOT_FOUND naming the name and root when it is neither; INVALID_ARGUMENT
// for names that are not a plain folder name.
absl::StatusOr<std::string> ResolveBaseModel(const std::string& model_root,
                                             const std::string& name);

// Whether a failed attempt is worth retrying: transient/infrastructure errors are (out of
// memory, internal errors, unreachable server); deterministic user errors are not (bad spec,
// missing or malformed model or image: INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION,
// DATA_LOSS, OUT_OF_RANGE, UNIMPLEMENTED).
bool IsRetryable(const absl::Status& status);

}  // namespace dreambooth::worker

#endif  // DREAMBOOTH_WORKER_WORKER_CONTEXT_H_
