// Local worker processes of dreamboothd (`--local-workers N|auto`): plans one worker per
// visible GPU (or one CPU worker), spawns `dreambooth-worker` children pointed at this server,
// prefixes their output with [worker-N] (or hands it to a callback), restarts a child that exits
// with exponential backoff, and stops them on shutdown (SIGTERM, then SIGKILL after a grace
// period).
#ifndef DREAMBOOTH_SERVER_WORKER_SUPERVISOR_H_
#define DREAMBOOTH_SERVER_WORKER_SUPERVISOR_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace dreambooth::server {

// One planned child.
struct WorkerSlot {
  int index = 0;                     // N in [worker-N]
  std::string device;                // the child's --device: "cpu" or "cuda:0"
  std::string cuda_visible_devices;  // the child's CUDA_VISIBLE_DEVICES ("" hides every GPU)
};

// Plans the children for `spec` ("auto" or a positive count). Visible GPUs are the entries of
// `cuda_visible_devices` when it is set (nullptr = unset), else the /dev/nvidia<N> nodes under
// `dev_dir`. "auto": one worker per visible GPU, else one CPU worker. N: N workers spread
// round-robin over the visible GPUs, else N CPU workers. Every child sees exactly one GPU (as
// cuda:0) or none. INVALID_ARGUMENT for a malformed spec.
absl::StatusOr<std::vector<WorkerSlot>> PlanLocalWorkers(const std::string& spec,
                                                         const char* cuda_visible_devices,
                                                         const std::string& dev_dir = "/dev");

// The dreambooth-worker binary to run: `flag` when set; else $DB_WORKER_BINARY; else next to
// `self_exe` or in ../worker/ relative to it (the build tree); else "dreambooth-worker" on PATH.
std::string FindWorkerBinary(const std::string& flag, const std::string& self_exe);

struct WorkerSupervisorOptions {
  std::string worker_binary;   // path of dreambooth-worker
  std::string server_address;  // the children's --server, e.g. "127.0.0.1:50051"
  std::string model_root;      // passed as --model-root when set
  std::string cache_dir;       // passed as --cache-dir (shared by the children: content-keyed)
  std::vector<std::string> extra_args;  // appended to every child's arguments
  // Environment entries ("NAME=value") added to every child's, e.g. its worker key (kept out of
  // argv, which every local user can read).
  std::vector<std::string> extra_env;
  int64_t initial_backoff_ms = 1000;  // first restart delay; doubles per quick crash
  int64_t max_backoff_ms = 60'000;
  int64_t stable_after_ms = 60'000;  // a child that ran this long restarts without delay growth
  int64_t grace_ms = 30'000;         // SIGTERM -> SIGKILL on Stop()
  // Receives every output line of the children, already prefixed "[worker-N] ", and the
  // supervisor's own lines ("[supervisor] ..."). Default: stderr. Called from reader threads.
  std::function<void(const std::string&)> log;
  // When set, receives the children's output lines instead of `log`: worker N's index and the
  // line as it wrote it (no prefix). Called from reader threads.
  std::function<void(int index, const std::string& line)> worker_log;
};

// Thread-safe. Stop() (or the destructor) ends every child.
class WorkerSupervisor {
 public:
  static absl::StatusOr<std::unique_ptr<WorkerSupervisor>> Start(WorkerSupervisorOptions options,
                                                                 std::vector<WorkerSlot> slots);
  ~WorkerSupervisor();
  WorkerSupervisor(const WorkerSupervisor&) = delete;
  WorkerSupervisor& operator=(const WorkerSupervisor&) = delete;

  // SIGTERM to every child, SIGKILL to those still running after grace_ms; joins all threads.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  // Current pid of each slot's child (0 while it is waiting to restart).
  std::vector<pid_t> pids() const ABSL_LOCKS_EXCLUDED(mu_);
  // Times each slot's child was started (1 + restarts).
  std::vector<int> starts() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Child;
  WorkerSupervisor(WorkerSupervisorOptions options, std::vector<WorkerSlot> slots);
  void Monitor() ABSL_LOCKS_EXCLUDED(mu_);
  // Starts `child`'s process and its output reader.
  absl::Status Spawn(Child& child) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Log(const std::string& line) const;

  const WorkerSupervisorOptions options_;
  mutable absl::Mutex mu_;
  // A Child's fields are reached only through children_, so mu_ guards them too.
  std::vector<std::unique_ptr<Child>> children_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> stopping_{false};
  std::thread monitor_;
};

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_WORKER_SUPERVISOR_H_
