// ServiceCore: preparing a Sample request for the sample broker.
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/convert.h"
#include "server/service_core.h"
#include "spec/sample_request_rules.h"

namespace dreambooth::server {

absl::StatusOr<SampleBroker::Task> ServiceCore::PrepareSample(const Caller& caller,
                                                              const v1::SampleRequest& request) {
  RETURN_IF_ERROR(spec::ValidateSampleRequest(request));
  ASSIGN_OR_RETURN(storage::JobRecord job, GetJobFor(caller, request.job_id()));
  ASSIGN_OR_RETURN(const v1::JobSpec spec, ParseStoredSpec(job.spec, job.id));
  v1::SampleRequest resolved = request;
  RETURN_IF_ERROR(spec::ResolveSampleRequest(spec, &resolved));
  SampleBroker::Task task;
  if (resolved.checkpoint_id().empty()) {
    ASSIGN_OR_RETURN(std::optional<storage::CheckpointRecord> latest,
                     jobs_->LatestCheckpoint(job.id, {storage::CheckpointKind::kSampleable,
                                                      storage::CheckpointKind::kFinal,
                                                      storage::CheckpointKind::kLoraDiffusers}));
    if (!latest.has_value()) {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", job.id, " has no sampleable checkpoint yet"));
    }
    task.checkpoint = ToProto(*latest);
  } else {
    ASSIGN_OR_RETURN(storage::CheckpointRecord ckpt,
                     GetCheckpointFor(caller, resolved.checkpoint_id()));
    if (ckpt.job_id != job.id) {
      return absl::InvalidArgumentError(absl::StrCat("checkpoint_id ", ckpt.id, " belongs to job ",
                                                     ckpt.job_id, ", not ", job.id));
    }
    task.checkpoint = ToProto(ckpt);
  }
  if (task.checkpoint.kind() == v1::CHECKPOINT_KIND_RESUME) {
    return absl::InvalidArgumentError(absl::StrCat(
        "checkpoint_id ", task.checkpoint.id(),
        " is a RESUME checkpoint (optimizer state); sample a SAMPLEABLE, FINAL or LORA_* one"));
  }
  const bool lora = task.checkpoint.kind() == v1::CHECKPOINT_KIND_LORA_DIFFUSERS ||
                    task.checkpoint.kind() == v1::CHECKPOINT_KIND_LORA_KOHYA;
  if (!lora && resolved.has_lora_scale()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "lora_scale applies to LORA_DIFFUSERS and LORA_KOHYA checkpoints; checkpoint ",
        task.checkpoint.id(), " is ", v1::CheckpointKind_Name(task.checkpoint.kind())));
  }
  if (lora && !resolved.has_lora_scale()) resolved.set_lora_scale(1.0f);
  resolved.set_checkpoint_id(task.checkpoint.id());
  task.job_id = job.id;
  task.base_model = job.base_model;
  task.spec = job.spec;
  task.request = std::move(resolved);
  task.queued_ms = NowMs();
  task.queue_timeout_ms = options_.sample_queue_timeout_ms;
  return task;
}

}  // namespace dreambooth::server
