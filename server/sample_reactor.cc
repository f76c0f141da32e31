// Sample: validates the request, queues a SAMPLE task and relays the worker's outputs.
#include <deque>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/convert.h"
#include "server/reactors.h"
#include "server/sample_broker.h"
#include "spec/sample_request_rules.h"

namespace dreambooth::server {
namespace {

class SampleReactor : public grpc::ServerWriteReactor<v1::SampleResponse>,
                      public SampleBroker::Sink {
 public:
  SampleReactor(Backend* backend, const v1::SampleRequest& request) : backend_(backend) {
    absl::StatusOr<SampleBroker::Task> task = Prepare(request);
    if (!task.ok()) {
      finished_ = true;
      Finish(ToGrpc(task.status()));
      return;
    }
    // "queued" goes out before the task can be leased, so that a fast worker's "leased" and
    // image messages cannot overtake it.
    v1::SampleResponse queued;
    queued.mutable_progress()->set_message("queued; waiting for a worker");
    OnOutput(queued);
    task_id_ = backend_->samples().Enqueue(*std::move(task), this);
    backend_->NotifyTaskAvailable();
  }

  // SampleBroker::Sink (called with the broker's lock held).
  void OnOutput(const v1::SampleResponse& output) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return;
    pending_.push_back(output);
    PumpLocked();
  }
  void OnFinished(const absl::Status& status) override {
    std::lock_guard<std::mutex> lock(mu_);
    task_done_ = true;
    final_status_ = ToGrpc(status);
    PumpLocked();
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "client stopped reading"));
      return;
    }
    pending_.pop_front();
    PumpLocked();
  }

  void OnCancel() override {
    std::lock_guard<std::mutex> lock(mu_);
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "sample cancelled"));
  }

  void OnDone() override {
    if (!task_id_.empty()) backend_->samples().Remove(task_id_);
    delete this;
  }

 private:
  absl::StatusOr<SampleBroker::Task> Prepare(const v1::SampleRequest& request) {
    RETURN_IF_ERROR(CheckId("job_id", request.job_id()));
    RETURN_IF_ERROR(spec::ValidateSampleRequest(request));
    ASSIGN_OR_RETURN(storage::JobRecord job, backend_->jobs().Get(request.job_id()));
    ASSIGN_OR_RETURN(const v1::JobSpec spec, ParseStoredSpec(job.spec, job.id));
    v1::SampleRequest resolved = request;
    RETURN_IF_ERROR(spec::ResolveSampleRequest(spec, &resolved));
    SampleBroker::Task task;
    if (resolved.checkpoint_id().empty()) {
      ASSIGN_OR_RETURN(
          std::optional<storage::CheckpointRecord> latest,
          backend_->jobs().LatestCheckpoint(
              job.id, {storage::CheckpointKind::kSampleable, storage::CheckpointKind::kFinal}));
      if (!latest.has_value()) {
        return absl::FailedPreconditionError(
            absl::StrCat("job ", job.id, " has no sampleable checkpoint yet"));
      }
      task.checkpoint = ToProto(*latest);
    } else {
      RETURN_IF_ERROR(CheckId("checkpoint_id", resolved.checkpoint_id()));
      ASSIGN_OR_RETURN(storage::CheckpointRecord ckpt,
                       backend_->jobs().GetCheckpoint(resolved.checkpoint_id()));
      if (ckpt.job_id != job.id) {
        return absl::InvalidArgumentError(absl::StrCat(
            "checkpoint_id ", ckpt.id, " belongs to job ", ckpt.job_id, ", not ", job.id));
      }
      task.checkpoint = ToProto(ckpt);
    }
    resolved.set_checkpoint_id(task.checkpoint.id());
    task.job_id = job.id;
    task.base_model = job.base_model;
    task.spec = job.spec;
    task.request = std::move(resolved);
    return task;
  }

  void PumpLocked() {
    if (finished_ || writing_) return;
    if (!pending_.empty()) {
      writing_ = true;
      StartWrite(&pending_.front());
      return;
    }
    if (task_done_) FinishLocked(final_status_);
  }

  void FinishLocked(const grpc::Status& status) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  Backend* const backend_;
  std::string task_id_;  // constant after construction

  std::mutex mu_;
  std::deque<v1::SampleResponse> pending_;  // Guarded by mu_; front in flight while writing_.
  bool writing_ = false;                    // Guarded by mu_.
  bool task_done_ = false;                  // Guarded by mu_.
  grpc::Status final_status_;               // Guarded by mu_.
  bool finished_ = false;                   // Guarded by mu_.
};

}  // namespace

grpc::ServerWriteReactor<v1::SampleResponse>* NewSampleReactor(Backend* backend,
                                                               const v1::SampleRequest& request) {
  return new SampleReactor(backend, request);
}

}  // namespace dreambooth::server
