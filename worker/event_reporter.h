// Progress and log events of one leased TRAIN task, sent to the job's event log with the lease
// token. Progress is throttled to at most 2 events a second, except that a stage change, a
// forced event (checkpoint, stage end) and the final Flush always go out; a throttled update is
// kept and sent with the next one that passes, so the latest numbers are never lost.
#ifndef DREAMBOOTH_WORKER_EVENT_REPORTER_H_
#define DREAMBOOTH_WORKER_EVENT_REPORTER_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "dreambooth/v1/resources.pb.h"
#include "worker/gateway_client.h"

namespace dreambooth::worker {

// Decides which progress updates pass. Pure (time is passed in); not thread-safe.
class ProgressThrottle {
 public:
  explicit ProgressThrottle(int64_t min_interval_ms = 500) : min_interval_ms_(min_interval_ms) {}
  // True when an update of `stage` at `now_ms` should be sent: the first one, a stage change,
  // `force`, or min_interval_ms after the last one sent. Records it as sent when true.
  bool Admit(v1::JobStage stage, int64_t now_ms, bool force);

 private:
  int64_t min_interval_ms_;
  std::optional<int64_t> last_sent_ms_;
  v1::JobStage last_stage_ = v1::JOB_STAGE_UNSPECIFIED;
};

// Coarse position of a task, for heartbeats.
struct TaskPosition {
  v1::JobStage stage = v1::JOB_STAGE_UNSPECIFIED;
  int64_t step = 0;
  int64_t total = 0;
};

// Thread-safe: Progress/Log/Flush may be called from the stage runner while Position() is read
// by the heartbeat thread.
class EventReporter {
 public:
  // `client` must outlive the reporter.
  EventReporter(GatewayClient* client, std::string lease_token);

  // Reports a PROGRESS event (kind is set here). Errors are those of ReportEvents (e.g.
  // FAILED_PRECONDITION when the lease is gone); a throttled event returns OK without a call.
  absl::Status Progress(const v1::JobEvent& event, bool force = false);
  // Reports a LOG event at once (after any pending progress).
  absl::Status Log(v1::JobStage stage, const std::string& message);
  // Reports a VALIDATION_IMAGE event (message = the stored PNG's digest) at once.
  absl::Status ValidationImage(v1::JobStage stage, int64_t step, const std::string& digest);
  // Sends the pending throttled progress event, if any.
  absl::Status Flush();
  TaskPosition Position() const;
  // Number of events sent so far.
  int64_t sent() const;

 private:
  absl::Status SendLocked(const v1::JobEvent& event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  GatewayClient* const client_;
  const std::string lease_token_;

  mutable absl::Mutex mu_;
  ProgressThrottle throttle_ ABSL_GUARDED_BY(mu_);
  std::optional<v1::JobEvent> pending_ ABSL_GUARDED_BY(mu_);
  TaskPosition position_ ABSL_GUARDED_BY(mu_);
  int64_t sent_ ABSL_GUARDED_BY(mu_) = 0;
};

// Unix time in milliseconds (system clock).
int64_t NowUnixMs();

}  // namespace dreambooth::worker

#endif  // DREAMBOOTH_WORKER_EVENT_REPORTER_H_
