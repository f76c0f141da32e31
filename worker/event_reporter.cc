#include "worker/event_reporter.h"

#include <chrono>
#include <utility>

namespace dreambooth::worker {

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool ProgressThrottle::Admit(v1::JobStage stage, int64_t now_ms, bool force) {
  const bool pass = force || !last_sent_ms_.has_value() || stage != last_stage_ ||
                    now_ms - *last_sent_ms_ >= min_interval_ms_;
  if (pass) {
    last_sent_ms_ = now_ms;
    last_stage_ = stage;
  }
  return pass;
}

EventReporter::EventReporter(GatewayClient* client, std::string lease_token)
    : client_(client), lease_token_(std::move(lease_token)) {}

absl::Status EventReporter::SendLocked(const v1::JobEvent& event) {
  absl::StatusOr<int64_t> sequence = client_->ReportEvents(lease_token_, {event});
  if (!sequence.ok()) return sequence.status();
  ++sent_;
  return absl::OkStatus();
}

absl::Status EventReporter::Progress(const v1::JobEvent& event, bool force) {
  absl::MutexLock lock(&mu_);
  v1::JobEvent e = event;
  e.set_kind(v1::EVENT_KIND_PROGRESS);
  position_ = TaskPosition{e.stage(), e.step(), e.total()};
  // A stage change flushes the previous stage's last numbers first, so each stage ends with
  // its final position in the log.
  if (pending_.has_value() && pending_->stage() != e.stage()) {
    absl::Status status = SendLocked(*pending_);
    pending_.reset();
    if (!status.ok()) return status;
  }
  if (!throttle_.Admit(e.stage(), NowUnixMs(), force)) {
    pending_ = std::move(e);
    return absl::OkStatus();
  }
  pending_.reset();
  return SendLocked(e);
}

absl::Status EventReporter::Log(v1::JobStage stage, const std::string& message) {
  absl::MutexLock lock(&mu_);
  if (pending_.has_value()) {
    absl::Status status = SendLocked(*pending_);
    pending_.reset();
    if (!status.ok()) return status;
  }
  v1::JobEvent e;
  e.set_kind(v1::EVENT_KIND_LOG);
  e.set_stage(stage);
  e.set_message(message);
  e.set_eta_seconds(-1);
  return SendLocked(e);
}

absl::Status EventReporter::ValidationImage(v1::JobStage stage, int64_t step,
                                            const std::string& digest) {
  absl::MutexLock lock(&mu_);
  if (pending_.has_value()) {
    absl::Status status = SendLocked(*pending_);
    pending_.reset();
    if (!status.ok()) return status;
  }
  v1::JobEvent e;
  e.set_kind(v1::EVENT_KIND_VALIDATION_IMAGE);
  e.set_stage(stage);
  e.set_step(step);
  e.set_message(digest);
  e.set_eta_seconds(-1);
  return SendLocked(e);
}

absl::Status EventReporter::Flush() {
  absl::MutexLock lock(&mu_);
  if (!pending_.has_value()) return absl::OkStatus();
  absl::Status status = SendLocked(*pending_);
  pending_.reset();
  return status;
}

TaskPosition EventReporter::Position() const {
  absl::MutexLock lock(&mu_);
  return position_;
}

int64_t EventReporter::sent() const {
  absl::MutexLock lock(&mu_);
  return sent_;
}

}  // namespace dreambooth::worker
