// DownloadCheckpoint: the manifest, then the files' bytes in 1 MiB chunks from read_offset; with
// format SINGLE_FILE one file, the checkpoint as one .safetensors (server/single_file_source.h).
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/reactor_bases.h"
#include "server/reactors.h"
#include "server/request_checks.h"
#include "server/single_file_source.h"
#include "storage/job_store.h"

namespace dreambooth::server {
namespace {

constexpr int64_t kChunk = 1 << 20;

class DownloadReactor : public PullWriteReactor<v1::DownloadCheckpointResponse> {
 public:
  DownloadReactor(ServiceCore* core, const absl::StatusOr<Caller>& caller,
                  const v1::DownloadCheckpointRequest& request)
      : core_(core), offset_(request.read_offset()) {
    if (request.format() != v1::CHECKPOINT_FORMAT_SINGLE_FILE) {
      Start(Open(caller, request.checkpoint_id(), request.format()));
      return;
    }
    // Composing a single file reads the weights once to hash them: off gRPC's threads.
    core_->decode_pool().Submit([this, caller, id = request.checkpoint_id()] {
      Start(Open(caller, id, v1::CHECKPOINT_FORMAT_SINGLE_FILE));
    });
  }

 private:
  absl::Status Open(const absl::StatusOr<Caller>& caller, const std::string& checkpoint_id,
                    v1::CheckpointFormat format) {
    RETURN_IF_ERROR(caller.status());
    RETURN_IF_ERROR(CheckId("checkpoint_id", checkpoint_id));
    if (!v1::CheckpointFormat_IsValid(format)) {
      return absl::InvalidArgumentError(
          absl::StrCat("format must be a known CheckpointFormat, got ", format));
    }
    ASSIGN_OR_RETURN(storage::CheckpointRecord ckpt,
                     core_->GetCheckpointFor(*caller, checkpoint_id));
    manifest_ = ToProto(ckpt);
    if (format == v1::CHECKPOINT_FORMAT_SINGLE_FILE) {
      ASSIGN_OR_RETURN(single_, SingleFileSource::Open(ckpt, &core_->blobs()));
      files_ = {single_->file()};
      manifest_.clear_files();
      v1::CheckpointFile* file = manifest_.add_files();
      file->set_path(single_->file().path);
      file->set_digest(single_->file().digest);
      file->set_size_bytes(single_->file().size_bytes);
      manifest_.set_total_bytes(single_->file().size_bytes);
      manifest_.set_manifest_digest(storage::JobStore::ManifestDigest(files_));
    } else {
      files_ = std::move(ckpt.files);
    }
    for (const auto& f : files_) total_ += f.size_bytes;
    if (offset_ < 0 || offset_ > total_) {
      return absl::OutOfRangeError(
          absl::StrCat("read_offset ", offset_, " is outside the checkpoint's ", total_, " bytes"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> ReadFile(const storage::CheckpointFileRecord& f, int64_t offset,
                                       int64_t length) {
    if (single_ != nullptr) return single_->Read(offset, length);
    return core_->blobs().Read(f.digest, offset, length);
  }

  absl::StatusOr<bool> Next(v1::DownloadCheckpointResponse* message) override {
    if (!manifest_sent_) {
      manifest_sent_ = true;
      *message->mutable_checkpoint() = manifest_;
      message->set_offset(offset_);
      return true;
    }
    // The file holding offset_.
    int64_t file_start = 0;
    for (const auto& f : files_) {
      if (offset_ < file_start + f.size_bytes) {
        const int64_t in_file = offset_ - file_start;
        absl::StatusOr<std::string> data =
            ReadFile(f, in_file, std::min(kChunk, f.size_bytes - in_file));
        if (!data.ok() && absl::IsDataLoss(data.status())) return data.status();
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
  v1::Checkpoint manifest_;
  // The files sent, in order: the checkpoint's, or the one single file.
  std::vector<storage::CheckpointFileRecord> files_;
  std::unique_ptr<SingleFileSource> single_;  // format SINGLE_FILE only
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
