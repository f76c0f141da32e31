// Averages a step's gradients over the ranks of a data-parallel run while backward still runs,
// as PyTorch's DistributedDataParallel does: parameters are grouped into buckets (in reverse
// order, the order backward finishes them), a post-accumulate hook marks each parameter's
// gradient final, and a communication thread all-reduces each bucket, in bucket order, as soon
// as all of its gradients are final.
#ifndef DREAMBOOTH_WORKER_TRAIN_GRAD_REDUCER_H_
#define DREAMBOOTH_WORKER_TRAIN_GRAD_REDUCER_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "worker/train/collective.h"

namespace dreambooth::train {

class OverlappedGradReducer {
 public:
  // `collective` must outlive the reducer and is used by its thread between Arm and Finish only.
  OverlappedGradReducer(Collective* collective, std::vector<at::Tensor> params,
                        int64_t bucket_bytes = int64_t{25} << 20);
  ~OverlappedGradReducer();  // aborts an armed round
  OverlappedGradReducer(const OverlappedGradReducer&) = delete;
  OverlappedGradReducer& operator=(const OverlappedGradReducer&) = delete;

  // Before the backward pass after which the gradients are the step's (the last micro-batch):
  // installs the hooks and starts the communication thread.
  void Arm();
  // After that backward: a parameter backward did not reach keeps its gradient (zeros when it
  // has none), the remaining buckets are reduced, the hooks removed. Every gradient is then the
  // mean over the ranks. The first collective error, if any.
  absl::Status Finish();
  // Abandons an armed round (backward failed): stops the thread, removes the hooks.
  void Abort();

  int num_buckets() const { return static_cast<int>(buckets_.size()); }

 private:
  class Hook;
  void MarkReady(int param) ABSL_LOCKS_EXCLUDED(mu_);
  void Communicate();
  void RemoveHooks();

  Collective* collective_;
  std::vector<at::Tensor> params_;
  std::vector<std::vector<int>> buckets_;  // parameter indices, bucket 0 first
  std::vector<int> bucket_of_;             // parameter index -> bucket
  std::thread thread_;
  absl::Mutex mu_;
  std::vector<bool> ready_ ABSL_GUARDED_BY(mu_);
  std::vector<int> pending_ ABSL_GUARDED_BY(mu_);  // per bucket: parameters not final yet
  bool abort_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dreambooth::train

#endif  // DREAMBOOTH_WORKER_TRAIN_GRAD_REDUCER_H_
