// Sample: the core prepares the task (ServiceCore::PrepareSample), the sample broker queues it,
// and this reactor relays the worker's outputs in order.
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/reactor_bases.h"
#include "server/reactors.h"
#include "server/request_checks.h"
#include "server/sample_broker.h"

namespace dreambooth::server {
namespace {

absl::Status CheckRequestIds(const v1::SampleRequest& request) {
  RETURN_IF_ERROR(CheckId("job_id", request.job_id()));
  if (!request.checkpoint_id().empty()) {
    RETURN_IF_ERROR(CheckId("checkpoint_id", request.checkpoint_id()));
  }
  return absl::OkStatus();
}

class SampleReactor : public QueuedWriteReactor<v1::SampleResponse>, public SampleBroker::Sink {
 public:
  SampleReactor(ServiceCore* core, const absl::StatusOr<Caller>& caller,
                const v1::SampleRequest& request)
      : QueuedWriteReactor("sample"), core_(core) {
    absl::Status checked = caller.status();
    if (checked.ok()) checked = CheckRequestIds(request);
    absl::StatusOr<SampleBroker::Task> task = checked.ok()
                                                  ? core_->PrepareSample(*caller, request)
                                                  : absl::StatusOr<SampleBroker::Task>(checked);
    if (!task.ok()) {
      absl::MutexLock lock(&mu_);
      FinishLocked(ToGrpc(task.status()));
      return;
    }
    // "queued" goes out before the task can be leased, so that a fast worker's "leased" and
    // image messages cannot overtake it.
    v1::SampleResponse queued;
    queued.mutable_progress()->set_message("queued; waiting for a worker");
    OnOutput(queued);
    task_id_ = core_->samples().Enqueue(*std::move(task), this);
    core_->NotifyTaskAvailable();
  }

  // SampleBroker::Sink (called with the broker's lock held).
  void OnOutput(const v1::SampleResponse& output) override {
    absl::MutexLock lock(&mu_);
    QueueLocked(output);
  }
  void OnFinished(const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    task_done_ = true;
    final_status_ = ToGrpc(status);
    PumpLocked();
  }

  void OnDone() override {
    if (!task_id_.empty()) core_->samples().Remove(task_id_);
    delete this;
  }

 private:
  void OnDrainedLocked() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (task_done_) FinishLocked(final_status_);
  }

  ServiceCore* const core_;
  std::string task_id_;  // constant after construction

  bool task_done_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

grpc::ServerWriteReactor<v1::SampleResponse>* NewSampleReactor(ServiceCore* core,
                                                               const absl::StatusOr<Caller>& caller,
                                                               const v1::SampleRequest& request) {
  return new SampleReactor(core, caller, request);
}

}  // namespace dreambooth::server
