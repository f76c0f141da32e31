#include "server/lease_waiters.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/convert.h"

namespace dreambooth::server {
namespace {

// "ipv4:10.0.0.7:41234" -> "ipv4:10.0.0.7", "ipv6:[::1]:5000" -> "ipv6:[::1]"; others as they are.
std::string PeerHost(const std::string& peer) {
  if (!absl::StartsWith(peer, "ipv4:") && !absl::StartsWith(peer, "ipv6:")) return peer;
  const size_t colon = peer.rfind(':');
  return colon > 4 ? peer.substr(0, colon) : peer;
}

}  // namespace

LeaseWaiters::LeaseWaiters(TryLease try_lease, int max_parked_per_peer)
    : try_lease_(std::move(try_lease)),
      max_parked_per_peer_(max_parked_per_peer),
      thread_([this] { Loop(); }) {}

LeaseWaiters::~LeaseWaiters() {
  Close();
  thread_.join();
}

void LeaseWaiters::Park(grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor,
                        const v1::LeaseTaskRequest* request, v1::LeaseTaskResponse* response,
                        std::chrono::steady_clock::time_point deadline) {
  const std::string peer = PeerHost(context->peer());
  {
    absl::MutexLock lock(&mu_);
    int& parked = parked_per_peer_[peer];
    if (!closed_ && (max_parked_per_peer_ <= 0 || parked < max_parked_per_peer_)) {
      ++parked;
      waiters_.push_back({context, reactor, request, response, deadline, peer});
      return;
    }
    if (parked == 0) parked_per_peer_.erase(peer);
    if (!closed_) {
      reactor->Finish(grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat(peer, " already has ", max_parked_per_peer_,
                       " LeaseTask calls waiting, the limit per peer; wait for one to end")));
      return;
    }
  }
  reactor->Finish(grpc::Status::OK);
}

void LeaseWaiters::Finish(const Waiter& w, const grpc::Status& status) {
  {
    absl::MutexLock lock(&mu_);
    auto it = parked_per_peer_.find(w.peer);
    if (it != parked_per_peer_.end() && --it->second <= 0) parked_per_peer_.erase(it);
  }
  w.reactor->Finish(status);
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
  for (Waiter& w : closing) Finish(w, grpc::Status::OK);
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
        Finish(w, grpc::Status(grpc::StatusCode::CANCELLED, "lease wait cancelled"));
        continue;
      }
      absl::StatusOr<bool> granted = try_lease_(*w.request, w.response);
      if (!granted.ok()) {
        Finish(w, ToGrpc(granted.status()));
      } else if (*granted || now >= w.deadline) {
        Finish(w, grpc::Status::OK);
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
    for (Waiter& w : still_waiting) Finish(w, grpc::Status::OK);
  }
}

}  // namespace dreambooth::server
