// DownloadCheckpoint: the manifest, then the files' bytes in 1 MiB chunks from read_offset.
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/reactor_bases.h"
#include "server/reactors.h"
#include "server/request_checks.h"

namespace dreambooth::server {
namespace {

constexpr int64_t kChunk = 1 << 20;

class DownloadReactor : public PullWriteReactor<v1::DownloadCheckpointResponse> {
 public:
  DownloadReactor(ServiceCore* core, const absl::StatusOr<Caller>& caller,
                  const v1::DownloadCheckpointRequest& request)
      : core_(core), offset_(request.read_offset()) {
    Start(Open(caller, request.checkpoint_id()));
  }

 private:
  absl::Status Open(const absl::StatusOr<Caller>& caller, const std::string& checkpoint_id) {
    RETURN_IF_ERROR(caller.status());
    RETURN_IF_ERROR(CheckId("checkpoint_id", checkpoint_id));
    ASSIGN_OR_RETURN(ckpt_, core_->GetCheckpointFor(*caller, checkpoint_id));
    for (const auto& f : ckpt_.files) total_ += f.size_bytes;
    if (offset_ < 0 || offset_ > total_) {
      return absl::OutOfRangeError(
          absl::StrCat("read_offset ", offset_, " is outside the checkpoint's ", total_, " bytes"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<bool> Next(v1::DownloadCheckpointResponse* message) override {
    if (!manifest_sent_) {
      manifest_sent_ = true;
      *message->mutable_checkpoint() = ToProto(ckpt_);
      message->set_offset(offset_);
      return true;
    }
    // The file holding offset_.
    int64_t file_start = 0;
    for (const auto& f : ckpt_.files) {
      if (offset_ < file_start + f.size_bytes) {
        const int64_t in_file = offset_ - file_start;
        absl::StatusOr<std::string> data =
            core_->blobs().Read(f.digest, in_file, std::min(kChunk, f.size_bytes - in_file));
        if (!data.ok() || data->empty()) {
          return absl::DataLossError(absl::StrCat(
              "checkpoint file ", f.path, " (blob ", f.digest,
              ") is unreadable: ", data.ok() ? "empty read" : data.status().ToString()));
        }
        message->set_offset(offset_);
        message->set_path(f.path);
        message->set_file_offset(in_file);
        offset_ += static_cast<int64_t>(data->size());
        message->set_data(std::move(*data));
        return true;
      }
      file_start += f.size_bytes;
    }
    return false;
  }

  ServiceCore* const core_;
  storage::CheckpointRecord ckpt_;
  int64_t total_ = 0;
  int64_t offset_;
  bool manifest_sent_ = false;
};

}  // namespace

grpc::ServerWriteReactor<v1::DownloadCheckpointResponse>* NewDownloadReactor(
    ServiceCore* core, const absl::StatusOr<Caller>& caller,
    const v1::DownloadCheckpointRequest& request) {
  return new DownloadReactor(core, caller, request);
}

}  // namespace dreambooth::server
