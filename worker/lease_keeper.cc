#include "worker/lease_keeper.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace dreambooth::worker {

LeaseKeeper::LeaseKeeper(GatewayClient* client, std::string lease_token,
                         std::chrono::milliseconds ttl, std::function<TaskPosition()> position,
                         std::atomic<bool>* stop, const std::atomic<bool>* shutdown,
                         LogFields log_fields)
    : client_(client),
      lease_token_(std::move(lease_token)),
      ttl_(ttl),
      interval_(std::max<std::chrono::milliseconds>(ttl / 3, std::chrono::milliseconds(100))),
      position_(std::move(position)),
      stop_flag_(stop),
      shutdown_(shutdown),
      log_fields_(std::move(log_fields)) {
  // The task was leased just before: its lease runs a TTL from about now.
  const auto now = std::chrono::steady_clock::now();
  absl::MutexLock lock(&beat_mu_);
  expires_ = now + ttl_;
  client_->NoteLease(lease_token_, now, ttl_);
}

LeaseKeeper::~LeaseKeeper() {
  Stop();
  client_->ForgetLease(lease_token_);  // the task's calls are over by now
}

void LeaseKeeper::Start() {
  thread_ = std::thread([this] { Run(); });
}

void LeaseKeeper::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;  // wakes Run's Await when the lock is released
  }
  if (thread_.joinable()) thread_.join();
}

bool LeaseKeeper::BeatNow() {
  absl::MutexLock beat_lock(&beat_mu_);
  if (lease_lost_.load()) return false;
  v1::HeartbeatRequest request;
  request.set_lease_token(lease_token_);
  if (position_) {
    const TaskPosition p = position_();
    request.set_stage(p.stage);
    request.set_step(p.step);
    request.set_total(p.total);
  }
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<v1::HeartbeatResponse> response = client_->Heartbeat(request, interval_);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - start)
                        .count();
  if (!response.ok() || took > interval_.count()) {
    LogWarn(absl::StrCat("heartbeat: ", response.ok() ? "ok" : response.status().ToString(),
                         " after ", took, " ms"),
            log_fields_);
  }
  if (response.ok()) {
    expires_ = start + ttl_;
    if (response->cancel_requested()) {
      if (!cancel_requested_.load()) LogInfo("heartbeat: cancel requested; stopping", log_fields_);
      cancel_requested_.store(true);
      if (stop_flag_ != nullptr) stop_flag_->store(true);
    }
    return true;
  }
  // A rejected token means another attempt owns the job (or it ended); transport errors
  // (server restarting) are retried soon while the lease is still valid.
  const absl::StatusCode code = response.status().code();
  const bool rejected =
      code == absl::StatusCode::kFailedPrecondition || code == absl::StatusCode::kNotFound;
  const bool expired = std::chrono::steady_clock::now() >= expires_;
  if (rejected || expired) {
    LogWarn(rejected
                ? absl::StrCat("heartbeat: ", response.status().ToString(), "; the lease is lost")
                : absl::StrCat("heartbeat: none got through in the lease's ", ttl_.count(),
                               " ms; the lease is lost"),
            log_fields_);
    lease_lost_.store(true);
    if (stop_flag_ != nullptr) stop_flag_->store(true);
  }
  return false;
}

void LeaseKeeper::Run() {
  const absl::Duration tick = absl::FromChrono(std::min(interval_, std::chrono::milliseconds(100)));
  auto next_beat = std::chrono::steady_clock::now() + interval_;
  while (true) {
    {
      // Abseil 20220623 times this wait on the wall clock (futex with CLOCK_REALTIME), not the
      // steady clock: a step back of the system time while waiting delays this tick by the step.
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stop_), tick)) return;
    }
    if (shutdown_ != nullptr && shutdown_->load() && stop_flag_ != nullptr) stop_flag_->store(true);
    if (std::chrono::steady_clock::now() < next_beat) continue;
    const bool renewed = BeatNow();
    // A beat that did not get through is tried again soon, while the lease lasts.
    next_beat = std::chrono::steady_clock::now() +
                (renewed ? interval_ : std::min(interval_, std::chrono::milliseconds(1000)));
  }
}

}  // namespace dreambooth::worker
