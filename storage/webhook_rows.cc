#include "storage/webhook_rows.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/status_macros.h"

namespace dreambooth::storage::internal {
namespace {

// The proto enum value names (protobuf's JSON mapping).
const char* JobStateProtoName(JobState state) {
  switch (state) {
    case JobState::kQueued:
      return "JOB_STATE_QUEUED";
    case JobState::kRunning:
      return "JOB_STATE_RUNNING";
    case JobState::kSucceeded:
      return "JOB_STATE_SUCCEEDED";
    case JobState::kFailed:
      return "JOB_STATE_FAILED";
    case JobState::kCancelled:
      return "JOB_STATE_CANCELLED";
    case JobState::kUnspecified:
      break;
  }
  return "JOB_STATE_UNSPECIFIED";
}

}  // namespace

WebhookEventType WebhookEventTypeOf(EventKind kind) {
  switch (kind) {
    case EventKind::kStateChanged:
      return WebhookEventType::kJobStateChanged;
    case EventKind::kCheckpoint:
      return WebhookEventType::kCheckpointCreated;
    default:
      return WebhookEventType::kUnspecified;
  }
}

absl::Status EnqueueWebhookDelivery(Connection& c, const std::string& job_id, const EventRecord& e,
                                    int event_mask) {
  const WebhookEventType type = WebhookEventTypeOf(e.kind);
  if (type == WebhookEventType::kUnspecified) return absl::OkStatus();
  if (event_mask != 0 && (event_mask & WebhookEventBit(type)) == 0) return absl::OkStatus();
  const std::string id = absl::StrCat("whd_", RandomHex(8));
  nlohmann::json body = {{"delivery_id", id},
                         {"type", WebhookEventTypeName(type)},
                         {"job_id", job_id},
                         {"sequence", e.sequence},
                         {"time_ms", e.time_ms},
                         {"attempt", e.attempt},
                         {"state", JobStateProtoName(e.state)},
                         {"message", e.message}};
  if (type == WebhookEventType::kCheckpointCreated) {
    ASSIGN_OR_RETURN(Statement ckpt, c.Prepare("SELECT step, kind FROM checkpoints WHERE id = ?"));
    ckpt.Bind(1, e.message);
    ASSIGN_OR_RETURN(bool row, ckpt.Step());
    if (row) {
      body["checkpoint"] = {
          {"id", e.message},
          {"step", ckpt.ColumnInt(0)},
          {"kind", absl::StrCat("CHECKPOINT_KIND_", CheckpointKindName(static_cast<CheckpointKind>(
                                                        ckpt.ColumnInt(1))))}};
    }
  }
  ASSIGN_OR_RETURN(Statement ins,
                   c.Prepare("INSERT INTO webhook_deliveries (id, job_id, event_type, "
                             "event_sequence, body, state, create_time_ms, next_attempt_ms) "
                             "VALUES (?,?,?,?,?,?,?,?)"));
  ins.Bind(1, id)
      .Bind(2, job_id)
      .Bind(3, int64_t{static_cast<int>(type)})
      .Bind(4, e.sequence)
      .Bind(5, body.dump())
      .Bind(6, int64_t{static_cast<int>(WebhookDeliveryState::kPending)})
      .Bind(7, e.time_ms)
      .Bind(8, e.time_ms);
  return ins.Run();
}

}  // namespace dreambooth::storage::internal
