#include "server/convert.h"

#include <spdlog/spdlog.h>

#include <optional>

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/status_macros.h"
#include "storage/sqlite.h"

namespace dreambooth::server {

static_assert(static_cast<int>(storage::JobState::kCancelled) == v1::JOB_STATE_CANCELLED);
static_assert(static_cast<int>(storage::EventKind::kValidationImage) ==
              v1::EVENT_KIND_VALIDATION_IMAGE);
static_assert(static_cast<int>(storage::CheckpointKind::kFinal) == v1::CHECKPOINT_KIND_FINAL);
static_assert(static_cast<int>(storage::CheckpointKind::kLoraDiffusers) ==
              v1::CHECKPOINT_KIND_LORA_DIFFUSERS);
static_assert(static_cast<int>(storage::CheckpointKind::kLoraKohya) ==
              v1::CHECKPOINT_KIND_LORA_KOHYA);

absl::StatusOr<v1::JobSpec> ParseStoredSpec(const std::string& bytes, const std::string& job_id) {
  v1::JobSpec spec;
  if (!spec.ParseFromString(bytes)) {
    return absl::DataLossError(
        absl::StrCat("the stored spec of job ", job_id, " is damaged (not a JobSpec)"));
  }
  return spec;
}

absl::StatusOr<v1::Job> ToProto(const storage::JobRecord& r) {
  v1::Job job;
  job.set_id(r.id);
  ASSIGN_OR_RETURN(*job.mutable_spec(), ParseStoredSpec(r.spec, r.id));
  job.set_state(static_cast<v1::JobState>(r.state));
  job.set_stage(static_cast<v1::JobStage>(r.state == storage::JobState::kRunning ? r.stage : 0));
  job.set_step(r.step);
  job.set_total_steps(r.total_steps);
  job.set_create_time_ms(r.create_time_ms);
  job.set_start_time_ms(r.start_time_ms);
  job.set_end_time_ms(r.end_time_ms);
  job.set_attempt(r.attempt);
  job.set_error_attempts(r.error_attempts);
  job.set_infra_attempts(r.infra_attempts);
  job.set_error(r.error);
  job.set_cancel_requested(r.cancel_requested);
  job.set_last_sequence(r.last_sequence);
  job.set_request_id(r.request_id);
  return job;
}

v1::JobEvent ToProto(const storage::EventRecord& e) {
  v1::JobEvent event;
  event.set_sequence(e.sequence);
  event.set_time_ms(e.time_ms);
  event.set_kind(static_cast<v1::EventKind>(e.kind));
  event.set_state(static_cast<v1::JobState>(e.state));
  event.set_stage(static_cast<v1::JobStage>(e.stage));
  event.set_step(e.step);
  event.set_total(e.total);
  event.set_loss(e.loss);
  event.set_learning_rate(e.learning_rate);
  event.set_images_per_second(e.images_per_second);
  event.set_eta_seconds(e.eta_seconds);
  event.set_message(e.message);
  event.set_attempt(e.attempt);
  return event;
}

v1::StoredImage ToProto(const storage::StoredImageRecord& r) {
  v1::StoredImage image;
  image.set_name(r.name);
  image.set_digest(r.digest);
  image.set_size_bytes(r.size_bytes);
  image.set_width(r.width);
  image.set_height(r.height);
  image.set_format(r.format);
  image.set_caption(r.caption);
  return image;
}

v1::ImageSet ToProto(const storage::ImageSetRecord& r) {
  v1::ImageSet set;
  set.set_id(r.id);
  set.set_display_name(r.display_name);
  set.set_create_time_ms(r.create_time_ms);
  int64_t total = 0;
  for (const auto& img : r.images) {
    *set.add_images() = ToProto(img);
    total += img.size_bytes;
  }
  set.set_total_bytes(total);
  return set;
}

v1::Checkpoint ToProto(const storage::CheckpointRecord& r) {
  v1::Checkpoint c;
  c.set_id(r.id);
  c.set_job_id(r.job_id);
  c.set_step(r.step);
  c.set_kind(static_cast<v1::CheckpointKind>(r.kind));
  c.set_create_time_ms(r.create_time_ms);
  c.set_attempt(r.attempt);
  c.set_manifest_digest(r.manifest_digest);
  int64_t total = 0;
  for (const auto& f : r.files) {
    auto* file = c.add_files();
    file->set_path(f.path);
    file->set_digest(f.digest);
    file->set_size_bytes(f.size_bytes);
    total += f.size_bytes;
  }
  c.set_total_bytes(total);
  return c;
}

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const auto code = static_cast<grpc::StatusCode>(status.code());
  if (std::optional<std::string> kind = storage::SqliteErrorKind(status)) {
    // The detail names SQL, tables and columns: it goes to the log, the client gets a reference.
    const std::string ref = RandomHex(6);
    spdlog::error("storage error (ref {}): {}", ref, std::string(status.message()));
    return grpc::Status(code, absl::StrCat("internal storage error (", *kind,
                                           "); see the server log (ref ", ref, ")"));
  }
  return grpc::Status(code, std::string(status.message()));
}

grpc::ServerUnaryReactor* Respond(grpc::CallbackServerContext* context,
                                  const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpc(status));
  return reactor;
}

}  // namespace dreambooth::server
