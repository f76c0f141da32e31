// The worker's side of the WorkerGateway API (proto/dreambooth/v1/worker_gateway.proto): one
// method per RPC with deadlines, gRPC errors mapped to absl::Status, and blob transfers between
// the server's blob store and local files (chunked, digest-verified, written atomically).
#ifndef DREAMBOOTH_WORKER_GATEWAY_CLIENT_H_
#define DREAMBOOTH_WORKER_GATEWAY_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
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

// The slowest link a blob transfer is given time for: 1 MiB/s.
inline constexpr int64_t kMinTransferBytesPerSecond = int64_t{1} << 20;

// The deadline of one blob transfer of `size_bytes`: `rpc_timeout` plus the time the bytes take at
// kMinTransferBytesPerSecond (a 4 GiB checkpoint file: rpc_timeout + 68 min). A negative size
// counts as 0.
std::chrono::milliseconds TransferTimeout(std::chrono::milliseconds rpc_timeout,
                                          int64_t size_bytes);

// Arguments for a worker's channel to the gateway: while the server is unreachable the channel
// tries to reconnect at least once a second (gRPC's default backs off to two minutes), so calls
// waiting for a restarted server get through within about a second of its return, well inside
// the lease they are retried under.
grpc::ChannelArguments GatewayChannelArguments();

// Thin client of one dreamboothd's WorkerGateway. Every try of a call waits for the channel to
// be ready, for at most `rpc_timeout` (a blob transfer: TransferTimeout). A try that fails with
// UNAVAILABLE or DEADLINE_EXCEEDED (the server restarting, or unreachable) is repeated with
// backoff: a call under a lease until that lease expires (as last granted or renewed through this
// client; see NoteLease), any other call for up to a minute, so a server restart shorter than the
// lease does not cost the task. LeaseTask and Heartbeat are tried once (their callers poll again
// soon). Thread-safe: every method may be called from any thread concurrently.
class GatewayClient {
 public:
  // Connects (lazily) to `target`, e.g. "127.0.0.1:50051", with GatewayChannelArguments().
  // `rpc_timeout` bounds each try of a unary call.
  explicit GatewayClient(const std::string& target,
                         std::chrono::milliseconds rpc_timeout = std::chrono::seconds(30));
  // Uses an existing channel (tests).
  GatewayClient(std::shared_ptr<grpc::Channel> channel, std::chrono::milliseconds rpc_timeout);

  // LeaseTask with long polling; nullopt when no task arrived within request.wait_ms().
  absl::StatusOr<std::optional<v1::Task>> LeaseTask(const v1::LeaseTaskRequest& request);
  // One heartbeat, waiting at most `timeout` (and at most rpc_timeout) for the server. A success
  // renews the lease this client knows (NoteLease).
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request);
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request,
                                                  std::chrono::milliseconds timeout);
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
  // Downloads a blob of `size_bytes` (its expected size, which sets the deadline:
  // TransferTimeout) to `path` (parent folders created; temp file + rename), verifying its digest.
  // An existing file at `path` is replaced. The lease's task must be allowed to read it.
  absl::Status ReadBlobToFile(const std::string& lease_token, const std::string& digest,
                              int64_t size_bytes, const std::string& path);
  // Uploads bytes / a file under the lease; returns the digest and size the server stored.
  absl::StatusOr<BlobRef> WriteBlob(const std::string& lease_token, const std::string& bytes);
  absl::StatusOr<BlobRef> WriteBlobFromFile(const std::string& lease_token,
                                            const std::string& path);

  // Records that the lease of `lease_token` (of `ttl`) was granted or renewed by a call sent at
  // `sent`, so that calls under it are retried until sent + ttl. LeaseTask and Heartbeat call
  // it; a LeaseKeeper also does, at its start. A `ttl` of 0 keeps the one recorded before.
  void NoteLease(const std::string& lease_token, std::chrono::steady_clock::time_point sent,
                 std::chrono::milliseconds ttl) ABSL_LOCKS_EXCLUDED(leases_mu_);
  // When the lease of `lease_token` expires as far as this client knows; nullopt when unknown.
  std::optional<std::chrono::steady_clock::time_point> LeaseExpiry(
      const std::string& lease_token) const ABSL_LOCKS_EXCLUDED(leases_mu_);
  // Forgets the lease (its task is over); CompleteTask, FailTask and ReleaseTask also do.
  void ForgetLease(const std::string& lease_token) ABSL_LOCKS_EXCLUDED(leases_mu_);

 private:
  std::unique_ptr<grpc::ClientContext> NewContext(std::chrono::milliseconds timeout) const;
  // When a call under `lease_token` ("" for none) that started at `start` stops retrying: the
  // lease's expiry when known, else start + retry_window_.
  std::chrono::steady_clock::time_point GiveUpTime(
      const std::string& lease_token, std::chrono::steady_clock::time_point start) const;
  // Calls `call(context)` with a fresh wait-for-ready context of `timeout` per try, repeating it
  // while it fails with UNAVAILABLE or DEADLINE_EXCEEDED until GiveUpTime(lease_token).
  template <typename Call>
  grpc::Status RetryTransient(const std::string& lease_token, std::chrono::milliseconds timeout,
                              Call call) const;
  // Repeats `fn` likewise (for calls that make their own contexts).
  template <typename T, typename Fn>
  absl::StatusOr<T> RetryStatusOr(const std::string& lease_token, Fn fn) const;
  absl::StatusOr<std::string> ReadBlobOnce(const std::string& lease_token,
                                           const std::string& digest, bool verify);
  absl::Status ReadBlobToFileOnce(const std::string& lease_token, const std::string& digest,
                                  int64_t size_bytes, const std::string& path);
  absl::StatusOr<BlobRef> WriteBlobChunks(const std::string& lease_token,
                                          const std::string& expected_digest, int64_t size,
                                          std::istream& in);

  // Constant after construction.
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkerGateway::Stub> stub_;
  std::chrono::milliseconds rpc_timeout_;
  // How long calls under no (known) lease keep retrying while the server is unreachable, >= 60 s.
  std::chrono::milliseconds retry_window_;

  struct Lease {
    std::chrono::milliseconds ttl{0};
    std::chrono::steady_clock::time_point expiry;
  };
  mutable absl::Mutex leases_mu_;
  std::map<std::string, Lease> leases_ ABSL_GUARDED_BY(leases_mu_);  // by lease token
};

}  // namespace dreambooth::worker

#endif  // DREAMBOOTH_WORKER_GATEWAY_CLIENT_H_
