#include "worker/gateway_client.h"

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/status_macros.h"
#include "worker/train/file_util.h"

namespace dreambooth::worker {
namespace {

constexpr int64_t kChunkBytes = 1 << 20;  // the gateway's per-message cap
constexpr std::chrono::milliseconds kMaxBackoff(2000);

// The server could not be reached in time (restarting, or the network): worth another try.
bool IsTransient(absl::StatusCode code) {
  return code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kDeadlineExceeded;
}

// One try of `call` with a context that waits for the channel to be ready for up to `timeout`.
template <typename Call>
grpc::Status TryOnce(std::chrono::milliseconds timeout, Call call) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  context.set_wait_for_ready(true);
  return call(&context);
}

}  // namespace

std::chrono::milliseconds TransferTimeout(std::chrono::milliseconds rpc_timeout,
                                          int64_t size_bytes) {
  const int64_t bytes = std::max<int64_t>(size_bytes, 0);
  // Rounded up to the next millisecond; exact for sizes up to 8 PiB.
  return rpc_timeout + std::chrono::milliseconds((bytes * 1000 + kMinTransferBytesPerSecond - 1) /
                                                 kMinTransferBytesPerSecond);
}

absl::Status FromGrpc(const grpc::Status& status, const std::string& what) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(what, ": ", status.error_message()));
}

grpc::ChannelArguments GatewayChannelArguments() {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 250);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  return args;
}

GatewayClient::GatewayClient(const std::string& target, std::chrono::milliseconds rpc_timeout)
    : GatewayClient(grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(),
                                              GatewayChannelArguments()),
                    rpc_timeout) {}

GatewayClient::GatewayClient(std::shared_ptr<grpc::Channel> channel,
                             std::chrono::milliseconds rpc_timeout)
    : channel_(std::move(channel)),
      stub_(v1::WorkerGateway::NewStub(channel_)),
      rpc_timeout_(rpc_timeout),
      retry_window_(std::max(rpc_timeout, std::chrono::milliseconds(60000))) {}

void GatewayClient::NoteLease(const std::string& lease_token,
                              std::chrono::steady_clock::time_point sent,
                              std::chrono::milliseconds ttl) {
  absl::MutexLock lock(&leases_mu_);
  if (ttl.count() <= 0) {
    auto it = leases_.find(lease_token);
    if (it == leases_.end()) return;
    ttl = it->second.ttl;
  }
  Lease& lease = leases_[lease_token];
  lease.ttl = ttl;
  lease.expiry = std::max(lease.expiry, sent + ttl);
}

std::optional<std::chrono::steady_clock::time_point> GatewayClient::LeaseExpiry(
    const std::string& lease_token) const {
  absl::MutexLock lock(&leases_mu_);
  auto it = leases_.find(lease_token);
  if (it == leases_.end()) return std::nullopt;
  return it->second.expiry;
}

void GatewayClient::ForgetLease(const std::string& lease_token) {
  absl::MutexLock lock(&leases_mu_);
  leases_.erase(lease_token);
}

std::chrono::steady_clock::time_point GatewayClient::GiveUpTime(
    const std::string& lease_token, std::chrono::steady_clock::time_point start) const {
  if (!lease_token.empty()) {
    if (auto expiry = LeaseExpiry(lease_token)) return *expiry;
  }
  return start + retry_window_;
}

template <typename Call>
grpc::Status GatewayClient::RetryTransient(const std::string& lease_token,
                                           std::chrono::milliseconds timeout, Call call) const {
  const auto start = std::chrono::steady_clock::now();
  std::chrono::milliseconds backoff(100);
  while (true) {
    grpc::Status status = TryOnce(timeout, call);
    // Re-read every time: heartbeats renew the lease while this call retries.
    const auto give_up = GiveUpTime(lease_token, start);
    if (!IsTransient(static_cast<absl::StatusCode>(status.error_code())) ||
        std::chrono::steady_clock::now() + backoff > give_up) {
      return status;
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

template <typename T, typename Fn>
absl::StatusOr<T> GatewayClient::RetryStatusOr(const std::string& lease_token, Fn fn) const {
  const auto start = std::chrono::steady_clock::now();
  std::chrono::milliseconds backoff(100);
  while (true) {
    absl::StatusOr<T> result = fn();
    if (result.ok() || !IsTransient(result.status().code()) ||
        std::chrono::steady_clock::now() + backoff > GiveUpTime(lease_token, start)) {
      return result;
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

std::unique_ptr<grpc::ClientContext> GatewayClient::NewContext(
    std::chrono::milliseconds timeout) const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + timeout);
  context->set_wait_for_ready(true);
  return context;
}

absl::StatusOr<std::optional<v1::Task>> GatewayClient::LeaseTask(
    const v1::LeaseTaskRequest& request) {
  v1::LeaseTaskResponse response;
  const auto sent = std::chrono::steady_clock::now();
  RETURN_IF_ERROR(FromGrpc(
      TryOnce(std::chrono::milliseconds(request.wait_ms()) + std::chrono::seconds(5),
              [&](grpc::ClientContext* c) { return stub_->LeaseTask(c, request, &response); }),
      "LeaseTask"));
  if (!response.has_task()) return std::optional<v1::Task>();
  NoteLease(response.task().lease_token(), sent,
            std::chrono::milliseconds(response.task().lease_ttl_ms()));
  return std::optional<v1::Task>(std::move(*response.mutable_task()));
}

absl::StatusOr<v1::HeartbeatResponse> GatewayClient::Heartbeat(
    const v1::HeartbeatRequest& request) {
  return Heartbeat(request, rpc_timeout_);
}

absl::StatusOr<v1::HeartbeatResponse> GatewayClient::Heartbeat(const v1::HeartbeatRequest& request,
                                                               std::chrono::milliseconds timeout) {
  v1::HeartbeatResponse response;
  const auto sent = std::chrono::steady_clock::now();
  RETURN_IF_ERROR(FromGrpc(
      TryOnce(std::min(timeout, rpc_timeout_),
              [&](grpc::ClientContext* c) { return stub_->Heartbeat(c, request, &response); }),
      "Heartbeat"));
  NoteLease(request.lease_token(), sent, std::chrono::milliseconds(0));
  return response;
}

absl::StatusOr<int64_t> GatewayClient::ReportEvents(const std::string& lease_token,
                                                    const std::vector<v1::JobEvent>& events) {
  v1::ReportEventsRequest request;
  request.set_lease_token(lease_token);
  for (const v1::JobEvent& e : events) *request.add_events() = e;
  v1::ReportEventsResponse response;
  RETURN_IF_ERROR(FromGrpc(RetryTransient(lease_token, rpc_timeout_,
                                          [&](grpc::ClientContext* c) {
                                            return stub_->ReportEvents(c, request, &response);
                                          }),
                           "ReportEvents"));
  return response.last_sequence();
}

absl::StatusOr<std::string> GatewayClient::CommitCheckpoint(
    const v1::CommitCheckpointRequest& request) {
  v1::CommitCheckpointResponse response;
  RETURN_IF_ERROR(FromGrpc(RetryTransient(request.lease_token(), rpc_timeout_,
                                          [&](grpc::ClientContext* c) {
                                            return stub_->CommitCheckpoint(c, request, &response);
                                          }),
                           "CommitCheckpoint"));
  return response.checkpoint_id();
}

absl::StatusOr<v1::JobState> GatewayClient::CompleteTask(const std::string& lease_token) {
  v1::CompleteTaskRequest request;
  request.set_lease_token(lease_token);
  v1::CompleteTaskResponse response;
  RETURN_IF_ERROR(FromGrpc(RetryTransient(lease_token, rpc_timeout_,
                                          [&](grpc::ClientContext* c) {
                                            return stub_->CompleteTask(c, request, &response);
                                          }),
                           "CompleteTask"));
  ForgetLease(lease_token);  // the lease ended (or is not ours any more)
  return response.state();
}

absl::StatusOr<v1::JobState> GatewayClient::FailTask(const std::string& lease_token,
                                                     const std::string& error, bool retryable) {
  v1::FailTaskRequest request;
  request.set_lease_token(lease_token);
  request.set_error(error);
  request.set_retryable(retryable);
  v1::FailTaskResponse response;
  RETURN_IF_ERROR(FromGrpc(RetryTransient(lease_token, rpc_timeout_,
                                          [&](grpc::ClientContext* c) {
                                            return stub_->FailTask(c, request, &response);
                                          }),
                           "FailTask"));
  ForgetLease(lease_token);  // the lease ended (or is not ours any more)
  return response.state();
}

absl::StatusOr<v1::JobState> GatewayClient::ReleaseTask(const std::string& lease_token,
                                                        const std::string& reason) {
  v1::ReleaseTaskRequest request;
  request.set_lease_token(lease_token);
  request.set_reason(reason);
  v1::ReleaseTaskResponse response;
  RETURN_IF_ERROR(FromGrpc(
      TryOnce(rpc_timeout_,
              [&](grpc::ClientContext* c) { return stub_->ReleaseTask(c, request, &response); }),
      "ReleaseTask"));
  ForgetLease(lease_token);  // the lease ended (or is not ours any more)
  return response.state();
}

absl::StatusOr<bool> GatewayClient::ReportSampleOutput(const std::string& lease_token,
                                                       const v1::SampleResponse& output) {
  v1::ReportSampleOutputRequest request;
  request.set_lease_token(lease_token);
  *request.mutable_output() = output;
  v1::ReportSampleOutputResponse response;
  RETURN_IF_ERROR(FromGrpc(RetryTransient(lease_token, rpc_timeout_,
                                          [&](grpc::ClientContext* c) {
                                            return stub_->ReportSampleOutput(c, request, &response);
                                          }),
                           "ReportSampleOutput"));
  return response.caller_connected();
}

absl::StatusOr<v1::GetCacheEntryResponse> GatewayClient::GetCacheEntry(
    const std::string& lease_token, const std::string& key) {
  v1::GetCacheEntryRequest request;
  request.set_key(key);
  request.set_lease_token(lease_token);
  v1::GetCacheEntryResponse response;
  RETURN_IF_ERROR(FromGrpc(RetryTransient("", rpc_timeout_,
                                          [&](grpc::ClientContext* c) {
                                            return stub_->GetCacheEntry(c, request, &response);
                                          }),
                           "GetCacheEntry"));
  return response;
}

absl::StatusOr<int> GatewayClient::PutCacheEntry(const v1::PutCacheEntryRequest& request) {
  v1::PutCacheEntryResponse response;
  RETURN_IF_ERROR(FromGrpc(RetryTransient(request.lease_token(), rpc_timeout_,
                                          [&](grpc::ClientContext* c) {
                                            return stub_->PutCacheEntry(c, request, &response);
                                          }),
                           "PutCacheEntry"));
  return response.item_count();
}

absl::StatusOr<std::string> GatewayClient::ReadBlob(const std::string& lease_token,
                                                    const std::string& digest, bool verify) {
  return RetryStatusOr<std::string>(lease_token,
                                    [&] { return ReadBlobOnce(lease_token, digest, verify); });
}

absl::StatusOr<std::string> GatewayClient::ReadBlobOnce(const std::string& lease_token,
                                                        const std::string& digest, bool verify) {
  v1::ReadBlobRequest request;
  request.set_digest(digest);
  request.set_lease_token(lease_token);
  auto context = NewContext(rpc_timeout_ * 4);
  auto reader = stub_->ReadBlob(context.get(), request);
  std::string bytes;
  v1::ReadBlobResponse chunk;
  while (reader->Read(&chunk)) {
    if (chunk.offset() != static_cast<int64_t>(bytes.size())) {
      return absl::DataLossError(absl::StrCat("ReadBlob ", digest, ": chunk at offset ",
                                              chunk.offset(), ", expected ", bytes.size()));
    }
    bytes += chunk.data();
  }
  RETURN_IF_ERROR(FromGrpc(reader->Finish(), absl::StrCat("ReadBlob ", digest)));
  if (verify && Sha256Hex(bytes) != digest) {
    return absl::DataLossError(absl::StrCat("ReadBlob ", digest, ": content digest mismatch"));
  }
  return bytes;
}

absl::Status GatewayClient::ReadBlobToFile(const std::string& lease_token,
                                           const std::string& digest, int64_t size_bytes,
                                           const std::string& path) {
  return RetryStatusOr<bool>(
             lease_token,
             [&]() -> absl::StatusOr<bool> {
               RETURN_IF_ERROR(ReadBlobToFileOnce(lease_token, digest, size_bytes, path));
               return true;
             })
      .status();
}

absl::Status GatewayClient::ReadBlobToFileOnce(const std::string& lease_token,
                                               const std::string& digest, int64_t size_bytes,
                                               const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  const std::string temp = absl::StrCat(path, ".part-", std::random_device()());
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) return absl::InternalError(absl::StrCat("cannot create ", temp));
    v1::ReadBlobRequest request;
    request.set_digest(digest);
    request.set_lease_token(lease_token);
    // Large checkpoint files: the deadline grows with the size.
    auto context = NewContext(TransferTimeout(rpc_timeout_, size_bytes));
    auto reader = stub_->ReadBlob(context.get(), request);
    Sha256 sha;
    int64_t written = 0;
    v1::ReadBlobResponse chunk;
    while (reader->Read(&chunk)) {
      if (chunk.offset() != written) {
        reader->Finish();
        fs::remove(temp, ec);
        return absl::DataLossError(absl::StrCat("ReadBlob ", digest, ": chunk at offset ",
                                                chunk.offset(), ", expected ", written));
      }
      sha.Update(chunk.data());
      out.write(chunk.data().data(), static_cast<std::streamsize>(chunk.data().size()));
      written += static_cast<int64_t>(chunk.data().size());
    }
    absl::Status status = FromGrpc(reader->Finish(), absl::StrCat("ReadBlob ", digest));
    out.flush();
    if (status.ok() && !out) status = absl::InternalError(absl::StrCat("cannot write ", temp));
    if (status.ok() && sha.HexDigest() != digest) {
      status = absl::DataLossError(absl::StrCat("ReadBlob ", digest, ": content digest mismatch"));
    }
    if (!status.ok()) {
      out.close();
      fs::remove(temp, ec);
      return status;
    }
  }
  // The blob store is the source of truth, so a rename without fsync is enough for a cache.
  fs::rename(temp, path, ec);
  if (ec) {
    fs::remove(temp, ec);
    return absl::InternalError(absl::StrCat("cannot rename ", temp, " to ", path));
  }
  return absl::OkStatus();
}

absl::StatusOr<BlobRef> GatewayClient::WriteBlobChunks(const std::string& lease_token,
                                                       const std::string& expected_digest,
                                                       int64_t size, std::istream& in) {
  auto context = NewContext(TransferTimeout(rpc_timeout_, size));
  v1::WriteBlobResponse response;
  auto writer = stub_->WriteBlob(context.get(), &response);
  v1::WriteBlobRequest header;
  header.mutable_header()->set_lease_token(lease_token);
  header.mutable_header()->set_sha256(expected_digest);
  header.mutable_header()->set_size_bytes(size);
  bool ok = writer->Write(header);
  std::string buffer(kChunkBytes, '\0');
  while (ok && in) {
    in.read(buffer.data(), kChunkBytes);
    const std::streamsize n = in.gcount();
    if (n <= 0) break;
    v1::WriteBlobRequest chunk;
    chunk.set_chunk(buffer.data(), static_cast<size_t>(n));
    ok = writer->Write(chunk);
  }
  writer->WritesDone();
  RETURN_IF_ERROR(FromGrpc(writer->Finish(), "WriteBlob"));
  if (response.digest() != expected_digest) {
    return absl::DataLossError(absl::StrCat("WriteBlob: server stored ", response.digest(),
                                            ", expected ", expected_digest));
  }
  return BlobRef{response.digest(), response.size_bytes()};
}

absl::StatusOr<BlobRef> GatewayClient::WriteBlob(const std::string& lease_token,
                                                 const std::string& bytes) {
  const std::string digest = Sha256Hex(bytes);
  return RetryStatusOr<BlobRef>(lease_token, [&] {
    std::istringstream in(bytes);
    return WriteBlobChunks(lease_token, digest, static_cast<int64_t>(bytes.size()), in);
  });
}

absl::StatusOr<BlobRef> GatewayClient::WriteBlobFromFile(const std::string& lease_token,
                                                         const std::string& path) {
  ASSIGN_OR_RETURN(std::string digest, Sha256File(path));
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return absl::NotFoundError(absl::StrCat("cannot stat ", path));
  return RetryStatusOr<BlobRef>(lease_token, [&]() -> absl::StatusOr<BlobRef> {
    std::ifstream in(path, std::ios::binary);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
    return WriteBlobChunks(lease_token, digest, static_cast<int64_t>(size), in);
  });
}

}  // namespace dreambooth::worker
