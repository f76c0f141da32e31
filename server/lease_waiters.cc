#include "server/lease_waiters.h"

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
    std::lock_guard<std::mutex> lock(mu_);
    if (!closed_) {
      waiters_.push_back({context, reactor, request, response, deadline});
      return;
    }
  }
  reactor->Finish(grpc::Status::OK);
}

void LeaseWaiters::Wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

void LeaseWaiters::Close() {
  std::list<Waiter> closing;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    closing.swap(waiters_);
  }
  cv_.notify_all();
  for (Waiter& w : closing) w.reactor->Finish(grpc::Status::OK);
}

void LeaseWaiters::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait_for(lock, std::chrono::milliseconds(50), [this] { return woken_ || closed_; });
    if (closed_ && waiters_.empty()) return;
    woken_ = false;
    std::list<Waiter> batch;
    batch.swap(waiters_);
    lock.unlock();
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
    lock.lock();
    if (closed_) {
      lock.unlock();
      for (Waiter& w : still_waiting) w.reactor->Finish(grpc::Status::OK);
      lock.lock();
      continue;
    }
    waiters_.splice(waiters_.begin(), still_waiting);
  }
}

}  // namespace dreambooth::server
