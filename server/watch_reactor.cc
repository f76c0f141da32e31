// WatchJob: replays stored events after after_sequence, then follows live ones.
#include <deque>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "server/convert.h"
#include "server/reactors.h"

namespace dreambooth::server {
namespace {

constexpr int kBatch = 256;

class WatchReactor : public grpc::ServerWriteReactor<v1::JobEvent> {
 public:
  WatchReactor(Backend* backend, const v1::WatchJobRequest& request)
      : backend_(backend), job_id_(request.job_id()), last_sent_(request.after_sequence()) {
    absl::Status status = CheckId("job_id", job_id_);
    if (status.ok() && last_sent_ < 0) {
      status =
          absl::InvalidArgumentError(absl::StrCat("after_sequence must be >= 0, got ", last_sent_));
    }
    if (status.ok()) status = backend_->jobs().Get(job_id_).status();
    if (!status.ok()) {
      finished_ = true;
      Finish(ToGrpc(status));
      return;
    }
    // Subscribe before the first read so that no event slips between read and subscription.
    // Wake-ups are ignored until started_, so the call cannot finish (and delete this) before
    // subscription_ is set.
    subscription_ = backend_->hub().Subscribe(job_id_, [this] { Pump(); });
    {
      std::lock_guard<std::mutex> lock(mu_);
      started_ = true;
    }
    Pump();
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
      if (!ok) {
        FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "client stopped reading"));
        return;
      }
      last_sent_ = buffer_.front().sequence();
      const bool terminal_sent = IsTerminalEvent(buffer_.front());
      buffer_.pop_front();
      if (terminal_sent) {
        FinishLocked(grpc::Status::OK);
        return;
      }
    }
    Pump();
  }

  void OnCancel() override {
    std::lock_guard<std::mutex> lock(mu_);
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
  }

  void OnDone() override {
    if (subscription_ != 0) backend_->hub().Unsubscribe(subscription_);
    delete this;
  }

 private:
  static bool IsTerminalEvent(const v1::JobEvent& e) {
    return e.kind() == v1::EVENT_KIND_STATE_CHANGED &&
           (e.state() == v1::JOB_STATE_SUCCEEDED || e.state() == v1::JOB_STATE_FAILED ||
            e.state() == v1::JOB_STATE_CANCELLED);
  }

  // Starts the next write when none is in flight, reading more events when the buffer is empty.
  void Pump() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!started_ || finished_ || writing_) return;
    if (buffer_.empty()) {
      absl::StatusOr<std::vector<storage::EventRecord>> events =
          backend_->jobs().ReadEvents(job_id_, last_sent_, kBatch);
      if (!events.ok()) {
        FinishLocked(ToGrpc(events.status()));
        return;
      }
      for (const auto& e : *events) buffer_.push_back(ToProto(e));
      if (buffer_.empty()) {
        // Nothing new: done if the job is already terminal (the client saw its last event).
        absl::StatusOr<storage::JobRecord> job = backend_->jobs().Get(job_id_);
        if (!job.ok()) {
          FinishLocked(ToGrpc(job.status()));
        } else if (storage::IsTerminal(job->state) && last_sent_ >= job->last_sequence) {
          FinishLocked(grpc::Status::OK);
        }
        return;
      }
    }
    writing_ = true;
    StartWrite(&buffer_.front());
  }

  void FinishLocked(const grpc::Status& status) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  Backend* const backend_;
  const std::string job_id_;
  uint64_t subscription_ = 0;

  std::mutex mu_;
  int64_t last_sent_;                // Guarded by mu_.
  std::deque<v1::JobEvent> buffer_;  // Guarded by mu_; front is in flight while writing_.
  bool writing_ = false;             // Guarded by mu_.
  bool finished_ = false;            // Guarded by mu_.
  bool started_ = false;             // Guarded by mu_; wake-ups are ignored until set.
};

}  // namespace

grpc::ServerWriteReactor<v1::JobEvent>* NewWatchReactor(Backend* backend,
                                                        const v1::WatchJobRequest& request) {
  return new WatchReactor(backend, request);
}

}  // namespace dreambooth::server
