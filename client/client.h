// C++ SDK for dreamboothd's public API (and raw stubs for the worker gateway).
//
// Every call carries a deadline; unary calls are retried with exponential backoff (plus jitter)
// on UNAVAILABLE. CreateJob always sends a request_id (a fresh UUID4 when the caller gives none)
// so that its retries are idempotent. WatchJob and DownloadCheckpoint resume by themselves after
// a dropped connection, without gaps or duplicates. Thread-safe: one Client may be shared.
#ifndef DREAMBOOTH_CLIENT_CLIENT_H_
#define DREAMBOOTH_CLIENT_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/grpc_channel.h"
#include "dreambooth/v1/service.grpc.pb.h"
#include "dreambooth/v1/worker_gateway.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace dreambooth::client {

struct ClientOptions {
  // host:port of dreamboothd.
  std::string target = "127.0.0.1:50051";
  // TLS (a CA bundle or the system roots) and the API key sent on every call.
  ChannelSecurity security;
  // Deadline of each unary call attempt.
  int64_t call_timeout_ms = 30'000;
  // Deadline of one streaming call (uploads, watch, downloads, sampling).
  int64_t stream_timeout_ms = 24LL * 3600 * 1000;
  // Attempts for retryable failures (UNAVAILABLE), including the first.
  int max_attempts = 6;
  int64_t initial_backoff_ms = 100;
  int64_t max_backoff_ms = 5'000;
};

// Maps a grpc::Status onto absl::Status (same canonical code and message).
absl::Status FromGrpc(const grpc::Status& status);

// A file to upload: a label, its bytes and an optional caption (FileHeader.caption).
struct UploadFile {
  std::string name;
  std::string bytes;
  std::string caption = {};  // "" => none
};

class Client {
 public:
  // Creates a channel to options.target (connects lazily). When options.security names a CA
  // bundle that cannot be read, every call fails with INVALID_ARGUMENT naming it (Connect says
  // so at once).
  explicit Client(ClientOptions options);
  // Like the constructor, but an unreadable CA bundle is an error here.
  static absl::StatusOr<std::unique_ptr<Client>> Connect(ClientOptions options);
  // Uses an existing channel (e.g. an in-process one).
  Client(ClientOptions options, std::shared_ptr<grpc::Channel> channel);

  // Uploads files (read from disk; the file's base name is its label) into a new set
  // (image_set_id empty) or an existing one. Sent in 1 MiB chunks. Not retried (a retry could
  // create a second set); re-uploading the same files into a set is harmless (deduplicated).
  // UploadFiles sends the text of `<stem>.txt` next to an image (e.g. dog1.txt for dog1.jpg) as
  // that image's caption, when there is such a file.
  absl::StatusOr<v1::UploadImagesResponse> UploadFiles(const std::vector<std::string>& paths,
                                                       const std::string& image_set_id,
                                                       const std::string& display_name);
  absl::StatusOr<v1::UploadImagesResponse> Upload(const std::vector<UploadFile>& files,
                                                  const std::string& image_set_id,
                                                  const std::string& display_name);
  absl::StatusOr<v1::ImageSet> GetImageSet(const std::string& image_set_id);
  absl::StatusOr<v1::ListImageSetsResponse> ListImageSets(int page_size,
                                                          const std::string& page_token);
  absl::Status DeleteImageSet(const std::string& image_set_id);

  // request_id "" => a fresh UUID4 (still making this call's own retries idempotent).
  absl::StatusOr<v1::Job> CreateJob(const v1::JobSpec& spec, const std::string& request_id = "");
  absl::StatusOr<v1::Job> GetJob(const std::string& job_id);
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

  absl::StatusOr<v1::ListCheckpointsResponse> ListCheckpoints(const std::string& job_id);
  // Writes the checkpoint's files under output_dir (diffusers layout), resuming after dropped
  // connections and verifying every file's SHA-256. Returns the manifest.
  absl::StatusOr<v1::Checkpoint> DownloadCheckpoint(const std::string& checkpoint_id,
                                                    const std::string& output_dir);
  absl::Status DeleteCheckpoint(const std::string& checkpoint_id);

  // Streams progress and images of a Sample call to on_response.
  absl::Status Sample(const v1::SampleRequest& request,
                      const std::function<void(const v1::SampleResponse&)>& on_response);

  // grpc.health.v1 Check of `service` ("" = the whole server).
  absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> CheckHealth(
      const std::string& service = "");

  // Raw stubs (no retries, no deadlines added) for advanced use and tests. gateway() works only
  // on a client whose target is the daemon's worker listener, with a worker key.
  v1::DreamBooth::Stub& stub() { return *stub_; }
  v1::WorkerGateway::Stub& gateway() { return *gateway_; }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

 private:
  Client(ClientOptions options, absl::StatusOr<std::shared_ptr<grpc::Channel>> channel);
  // Runs `attempt` (given a fresh context with a deadline) until it succeeds, fails with a
  // non-retryable status or attempts run out.
  absl::Status Retry(const std::function<grpc::Status(grpc::ClientContext*)>& attempt);
  void SetDeadline(grpc::ClientContext* context, int64_t timeout_ms) const;
  void Backoff(int attempt) const;

  const ClientOptions options_;
  absl::Status channel_status_;  // why no channel could be made; OK otherwise
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::DreamBooth::Stub> stub_;
  std::unique_ptr<v1::WorkerGateway::Stub> gateway_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

// A random UUID4 string.
std::string NewRequestId();

}  // namespace dreambooth::client

#endif  // DREAMBOOTH_CLIENT_CLIENT_H_
