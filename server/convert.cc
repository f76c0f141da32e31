#include "server/convert.h"

#include <spdlog/spdlog.h>

#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/status_macros.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
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
  job.mutable_labels()->insert(r.labels.begin(), r.labels.end());
  if (!r.webhook_url.empty()) {
    job.mutable_webhook()->set_url(r.webhook_url);
    for (int type :
         {v1::WEBHOOK_EVENT_TYPE_JOB_STATE_CHANGED, v1::WEBHOOK_EVENT_TYPE_CHECKPOINT_CREATED}) {
      if ((r.webhook_events &
           storage::WebhookEventBit(static_cast<storage::WebhookEventType>(type))) != 0) {
        job.mutable_webhook()->add_events(static_cast<v1::WebhookEventType>(type));
      }
    }
  }
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
  set.mutable_labels()->insert(r.labels.begin(), r.labels.end());
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
  if (r.loss.has_value()) c.mutable_metrics()->set_loss(static_cast<float>(*r.loss));
  if (r.learning_rate.has_value()) c.mutable_metrics()->set_learning_rate(*r.learning_rate);
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

v1::WebhookDelivery ToProto(const storage::WebhookDeliveryRecord& d) {
  v1::WebhookDelivery delivery;
  delivery.set_id(d.id);
  delivery.set_job_id(d.job_id);
  delivery.set_event_type(static_cast<v1::WebhookEventType>(d.event_type));
  delivery.set_event_sequence(d.event_sequence);
  delivery.set_state(static_cast<v1::WebhookDelivery::State>(d.state));
  delivery.set_create_time_ms(d.create_time_ms);
  if (d.state == storage::WebhookDeliveryState::kPending) {
    delivery.set_next_attempt_time_ms(d.next_attempt_ms);
  }
  delivery.set_body(d.body);
  for (const storage::WebhookAttemptRecord& a : d.attempts) {
    v1::WebhookAttempt* attempt = delivery.add_attempts();
    attempt->set_number(a.number);
    attempt->set_start_time_ms(a.start_time_ms);
    attempt->set_duration_ms(a.duration_ms);
    attempt->set_http_status(a.http_status);
    attempt->set_error(a.error);
  }
  return delivery;
}

std::optional<std::string> FieldOf(const absl::Status& status) {
  if (!absl::IsInvalidArgument(status)) return std::nullopt;
  const absl::string_view message = status.message();
  const size_t space = message.find(' ');
  if (space == 0 || space == absl::string_view::npos) return std::nullopt;
  const absl::string_view field = message.substr(0, space);
  for (char ch : field) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' ||
                    ch == '.' || ch == '[' || ch == ']' || ch == '\'';
    if (!ok) return std::nullopt;
  }
  if (field.front() < 'a' || field.front() > 'z') return std::nullopt;
  // "<field> must ...", "<field> is required", "<field> 'value' ...", "<field> key '...'"...
  const absl::string_view rest = message.substr(space + 1);
  for (absl::string_view next :
       {"must ", "is ", "has ", "term ", "key ", "value ", "cannot ", "was ", "exceeds ", "'"}) {
    if (absl::StartsWith(rest, next)) return std::string(field);
  }
  return std::nullopt;
}

namespace {

// ErrorInfo.reason for a status: a few specific ones, else the canonical code's name.
std::string ReasonOf(const absl::Status& status, const std::optional<std::string>& field) {
  if (field.has_value()) return "INVALID_FIELD";
  if (absl::IsFailedPrecondition(status) &&
      (absl::StrContains(status.message(), "worker(s) registered") ||
       absl::StrContains(status.message(), "no worker registered"))) {
    return "NO_CAPABLE_WORKER";
  }
  std::string name = absl::StatusCodeToString(status.code());
  for (char& ch : name) ch = ch == ' ' ? '_' : absl::ascii_toupper(ch);
  return name;
}

// The google.rpc.Status of the "grpc-status-details-bin" trailer.
std::string Details(const absl::Status& status, const std::string& message,
                    const std::string& reason, const std::optional<std::string>& field) {
  google::rpc::Status details;
  details.set_code(static_cast<int>(status.code()));
  details.set_message(message);
  google::rpc::ErrorInfo info;
  info.set_reason(reason);
  info.set_domain("dreambooth.v1");
  if (field.has_value()) (*info.mutable_metadata())["field"] = *field;
  details.add_details()->PackFrom(info);
  if (field.has_value()) {
    google::rpc::BadRequest bad;
    google::rpc::BadRequest::FieldViolation* violation = bad.add_field_violations();
    violation->set_field(*field);
    violation->set_description(message);
    details.add_details()->PackFrom(bad);
  }
  return details.SerializeAsString();
}

}  // namespace

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const auto code = static_cast<grpc::StatusCode>(status.code());
  if (std::optional<std::string> kind = storage::SqliteErrorKind(status)) {
    // The detail names SQL, tables and columns: it goes to the log, the client gets a reference.
    const std::string ref = RandomHex(6);
    spdlog::error("storage error (ref {}): {}", ref, std::string(status.message()));
    const std::string message =
        absl::StrCat("internal storage error (", *kind, "); see the server log (ref ", ref, ")");
    return grpc::Status(code, message, Details(status, message, "STORAGE_ERROR", std::nullopt));
  }
  const std::string message(status.message());
  const std::optional<std::string> field = FieldOf(status);
  return grpc::Status(code, message, Details(status, message, ReasonOf(status, field), field));
}

grpc::ServerUnaryReactor* Respond(grpc::CallbackServerContext* context,
                                  const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpc(status));
  return reactor;
}

}  // namespace dreambooth::server
