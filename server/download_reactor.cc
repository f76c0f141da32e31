// DownloadCheckpoint: the manifest, then the files' bytes in 1 MiB chunks from read_offset.
#include "absl/strings/str_cat.h"
#include "server/convert.h"
#include "server/reactors.h"

namespace dreambooth::server {
namespace {

constexpr int64_t kChunk = 1 << 20;

class DownloadReactor : public grpc::ServerWriteReactor<v1::DownloadCheckpointResponse> {
 public:
  DownloadReactor(Backend* backend, const v1::DownloadCheckpointRequest& request)
      : backend_(backend), offset_(request.read_offset()) {
    absl::Status status = CheckId("checkpoint_id", request.checkpoint_id());
    absl::StatusOr<storage::CheckpointRecord> ckpt =
        status.ok() ? backend_->jobs().GetCheckpoint(request.checkpoint_id())
                    : absl::StatusOr<storage::CheckpointRecord>(status);
    if (!ckpt.ok()) {
      Finish(ToGrpc(ckpt.status()));
      return;
    }
    ckpt_ = std::move(*ckpt);
    for (const auto& f : ckpt_.files) total_ += f.size_bytes;
    if (offset_ < 0 || offset_ > total_) {
      Finish(grpc::Status(grpc::StatusCode::OUT_OF_RANGE,
                          absl::StrCat("read_offset ", offset_, " is outside the checkpoint's ",
                                       total_, " bytes")));
      return;
    }
    *message_.mutable_checkpoint() = ToProto(ckpt_);
    message_.set_offset(offset_);
    StartWrite(&message_);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client stopped reading"));
      return;
    }
    if (offset_ >= total_) {
      Finish(grpc::Status::OK);
      return;
    }
    // Locate the file holding offset_.
    int64_t file_start = 0;
    for (const auto& f : ckpt_.files) {
      if (offset_ < file_start + f.size_bytes) {
        const int64_t in_file = offset_ - file_start;
        absl::StatusOr<std::string> data =
            backend_->blobs().Read(f.digest, in_file, std::min(kChunk, f.size_bytes - in_file));
        if (!data.ok() || data->empty()) {
          Finish(grpc::Status(
              grpc::StatusCode::DATA_LOSS,
              absl::StrCat("checkpoint file ", f.path, " (blob ", f.digest, ") is unreadable: ",
                           data.ok() ? "empty read" : data.status().ToString())));
          return;
        }
        message_.Clear();
        message_.set_offset(offset_);
        message_.set_path(f.path);
        message_.set_file_offset(in_file);
        offset_ += static_cast<int64_t>(data->size());
        message_.set_data(std::move(*data));
        StartWrite(&message_);
        return;
      }
      file_start += f.size_bytes;
    }
    Finish(grpc::Status::OK);
  }

  void OnDone() override { delete this; }

 private:
  Backend* const backend_;
  storage::CheckpointRecord ckpt_;
  int64_t total_ = 0;
  int64_t offset_;
  v1::DownloadCheckpointResponse message_;
};

}  // namespace

grpc::ServerWriteReactor<v1::DownloadCheckpointResponse>* NewDownloadReactor(
    Backend* backend, const v1::DownloadCheckpointRequest& request) {
  return new DownloadReactor(backend, request);
}

}  // namespace dreambooth::server
