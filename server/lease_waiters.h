// Long-polling LeaseTask calls (wait_ms > 0) parked without blocking gRPC's callback threads.
// One background thread retries every parked call when woken (a job was queued or requeued, a
// sample was enqueued) and at least every 50 ms, and finishes it when a task is found, its wait
// expires, the caller cancels, or Close() is called. At most `max_parked_per_peer` calls of one
// peer host park at once; more are answered RESOURCE_EXHAUSTED at once. Thread-safe.
#ifndef DREAMBOOTH_SERVER_LEASE_WAITERS_H_
#define DREAMBOOTH_SERVER_LEASE_WAITERS_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <list>
#include <map>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "dreambooth/v1/worker_gateway.pb.h"

namespace dreambooth::server {

class LeaseWaiters {
 public:
  // Tries to lease a task for `request` into `response`: true when one was granted.
  using TryLease = std::function<absl::StatusOr<bool>(const v1::LeaseTaskRequest& request,
                                                      v1::LeaseTaskResponse* response)>;

  // max_parked_per_peer 0: no limit.
  explicit LeaseWaiters(TryLease try_lease, int max_parked_per_peer = 0);
  // Close()s and joins the thread.
  ~LeaseWaiters();

  // Parks a call until `deadline`. The pointers must stay valid until the reactor is finished
  // (gRPC guarantees this for an unfinished call). After Close(), finishes it at once (empty);
  // over the peer's limit, finishes it at once with RESOURCE_EXHAUSTED naming the limit.
  void Park(grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor,
            const v1::LeaseTaskRequest* request, v1::LeaseTaskResponse* response,
            std::chrono::steady_clock::time_point deadline) ABSL_LOCKS_EXCLUDED(mu_);
  // Retries the parked calls now.
  void Wake() ABSL_LOCKS_EXCLUDED(mu_);
  // Finishes every parked call with an empty response and parks no more (server shutdown).
  void Close() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Waiter {
    grpc::CallbackServerContext* context;
    grpc::ServerUnaryReactor* reactor;
    const v1::LeaseTaskRequest* request;
    v1::LeaseTaskResponse* response;
    std::chrono::steady_clock::time_point deadline;
    std::string peer;  // host part of context->peer()
  };
  // Finishes a parked call and forgets it in the per-peer count.
  void Finish(const Waiter& w, const grpc::Status& status) ABSL_LOCKS_EXCLUDED(mu_);
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);
  // The background thread's wake-up condition (for Mutex::AwaitWithTimeout).
  bool WokenOrClosed() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return woken_ || closed_; }

  const TryLease try_lease_;
  const int max_parked_per_peer_;
  absl::Mutex mu_;
  std::map<std::string, int> parked_per_peer_ ABSL_GUARDED_BY(mu_);
  std::list<Waiter> waiters_ ABSL_GUARDED_BY(mu_);
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_LEASE_WAITERS_H_
