// The lease loops of a dreambooth-worker process. Training and sampling share the process but
// not a thread: one loop leases only TRAIN tasks and runs them on its thread; a second loop
// leases only SAMPLE tasks, so a Sample call is served while a long job trains (the two compete
// for the device, not for a queue slot). Each loop long-polls LeaseTask, advertising the base
// models found under --model-root.
#ifndef DREAMBOOTH_WORKER_WORKER_LOOP_H_
#define DREAMBOOTH_WORKER_WORKER_LOOP_H_

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "dreambooth/v1/worker_gateway.pb.h"
#include "worker/worker_context.h"

namespace dreambooth::worker {

// Thread-safe: Start() once, then Shutdown() from any thread (e.g. a signal thread), then Wait().
class WorkerLoops {
 public:
  // `context` (and what it points to) must outlive this object; its shutting_down flag must be
  // the one Shutdown() raises (see shutdown_flag()).
  explicit WorkerLoops(WorkerContext context);
  ~WorkerLoops();

  // Starts the TRAIN loop and/or the SAMPLE loop per options.train / options.sample.
  void Start();
  // Asks the loops to stop: running training checkpoints and releases its lease, idle loops
  // return from their long poll.
  void Shutdown();
  // Joins the loops. Returns the number of tasks run.
  int64_t Wait();

  // The flag Shutdown() raises; the WorkerContext's shutting_down must point at it.
  std::atomic<bool>* shutdown_flag() { return &shutdown_; }

 private:
  void Loop(v1::TaskKind kind);

  WorkerContext context_;
  std::atomic<bool> shutdown_{false};
  std::atomic<int64_t> tasks_run_{0};
  std::vector<std::thread> threads_;
};

}  // namespace dreambooth::worker

#endif  // DREAMBOOTH_WORKER_WORKER_LOOP_H_
