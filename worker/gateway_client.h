// The worker's side of the WorkerGateway API (proto/dreambooth/v1/worker_gateway.proto): one
// method per RPC with deadlines, gRPC errors mapped to absl::Status, and blob transfers between
// the server's blob store and local files (chunked, digest-verified, written atomically).
#ifndef DREAMBOOTH_WORKER_GATEWAY_CLIENT_H_
#define DREAMBOOTH_WORKER_GATEWAY_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dreambooth/v1/worker_gateway.grpc.pb.h"

namespace dreambooth::worker {

namespace v1 = ::dreambooth::v1;

// Maps a gRPC status to the absl::Status with the same canonical code and message.
absl::Status FromGrpc(const grpc::Status& status, const std::string& what);

// A blob stored on the server.
struct BlobRef {
  std::string digest;  // lower-case hex SHA-256
  int64_t size_bytes = 0;
};

// Thin client of one dreamboothd's WorkerGateway. Calls wait for the channel to be ready and
// are retried while the server is UNAVAILABLE (for up to a minute), so a server restart does not
// fail the task; Heartbeat is not retried (its caller beats again soon). Thread-safe: every
// method may be called from any thread concurrently (the channel and stub are).
class GatewayClient {
 public:
  // Connects (lazily) to `target`, e.g. "127.0.0.1:50051". `rpc_timeout` bounds every unary call
  // and every chunk of a blob transfer.
  explicit GatewayClient(const std::string& target,
                         std::chrono::milliseconds rpc_timeout = std::chrono::seconds(30));
  // Uses an existing channel (tests).
  GatewayClient(std::shared_ptr<grpc::Channel> channel, std::chrono::milliseconds rpc_timeout);

  // LeaseTask with long polling; nullopt when no task arrived within request.wait_ms().
  absl::StatusOr<std::optional<v1::Task>> LeaseTask(const v1::LeaseTaskRequest& request);
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request);
  // Returns the sequence number of the last stored event.
  absl::StatusOr<int64_t> ReportEvents(const std::string& lease_token,
                                       const std::vector<v1::JobEvent>& events);
  absl::StatusOr<std::string> CommitCheckpoint(const v1::CommitCheckpointRequest& request);
  absl::StatusOr<v1::JobState> CompleteTask(const std::string& lease_token);
  absl::StatusOr<v1::JobState> FailTask(const std::string& lease_token, const std::string& error,
                                        bool retryable);
  // Gives the lease back (worker shutdown). UNIMPLEMENTED from servers that predate it.
  absl::StatusOr<v1::JobState> ReleaseTask(const std::string& lease_token,
                                           const std::string& reason);
  // Returns whether the Sample caller is still connected.
  absl::StatusOr<bool> ReportSampleOutput(const std::string& lease_token,
                                          const v1::SampleResponse& output);
  // The entry `key` of the lease's tenant.
  absl::StatusOr<v1::GetCacheEntryResponse> GetCacheEntry(const std::string& lease_token,
                                                          const std::string& key);
  absl::StatusOr<int> PutCacheEntry(const v1::PutCacheEntryRequest& request);

  // Reads a whole blob into memory, verifying its digest when `verify` (DATA_LOSS on mismatch).
  // The lease's task must be allowed to read it (NOT_FOUND otherwise).
  absl::StatusOr<std::string> ReadBlob(const std::string& lease_token, const std::string& digest,
                                       bool verify = true);
  // Downloads a blob to `path` (parent folders created; temp file + fsync + rename), verifying
  // its digest. An existing file at `path` is replaced.
  absl::Status ReadBlobToFile(const std::string& lease_token, const std::string& digest,
                              const std::string& path);
  // Uploads bytes / a file under the lease; returns the digest and size the server stored.
  absl::StatusOr<BlobRef> WriteBlob(const std::string& lease_token, const std::string& bytes);
  absl::StatusOr<BlobRef> WriteBlobFromFile(const std::string& lease_token,
                                            const std::string& path);

 private:
  std::unique_ptr<grpc::ClientContext> NewContext(std::chrono::milliseconds timeout) const;
  // Repeats `fn` while it fails with UNAVAILABLE, with backoff, for up to retry_window_.
  template <typename T, typename Fn>
  absl::StatusOr<T> RetryStatusOr(Fn fn) const;
  absl::StatusOr<std::string> ReadBlobOnce(const std::string& lease_token,
                                           const std::string& digest, bool verify);
  absl::Status ReadBlobToFileOnce(const std::string& lease_token, const std::string& digest,
                                  const std::string& path);
  absl::StatusOr<BlobRef> WriteBlobChunks(const std::string& lease_token,
                                          const std::string& expected_digest, int64_t size,
                                          std::istream& in);

  // Constant after construction.
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkerGateway::Stub> stub_;
  std::chrono::milliseconds rpc_timeout_;
  // How long calls keep retrying while the server is unreachable (a restart), >= 60 s.
  std::chrono::milliseconds retry_window_;
};

}  // namespace dreambooth::worker

#endif  // DREAMBOOTH_WORKER_GATEWAY_CLIENT_H_
