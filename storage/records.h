// Plain records stored by the storage layer. They mirror the dreambooth.v1 messages without
// depending on protobuf: enum values equal the proto enum values, and the job spec is kept as
// opaque serialized bytes that only the server interprets.
#ifndef DREAMBOOTH_STORAGE_RECORDS_H_
#define DREAMBOOTH_STORAGE_RECORDS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace dreambooth::storage {

// Values equal dreambooth.v1.JobState.
enum class JobState : int {
  kUnspecified = 0,
  kQueued = 1,
  kRunning = 2,
  kSucceeded = 3,
  kFailed = 4,
  kCancelled = 5,
};

inline bool IsTerminal(JobState s) {
  return s == JobState::kSucceeded || s == JobState::kFailed || s == JobState::kCancelled;
}

// Values equal dreambooth.v1.EventKind.
enum class EventKind : int {
  kUnspecified = 0,
  kStateChanged = 1,
  kProgress = 2,
  kLog = 3,
  kCheckpoint = 4,
  kLeaseLost = 5,
  kValidationImage = 6,
};

// Values equal dreambooth.v1.CheckpointKind.
enum class CheckpointKind : int {
  kUnspecified = 0,
  kSampleable = 1,
  kResume = 2,
  kFinal = 3,
  kLoraDiffusers = 4,
  kLoraKohya = 5,
};

// "SAMPLEABLE", "RESUME", ... as in the proto enum (without its prefix).
inline const char* CheckpointKindName(CheckpointKind kind) {
  switch (kind) {
    case CheckpointKind::kSampleable:
      return "SAMPLEABLE";
    case CheckpointKind::kResume:
      return "RESUME";
    case CheckpointKind::kFinal:
      return "FINAL";
    case CheckpointKind::kLoraDiffusers:
      return "LORA_DIFFUSERS";
    case CheckpointKind::kLoraKohya:
      return "LORA_KOHYA";
    case CheckpointKind::kUnspecified:
      break;
  }
  return "UNSPECIFIED";
}

struct StoredImageRecord {
  std::string name;
  std::string digest;
  int64_t size_bytes = 0;
  int width = 0;
  int height = 0;
  std::string format;
  std::string caption = {};  // "" when none
};

// The tenant of what existed before tenants, and of every caller when the server runs without
// API keys.
inline constexpr char kDefaultTenant[] = "default";

// Labels of a job or an image set (the API's map<string, string>), sorted by key.
using Labels = std::map<std::string, std::string>;

struct ImageSetRecord {
  std::string id;
  std::string tenant;
  std::string display_name;
  int64_t create_time_ms = 0;
  std::vector<StoredImageRecord> images;  // in upload order
  Labels labels;
};

// What a new image set is created with.
struct NewImageSet {
  std::string display_name;
  Labels labels;
  // Idempotency, per tenant: an upload with a request id seen within the retention adds to the
  // set that id created instead of creating one ("" => none).
  std::string request_id;
};

// What CreateJob stores.
// Values equal dreambooth.v1.WebhookEventType.
enum class WebhookEventType : int {
  kUnspecified = 0,
  kJobStateChanged = 1,
  kCheckpointCreated = 2,
};

// "job.state_changed" or "checkpoint.created": the type as the POST's body and headers name it.
inline const char* WebhookEventTypeName(WebhookEventType type) {
  return type == WebhookEventType::kCheckpointCreated ? "checkpoint.created" : "job.state_changed";
}

// A webhook's event mask has bit (1 << type) set for each type it wants; 0 => every type.
inline int WebhookEventBit(WebhookEventType type) { return 1 << static_cast<int>(type); }

// A job's webhook as created: url "" => none.
struct NewWebhook {
  std::string url;
  int events = 0;  // event mask (WebhookEventBit); 0 => every type
  std::string secret;
};

struct NewJob {
  std::string tenant = kDefaultTenant;
  std::string spec;  // serialized dreambooth.v1.JobSpec, defaults resolved
  std::string base_model;
  std::string instance_set;
  std::string regularization_set;  // "" when none
  int max_attempts = 3;
  int max_infra_attempts = 10;
  int num_devices = 1;  // devices of one worker the job trains on
  int priority = 0;     // higher first among queued jobs
  int num_nodes = 1;    // workers that train the job together (JobSpec.num_nodes)
  Labels labels;
  // Idempotency, per tenant: "" for none. The fingerprint identifies the request body (same id +
  // other fingerprint => ALREADY_EXISTS).
  std::string request_id;
  std::string request_fingerprint;
  // Quota: the tenant may have at most this many QUEUED or RUNNING jobs (0: no limit).
  int max_active_jobs_of_tenant = 0;
  // When set, a job that is not a retry of an earlier request is RESOURCE_EXHAUSTED with this
  // message (a quota the caller checked).
  std::string refuse_new_job;
  NewWebhook webhook;
};

struct JobRecord {
  std::string id;
  std::string tenant;
  int64_t seq = 0;  // insertion order
  std::string spec;
  std::string base_model;
  std::string instance_set;
  std::string regularization_set;
  std::string request_id;
  JobState state = JobState::kUnspecified;
  int stage = 0;  // dreambooth.v1.JobStage
  int64_t step = 0;
  int64_t total_steps = 0;
  int64_t create_time_ms = 0;
  int64_t start_time_ms = 0;
  int64_t end_time_ms = 0;
  int attempt = 0;
  int error_attempts = 0;
  int infra_attempts = 0;
  int max_attempts = 0;
  int max_infra_attempts = 0;
  std::string error;
  bool cancel_requested = false;
  std::string worker_id;
  int64_t lease_expires_ms = 0;
  int64_t last_sequence = 0;
  int num_devices = 1;  // devices of one worker the job trains on (JobSpec.num_devices)
  int priority = 0;     // higher first among queued jobs (JobSpec.priority)
  int num_nodes = 1;    // workers that train the job together (JobSpec.num_nodes)
  // num_nodes > 1 while RUNNING: node 0's rendezvous host:port ('' otherwise).
  std::string gang_rendezvous;
  // Which node a lease token belongs to: 0 for the job's own lease (node 0), n for a member
  // node's (set when a job is loaded by token; worker_id and lease_expires_ms are then that
  // node's).
  int gang_node = 0;
  Labels labels;
  // The job's webhook ("" => none) and its WebhookEventMask (0 => every event type). The secret
  // is never loaded into a JobRecord.
  std::string webhook_url;
  int webhook_events = 0;
};

struct EventRecord {
  int64_t sequence = 0;  // assigned by the store
  int64_t time_ms = 0;   // assigned by the store
  EventKind kind = EventKind::kUnspecified;
  JobState state = JobState::kUnspecified;  // assigned by the store
  int stage = 0;
  int64_t step = 0;
  int64_t total = 0;
  float loss = 0;
  double learning_rate = 0;
  float images_per_second = 0;
  float eta_seconds = -1;
  std::string message;
  int attempt = 0;  // assigned by the store
};

// Values equal dreambooth.v1.WebhookDelivery.State.
enum class WebhookDeliveryState : int {
  kUnspecified = 0,
  kPending = 1,
  kDelivered = 2,
  kFailed = 3,
};

struct WebhookAttemptRecord {
  int number = 0;  // 1-based
  int64_t start_time_ms = 0;
  int64_t duration_ms = 0;
  int http_status = 0;  // 0 => no answer
  std::string error;    // "" => delivered
};

struct WebhookDeliveryRecord {
  int64_t seq = 0;  // insertion order (pagination cursor)
  std::string id;   // "whd_<hex>"
  std::string job_id;
  WebhookEventType event_type = WebhookEventType::kUnspecified;
  int64_t event_sequence = 0;
  std::string body;  // the JSON POSTed
  WebhookDeliveryState state = WebhookDeliveryState::kUnspecified;
  int64_t create_time_ms = 0;
  int64_t next_attempt_ms = 0;  // while PENDING
  std::vector<WebhookAttemptRecord> attempts;
};

// A delivery claimed for an attempt, with where to send it and the key to sign it with.
struct WebhookTask {
  WebhookDeliveryRecord delivery;
  std::string url;
  std::string secret;
};

// A granted lease on a job.
struct Lease {
  JobRecord job;  // after the claim (state RUNNING, attempt incremented)
  std::string token;
  int64_t expires_ms = 0;
};

struct CheckpointFileRecord {
  std::string path;
  std::string digest;
  int64_t size_bytes = 0;
};

struct CheckpointRecord {
  std::string id;
  std::string job_id;
  int64_t step = 0;
  CheckpointKind kind = CheckpointKind::kUnspecified;
  int attempt = 0;
  int64_t create_time_ms = 0;
  std::string manifest_digest;
  std::vector<CheckpointFileRecord> files;  // sorted by path
  int64_t seq = 0;                          // commit order over all jobs
  // The job's reported loss and learning rate at `step`, when it reported that step.
  std::optional<double> loss;
  std::optional<double> learning_rate;
};

struct CacheItemRecord {
  std::string name;
  std::string digest;
  int64_t size_bytes = 0;
};

struct CacheEntryRecord {
  std::string tenant;
  std::string key;
  std::string metadata_json;
  int64_t update_time_ms = 0;
  std::vector<CacheItemRecord> items;  // sorted by name
};

}  // namespace dreambooth::storage

#endif  // DREAMBOOTH_STORAGE_RECORDS_H_
