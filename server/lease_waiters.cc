#include "server/lease_waiters.h"

#include "absl/time/time.h"
#include "server/convert.h"

namespace dreambooth::server {

LeaseWaiters::LeaseWaiters(TryLease try_lease)
    : try_lease_(std::move(try_lease)), thread_([this] { Loop(); }) {}

LeaseWaiters::~LeaseWaiters() {
  Close();
  thread_.join();
}

void LeaseWaiters::Park(grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor,
                        const v1::LeaseTaskRequest* request, v1::LeaseTaskResponse* response,
                        std::chrono::steady_clock::time_point deadline) {
  {
    absl::MutexLock lock(&mu_);
    if (!closed_) {
      waiters_.push_back({context, reactor, request, response, deadline});
      return;
    }
  }
  reactor->Finish(grpc::Status::OK);
}

void LeaseWaiters::Wake() {
  absl::MutexLock lock(&mu_);
  woken_ = true;  // the loop's Await sees it when the lock is released
}

void LeaseWaiters::Close() {
  std::list<Waiter> closing;
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    closing.swap(waiters_);
  }
  for (Waiter& w : closing) w.reactor->Finish(grpc::Status::OK);
}

void LeaseWaiters::Loop() {
  while (true) {
    std::list<Waiter> batch;
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(this, &LeaseWaiters::WokenOrClosed),
                           absl::Milliseconds(50));
      if (closed_ && waiters_.empty()) return;
      woken_ = false;
      batch.swap(waiters_);
    }
    // Oldest first, so long waiters get tasks first.
    std::list<Waiter> still_waiting;
    const auto now = std::chrono::steady_clock::now();
    for (Waiter& w : batch) {
      if (w.context->IsCancelled()) {
        w.reactor->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "lease wait cancelled"));
        continue;
      }
      absl::StatusOr<bool> granted = try_lease_(*w.request, w.response);
      if (!granted.ok()) {
        w.reactor->Finish(ToGrpc(granted.status()));
      } else if (*granted || now >= w.deadline) {
        w.reactor->Finish(grpc::Status::OK);
      } else {
        still_waiting.push_back(w);
      }
    }
    {
      absl::MutexLock lock(&mu_);
      if (!closed_) {
        waiters_.splice(waiters_.begin(), still_waiting);
        continue;
      }
    }
    // Closed while these were being retried: Close() did not see them, so they end here.
    for (Waiter& w : still_waiting) w.reactor->Finish(grpc::Status::OK);
  }
}

}  // namespace dreambooth::server
