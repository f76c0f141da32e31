// Keeps one task's lease alive: a background thread that sends Heartbeat every TTL/3 with the
// task's coarse position, and records what the replies say (cancel requested, lease lost).
//
// Each heartbeat waits at most TTL/3 for the server. One that does not get through (UNAVAILABLE,
// DEADLINE_EXCEEDED: the server restarting) is tried again within a second, until the lease
// expires: TTL after the last heartbeat that did get through (the server keeps the lease that
// long). Only then is the lease given up as lost.
#ifndef DREAMBOOTH_WORKER_LEASE_KEEPER_H_
#define DREAMBOOTH_WORKER_LEASE_KEEPER_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "worker/event_reporter.h"
#include "worker/gateway_client.h"

namespace dreambooth::worker {

// Thread-safe. Start() launches the heartbeat thread; the destructor (or Stop()) joins it.
class LeaseKeeper {
 public:
  // `client` must outlive this object; the destructor makes it forget the lease
  // (GatewayClient::ForgetLease), so destroy the keeper after the task's last call. `position` (may
  // be empty) is called from the heartbeat thread. When `stop` is set, the keeper raises it as soon
  // as the job is cancelled, the lease is lost, or `shutdown` (may be null) reads true (checked
  // every 100 ms), so a runner polls a single flag. `log_fields` (the task's ids) go on every
  // line it logs (slow or failed heartbeats, lease lost, cancel seen).
  LeaseKeeper(GatewayClient* client, std::string lease_token, std::chrono::milliseconds ttl,
              std::function<TaskPosition()> position, std::atomic<bool>* stop = nullptr,
              const std::atomic<bool>* shutdown = nullptr, LogFields log_fields = {});
  ~LeaseKeeper();
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  void Start();
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);
  // Sends one heartbeat now (also used before long operations); true when the server renewed
  // the lease.
  bool BeatNow() ABSL_LOCKS_EXCLUDED(mu_, beat_mu_);

  // The user cancelled the job (from a heartbeat reply).
  bool cancel_requested() const { return cancel_requested_.load(); }
  // The server no longer recognises the token (FAILED_PRECONDITION / NOT_FOUND), or no heartbeat
  // got through before the lease expired: every further write would be rejected, so the task
  // must stop without completing.
  bool lease_lost() const { return lease_lost_.load(); }

 private:
  void Run() ABSL_LOCKS_EXCLUDED(mu_);

  GatewayClient* const client_;
  const std::string lease_token_;
  const std::chrono::milliseconds ttl_;
  const std::chrono::milliseconds interval_;  // between heartbeats, and each one's deadline
  const std::function<TaskPosition()> position_;
  std::atomic<bool>* const stop_flag_;
  const std::atomic<bool>* const shutdown_;
  const LogFields log_fields_;

  std::atomic<bool> cancel_requested_{false};
  std::atomic<bool> lease_lost_{false};
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  // Serializes heartbeats (the thread's and BeatNow's).
  absl::Mutex beat_mu_;
  // When the lease expires unless a heartbeat gets through.
  std::chrono::steady_clock::time_point expires_ ABSL_GUARDED_BY(beat_mu_);
  std::thread thread_;
};

}  // namespace dreambooth::worker

#endif  // DREAMBOOTH_WORKER_LEASE_KEEPER_H_
