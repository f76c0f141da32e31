// A fixed number of threads running submitted work in order of submission: CPU-heavy request
// work (decoding uploaded images) runs here instead of on gRPC's callback threads, at most
// `threads` at once, so it cannot starve other calls (workers' heartbeats). Thread-safe.
#ifndef DREAMBOOTH_SERVER_WORK_POOL_H_
#define DREAMBOOTH_SERVER_WORK_POOL_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace dreambooth::server {

class WorkPool {
 public:
  explicit WorkPool(int threads);
  // Runs the work already submitted, then joins the threads.
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  void Submit(std::function<void()> work) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Run() ABSL_LOCKS_EXCLUDED(mu_);
  bool HasWorkOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !queue_.empty() || stopping_;
  }

  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_WORK_POOL_H_
