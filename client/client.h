// C++ SDK for dreamboothd's public API (service dreambooth.v1.DreamBooth and grpc.health.v1).
//
// Every call carries a deadline; unary calls are retried with exponential backoff (plus jitter)
// on UNAVAILABLE. CreateJob always sends a request_id (a fresh UUID4 when the caller gives none)
// so that its retries are idempotent. WatchJob and DownloadCheckpoint resume by themselves after
// a dropped connection, without gaps or duplicates. Errors are absl::Status with the server's
// canonical code and message; the server's structured details (google.rpc.ErrorInfo,
// BadRequest) ride along as a payload that client/error_details.h reads. Thread-safe: one Client
// may be shared.
//
// Installed as the CMake package DreamBoothClient (target DreamBooth::client); docs/api.md#c-sdk.
#ifndef DREAMBOOTH_CLIENT_CLIENT_H_
#define DREAMBOOTH_CLIENT_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/grpc_channel.h"
#include "dreambooth/v1/service.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace dreambooth::client {

// Returns the API key for the next call, or the error that call fails with (its code kept).
// Called before every call attempt (each retry and each resumption of a stream), possibly from
// several threads at once, so a key may rotate while the client lives.
using ApiKeyProvider = std::function<absl::StatusOr<std::string>()>;

struct ClientOptions {
  // host:port of dreamboothd.
  std::string target = "127.0.0.1:50051";
  // TLS (a CA bundle or the system roots) and a fixed API key sent on every call.
  ChannelSecurity security;
  // Supplies the API key of each call instead of security.api_key (which must then be empty:
  // setting both fails every call with INVALID_ARGUMENT). Works over TLS and plaintext.
  ApiKeyProvider api_key_provider;
  // gRPC call credentials added to every call (e.g. grpc::AccessTokenCredentials, or a
  // grpc::MetadataCredentialsPlugin of your own). gRPC sends them over TLS channels only; a call
  // on a plaintext channel fails UNAUTHENTICATED. nullptr => none.
  std::shared_ptr<grpc::CallCredentials> call_credentials;
  // Deadline of each unary call attempt.
  int64_t call_timeout_ms = 30'000;
  // Deadline of one streaming call (uploads, watch, downloads, sampling).
  int64_t stream_timeout_ms = 24LL * 3600 * 1000;
  // Attempts for retryable failures (UNAVAILABLE), including the first.
  int max_attempts = 6;
  int64_t initial_backoff_ms = 100;
  int64_t max_backoff_ms = 5'000;
};

// Maps a grpc::Status onto absl::Status (same canonical code and message; the serialized
// google.rpc.Status details, when the server sent any, as the payload error_details.h reads).
absl::Status FromGrpc(const grpc::Status& status);

// Labels of a job or an image set: key -> value (rules in service.proto, UploadTarget.labels).
using Labels = std::map<std::string, std::string>;

// A file to upload: a label, its bytes and an optional caption (FileHeader.caption).
struct UploadFile {
  std::string name;
  std::string bytes;
  std::string caption = {};  // "" => none
};

// Where an upload goes (UploadTarget).
struct UploadOptions {
  // An existing set to add to; "" => a new set.
  std::string image_set_id;
  // A new set's display name and labels (ignored when image_set_id is set).
  std::string display_name;
  Labels labels;
  // Idempotency key of a new set's upload ("" => none): a repeated upload with the same id adds
  // to the set the first one created.
  std::string request_id;
};

class Client {
 public:
  // Creates a channel to options.target (connects lazily). When options.security names a CA
  // bundle that cannot be read, or both an API key and a provider are set, every call fails with
  // INVALID_ARGUMENT naming the problem (Connect says so at once).
  explicit Client(ClientOptions options);
  // Like the constructor, but a bad ClientOptions is an error here.
  static absl::StatusOr<std::unique_ptr<Client>> Connect(ClientOptions options);
  // Uses an existing channel (e.g. an in-process one); options.security is not applied to it,
  // the per-call hooks (api_key_provider, call_credentials) are.
  Client(ClientOptions options, std::shared_ptr<grpc::Channel> channel);

  // Uploads files (read from disk; the file's base name is its label) into a new set or an
  // existing one. Sent in 1 MiB chunks. Not retried (without a request_id a retry could create
  // a second set); re-uploading the same files into a set is harmless (deduplicated).
  // UploadFiles sends the text of `<stem>.txt` next to an image (e.g. dog1.txt for dog1.jpg) as
  // that image's caption, when there is such a file.
  absl::StatusOr<v1::UploadImagesResponse> UploadFiles(const std::vector<std::string>& paths,
                                                       const UploadOptions& options);
  absl::StatusOr<v1::UploadImagesResponse> Upload(const std::vector<UploadFile>& files,
                                                  const UploadOptions& options);
  // Shorthands of the above for a set's id (or "") and a new set's display name.
  absl::StatusOr<v1::UploadImagesResponse> UploadFiles(const std::vector<std::string>& paths,
                                                       const std::string& image_set_id,
                                                       const std::string& display_name);
  absl::StatusOr<v1::UploadImagesResponse> Upload(const std::vector<UploadFile>& files,
                                                  const std::string& image_set_id,
                                                  const std::string& display_name);
  absl::StatusOr<v1::ImageSet> GetImageSet(const std::string& image_set_id);
  // One page; request.filter selects by labels (service.proto).
  absl::StatusOr<v1::ListImageSetsResponse> ListImageSets(const v1::ListImageSetsRequest& request);
  absl::StatusOr<v1::ListImageSetsResponse> ListImageSets(int page_size,
                                                          const std::string& page_token);
  absl::Status DeleteImageSet(const std::string& image_set_id);

  // request_id "" => a fresh UUID4 (still making this call's own retries idempotent).
  absl::StatusOr<v1::Job> CreateJob(const v1::JobSpec& spec, const std::string& request_id = "",
                                    const Labels& labels = {});
  // The whole request (labels, webhook); request.request_id "" => a fresh UUID4.
  absl::StatusOr<v1::Job> CreateJob(v1::CreateJobRequest request);
  absl::StatusOr<v1::Job> GetJob(const std::string& job_id);
  // One page; request.filter and request.order_by as in service.proto (ListJobsRequest).
  absl::StatusOr<v1::ListJobsResponse> ListJobs(const v1::ListJobsRequest& request);
  absl::StatusOr<v1::ListJobsResponse> ListJobs(int page_size, const std::string& page_token,
                                                v1::JobState state = v1::JOB_STATE_UNSPECIFIED);
  absl::StatusOr<v1::Job> CancelJob(const std::string& job_id);
  // Deletes the job with its events and checkpoints (a running one is stopped first).
  absl::Status DeleteJob(const std::string& job_id);

  // Streams events with sequence > after_sequence to on_event, reconnecting (with backoff) from
  // the last delivered sequence when the stream breaks with UNAVAILABLE, DEADLINE_EXCEEDED,
  // INTERNAL or UNKNOWN. Returns OK when the job reached a terminal state (or on_event returned
  // false), else the first non-retryable error.
  absl::Status WatchJob(const std::string& job_id, int64_t after_sequence,
                        const std::function<bool(const v1::JobEvent&)>& on_event);
  // The PNG of the job's VALIDATION_IMAGE event `sequence`.
  absl::StatusOr<v1::ValidationImage> GetValidationImage(const std::string& job_id,
                                                         int64_t sequence);

  // One page of a job's checkpoints, oldest first (request.kind filters; page_size 0 => 100).
  absl::StatusOr<v1::ListCheckpointsResponse> ListCheckpoints(
      const v1::ListCheckpointsRequest& request);
  // The first page (up to 100) of a job's checkpoints.
  absl::StatusOr<v1::ListCheckpointsResponse> ListCheckpoints(const std::string& job_id);
  // One checkpoint's manifest and training metrics.
  absl::StatusOr<v1::Checkpoint> GetCheckpoint(const std::string& checkpoint_id);
  // Writes the checkpoint's files under output_dir (diffusers layout), resuming after dropped
  // connections and verifying every file's SHA-256. Returns the manifest. With format
  // SINGLE_FILE, output_dir receives one .safetensors named by the manifest's one file
  // (v1::CheckpointFormat); FAILED_PRECONDITION for a kind without that form.
  absl::StatusOr<v1::Checkpoint> DownloadCheckpoint(
      const std::string& checkpoint_id, const std::string& output_dir,
      v1::CheckpointFormat format = v1::CHECKPOINT_FORMAT_FILES);
  absl::Status DeleteCheckpoint(const std::string& checkpoint_id);

  // Streams progress and images of a Sample call to on_response.
  absl::Status Sample(const v1::SampleRequest& request,
                      const std::function<void(const v1::SampleResponse&)>& on_response);

  // One page of a job's webhook deliveries with their attempts, oldest first.
  absl::StatusOr<v1::ListWebhookDeliveriesResponse> ListWebhookDeliveries(
      const v1::ListWebhookDeliveriesRequest& request);

  // The base models CreateJob accepts (spec.base_model), by name.
  absl::StatusOr<v1::ListBaseModelsResponse> ListBaseModels();

  // grpc.health.v1 Check of `service` ("" = the whole server).
  absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> CheckHealth(
      const std::string& service = "");

  // The raw stub (no retries, deadlines or per-call hooks added) for advanced use, and the
  // channel it uses; both live as long as the Client.
  v1::DreamBooth::Stub& stub() { return *stub_; }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

 private:
  Client(ClientOptions options, absl::StatusOr<std::shared_ptr<grpc::Channel>> channel);
  // Runs `attempt` (given a fresh prepared context) until it succeeds, fails with a
  // non-retryable status or attempts run out.
  absl::Status Retry(const std::function<grpc::Status(grpc::ClientContext*)>& attempt);
  // Sets the deadline and this client's per-call credentials on `context`; an error (the
  // client's configuration, or the key provider's) means the call must not be made.
  absl::Status Prepare(grpc::ClientContext* context, int64_t timeout_ms) const;
  void Backoff(int attempt) const;

  const ClientOptions options_;
  absl::Status channel_status_;  // why no usable channel could be made; OK otherwise
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::DreamBooth::Stub> stub_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

// A random UUID4 string.
std::string NewRequestId();

}  // namespace dreambooth::client

#endif  // DREAMBOOTH_CLIENT_CLIENT_H_
