// WorkerGateway's streaming blob calls: ReadBlob (server stream) and WriteBlob (client stream).
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/status_macros.h"
#include "server/reactor_bases.h"
#include "server/request_checks.h"
#include "server/worker_gateway_service.h"

namespace dreambooth::server {
namespace {

constexpr int64_t kChunk = 1 << 20;

class ReadBlobReactor : public PullWriteReactor<v1::ReadBlobResponse> {
 public:
  ReadBlobReactor(ServiceCore* core, const absl::Status& authenticated,
                  const v1::ReadBlobRequest& request)
      : core_(core), digest_(request.digest()), offset_(request.offset()) {
    Start(authenticated.ok() ? Open(request.lease_token(), request.limit()) : authenticated);
  }

 private:
  absl::Status Open(const std::string& lease_token, int64_t limit) {
    RETURN_IF_ERROR(CheckLeaseToken(lease_token));
    if (!IsSha256Hex(digest_)) {
      return absl::InvalidArgumentError("digest must be 64 lower-case hex characters");
    }
    RETURN_IF_ERROR(core_->CheckLeaseMayRead(lease_token, digest_));
    ASSIGN_OR_RETURN(size_, core_->blobs().Size(digest_));
    if (offset_ < 0 || offset_ > size_ || limit < 0) {
      return absl::OutOfRangeError(absl::StrCat("offset ", offset_, " / limit ", limit,
                                                " are outside blob ", digest_, " of ", size_,
                                                " bytes"));
    }
    end_ = limit == 0 ? size_ : std::min(size_, offset_ + limit);
    return absl::OkStatus();
  }

  // The first message goes out even for an empty range (it carries the blob's size).
  absl::StatusOr<bool> Next(v1::ReadBlobResponse* message) override {
    if (offset_ >= end_ && sent_any_) return false;
    sent_any_ = true;
    ASSIGN_OR_RETURN(std::string data,
                     core_->blobs().Read(digest_, offset_, std::min(kChunk, end_ - offset_)));
    message->set_offset(offset_);
    message->set_size_bytes(size_);
    offset_ += static_cast<int64_t>(data.size());
    message->set_data(std::move(data));
    return true;
  }

  ServiceCore* const core_;
  const std::string digest_;
  int64_t offset_;
  int64_t size_ = 0;
  int64_t end_ = 0;
  bool sent_any_ = false;
};

// Reads raw messages, so one that does not parse fails the call instead of ending the stream.
class WriteBlobReactor : public ReadLoopReactor<v1::WriteBlobRequest, grpc::ByteBuffer> {
 public:
  WriteBlobReactor(ServiceCore* core, v1::WriteBlobResponse* response)
      : core_(core), response_(response) {
    StartReading();
  }

 private:
  absl::Status OnMessage(const v1::WriteBlobRequest& request) override {
    if (request.has_header()) {
      if (writer_ != nullptr) return absl::InvalidArgumentError("header may only be sent once");
      header_ = request.header();
      if (!header_.sha256().empty() && !IsSha256Hex(header_.sha256())) {
        return absl::InvalidArgumentError("header.sha256 must be 64 lower-case hex characters");
      }
      if (header_.size_bytes() < 0) {
        return absl::InvalidArgumentError("header.size_bytes must be >= 0");
      }
      if (header_.size_bytes() > core_->options().max_blob_bytes) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "header.size_bytes ", header_.size_bytes(), " exceeds the server's limit of ",
            core_->options().max_blob_bytes, " bytes per blob (dreamboothd --max-blob-bytes)"));
      }
      RETURN_IF_ERROR(CheckLeaseToken(header_.lease_token()));
      RETURN_IF_ERROR(core_->CheckAnyLease(header_.lease_token()));
      ASSIGN_OR_RETURN(writer_, core_->blobs().NewWriter());
      return absl::OkStatus();
    }
    if (writer_ == nullptr) {
      return absl::InvalidArgumentError("the first WriteBlobRequest must be a header");
    }
    if (static_cast<int64_t>(request.chunk().size()) > kChunk) {
      return absl::InvalidArgumentError(absl::StrCat("chunk of ", request.chunk().size(),
                                                     " bytes exceeds the 1 MiB chunk limit"));
    }
    if (writer_->size() + static_cast<int64_t>(request.chunk().size()) >
        core_->options().max_blob_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("blob exceeds the server's limit of ", core_->options().max_blob_bytes,
                       " bytes per blob (dreamboothd --max-blob-bytes)"));
    }
    return writer_->Append(request.chunk());
  }

  absl::Status OnStreamEnd() override {
    if (writer_ == nullptr) return absl::InvalidArgumentError("empty WriteBlob stream");
    if (header_.size_bytes() != 0 && header_.size_bytes() != writer_->size()) {
      return absl::InvalidArgumentError(absl::StrCat("header.size_bytes is ", header_.size_bytes(),
                                                     " but ", writer_->size(), " bytes were sent"));
    }
    ASSIGN_OR_RETURN(storage::BlobInfo info, writer_->Finish(header_.sha256()));
    // Recorded after the blob is in place: a crash in between leaves an unrecorded blob, which
    // the worker writes again (its commit names it), never a record of a missing blob.
    RETURN_IF_ERROR(core_->RecordBlobWrite(header_.lease_token(), info.digest));
    response_->set_digest(info.digest);
    response_->set_size_bytes(info.size_bytes);
    return absl::OkStatus();
  }

  ServiceCore* const core_;
  v1::WriteBlobResponse* const response_;
  v1::WriteBlobHeader header_;
  std::unique_ptr<storage::BlobStore::Writer> writer_;
};

}  // namespace

grpc::ServerWriteReactor<v1::ReadBlobResponse>* WorkerGatewayService::ReadBlob(
    grpc::CallbackServerContext* context, const v1::ReadBlobRequest* request) {
  return new ReadBlobReactor(core_, Authenticate(context), *request);
}

grpc::ServerReadReactor<grpc::ByteBuffer>* WorkerGatewayService::WriteBlobRaw(
    grpc::CallbackServerContext* context, v1::WriteBlobResponse* response) {
  if (absl::Status s = Authenticate(context); !s.ok()) {
    return new RejectedReadReactor<grpc::ByteBuffer>(s);
  }
  return new WriteBlobReactor(core_, response);
}

}  // namespace dreambooth::server
