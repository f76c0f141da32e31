// WatchJob: replays stored events after after_sequence, then follows live ones.
#include "absl/strings/str_cat.h"
#include "server/reactor_bases.h"
#include "server/reactors.h"
#include "server/request_checks.h"

namespace dreambooth::server {
namespace {

constexpr int kBatch = 256;

bool IsTerminalEvent(const v1::JobEvent& e) {
  return e.kind() == v1::EVENT_KIND_STATE_CHANGED &&
         (e.state() == v1::JOB_STATE_SUCCEEDED || e.state() == v1::JOB_STATE_FAILED ||
          e.state() == v1::JOB_STATE_CANCELLED);
}

class WatchReactor : public QueuedWriteReactor<v1::JobEvent> {
 public:
  WatchReactor(ServiceCore* core, const absl::StatusOr<Caller>& caller,
               const v1::WatchJobRequest& request)
      : QueuedWriteReactor("watch"),
        core_(core),
        job_id_(request.job_id()),
        last_sent_(request.after_sequence()) {
    absl::Status status = caller.status();
    if (status.ok()) status = CheckId("job_id", job_id_);
    if (status.ok() && request.after_sequence() < 0) {
      status = absl::InvalidArgumentError(
          absl::StrCat("after_sequence must be >= 0, got ", request.after_sequence()));
    }
    if (status.ok()) status = core_->GetJobFor(*caller, job_id_).status();
    if (!status.ok()) {
      absl::MutexLock lock(&mu_);
      FinishLocked(ToGrpc(status));
      return;
    }
    // Subscribe before the first read so that no event slips between read and subscription.
    // Wake-ups are ignored until started_, so the call cannot finish (and delete this) before
    // subscription_ is set.
    subscription_ = core_->hub().Subscribe(job_id_, [this] { Wake(); });
    absl::MutexLock lock(&mu_);
    started_ = true;
    PumpLocked();
  }

  void OnDone() override {
    if (subscription_ != 0) core_->hub().Unsubscribe(subscription_);
    delete this;
  }

 private:
  void Wake() {
    absl::MutexLock lock(&mu_);
    if (started_) PumpLocked();
  }

  void OnWrittenLocked(const v1::JobEvent& event) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    last_sent_ = event.sequence();
    if (IsTerminalEvent(event)) FinishLocked(grpc::Status::OK);
  }

  // Reads the next batch of stored events; with none, ends the call when the job is terminal
  // and the client has seen its last event.
  void OnDrainedLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!started_) return;
    absl::StatusOr<std::vector<storage::EventRecord>> events =
        core_->jobs().ReadEvents(job_id_, last_sent_, kBatch);
    if (!events.ok()) {
      FinishLocked(ToGrpc(events.status()));
      return;
    }
    for (const auto& e : *events) PushLocked(ToProto(e));
    if (!events->empty()) return;
    absl::StatusOr<storage::JobRecord> job = core_->jobs().Get(job_id_);
    if (!job.ok()) {
      FinishLocked(ToGrpc(job.status()));
    } else if (storage::IsTerminal(job->state) && last_sent_ >= job->last_sequence) {
      FinishLocked(grpc::Status::OK);
    }
  }

  ServiceCore* const core_;
  const std::string job_id_;
  uint64_t subscription_ = 0;  // constant once started_

  int64_t last_sent_ ABSL_GUARDED_BY(mu_);
  bool started_ ABSL_GUARDED_BY(mu_) = false;  // wake-ups are ignored until set
};

}  // namespace

grpc::ServerWriteReactor<v1::JobEvent>* NewWatchReactor(ServiceCore* core,
                                                        const absl::StatusOr<Caller>& caller,
                                                        const v1::WatchJobRequest& request) {
  return new WatchReactor(core, caller, request);
}

}  // namespace dreambooth::server
