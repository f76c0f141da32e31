// WorkerGateway's streaming blob calls: ReadBlob (server stream) and WriteBlob (client stream).
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "server/convert.h"
#include "server/worker_gateway_service.h"

namespace dreambooth::server {
namespace {

constexpr int64_t kChunk = 1 << 20;

class ReadBlobReactor : public grpc::ServerWriteReactor<v1::ReadBlobResponse> {
 public:
  ReadBlobReactor(Backend* backend, const v1::ReadBlobRequest& request)
      : backend_(backend), digest_(request.digest()), offset_(request.offset()) {
    absl::StatusOr<int64_t> size = backend_->blobs().Size(digest_);
    if (!size.ok()) {
      Finish(ToGrpc(size.status()));
      return;
    }
    size_ = *size;
    if (offset_ < 0 || offset_ > size_ || request.limit() < 0) {
      Finish(grpc::Status(grpc::StatusCode::OUT_OF_RANGE,
                          absl::StrCat("offset ", offset_, " / limit ", request.limit(),
                                       " are outside blob ", digest_, " of ", size_, " bytes")));
      return;
    }
    end_ = request.limit() == 0 ? size_ : std::min(size_, offset_ + request.limit());
    Next(/*first=*/true);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client stopped reading"));
      return;
    }
    Next(/*first=*/false);
  }

  void OnDone() override { delete this; }

 private:
  void Next(bool first) {
    if (offset_ >= end_ && !first) {
      Finish(grpc::Status::OK);
      return;
    }
    absl::StatusOr<std::string> data =
        backend_->blobs().Read(digest_, offset_, std::min(kChunk, end_ - offset_));
    if (!data.ok()) {
      Finish(ToGrpc(data.status()));
      return;
    }
    message_.set_offset(offset_);
    message_.set_size_bytes(size_);
    offset_ += static_cast<int64_t>(data->size());
    message_.set_data(std::move(*data));
    StartWrite(&message_);
  }

  Backend* const backend_;
  const std::string digest_;
  int64_t offset_;
  int64_t size_ = 0;
  int64_t end_ = 0;
  v1::ReadBlobResponse message_;
};

class WriteBlobReactor : public grpc::ServerReadReactor<v1::WriteBlobRequest> {
 public:
  WriteBlobReactor(Backend* backend, v1::WriteBlobResponse* response,
                   std::function<absl::Status(const std::string&)> check_lease)
      : backend_(backend), response_(response), check_lease_(std::move(check_lease)) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    absl::Status status = ok ? Handle() : Complete();
    if (!status.ok() || !ok) {
      Finish(ToGrpc(status));
      return;
    }
    StartRead(&request_);
  }

  void OnDone() override { delete this; }

 private:
  absl::Status Handle() {
    if (request_.has_header()) {
      if (writer_ != nullptr) return absl::InvalidArgumentError("header may only be sent once");
      header_ = request_.header();
      if (!header_.sha256().empty() && !IsSha256Hex(header_.sha256())) {
        return absl::InvalidArgumentError("header.sha256 must be 64 lower-case hex characters");
      }
      if (header_.size_bytes() < 0) {
        return absl::InvalidArgumentError("header.size_bytes must be >= 0");
      }
      absl::Status lease = check_lease_(header_.lease_token());
      if (!lease.ok()) return lease;
      absl::StatusOr<std::unique_ptr<storage::BlobStore::Writer>> writer =
          backend_->blobs().NewWriter();
      if (!writer.ok()) return writer.status();
      writer_ = std::move(*writer);
      return absl::OkStatus();
    }
    if (writer_ == nullptr) {
      return absl::InvalidArgumentError("the first WriteBlobRequest must be a header");
    }
    if (static_cast<int64_t>(request_.chunk().size()) > kChunk) {
      return absl::InvalidArgumentError(absl::StrCat("chunk of ", request_.chunk().size(),
                                                     " bytes exceeds the 1 MiB chunk limit"));
    }
    return writer_->Append(request_.chunk());
  }

  absl::Status Complete() {
    if (writer_ == nullptr) return absl::InvalidArgumentError("empty WriteBlob stream");
    if (header_.size_bytes() != 0 && header_.size_bytes() != writer_->size()) {
      return absl::InvalidArgumentError(absl::StrCat("header.size_bytes is ", header_.size_bytes(),
                                                     " but ", writer_->size(), " bytes were sent"));
    }
    absl::StatusOr<storage::BlobInfo> info = writer_->Finish(header_.sha256());
    if (!info.ok()) return info.status();
    response_->set_digest(info->digest);
    response_->set_size_bytes(info->size_bytes);
    return absl::OkStatus();
  }

  Backend* const backend_;
  v1::WriteBlobResponse* const response_;
  const std::function<absl::Status(const std::string&)> check_lease_;
  v1::WriteBlobRequest request_;
  v1::WriteBlobHeader header_;
  std::unique_ptr<storage::BlobStore::Writer> writer_;
};

}  // namespace

grpc::ServerWriteReactor<v1::ReadBlobResponse>* WorkerGatewayService::ReadBlob(
    grpc::CallbackServerContext*, const v1::ReadBlobRequest* request) {
  return new ReadBlobReactor(backend_, *request);
}

grpc::ServerReadReactor<v1::WriteBlobRequest>* WorkerGatewayService::WriteBlob(
    grpc::CallbackServerContext*, v1::WriteBlobResponse* response) {
  return new WriteBlobReactor(backend_, response,
                              [this](const std::string& token) { return CheckAnyLease(token); });
}

}  // namespace dreambooth::server
