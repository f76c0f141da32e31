// What DownloadCheckpoint sends for format SINGLE_FILE (v1::CheckpointFormat): one .safetensors
// per checkpoint, composed on the fly from a diffusers folder's blobs (SingleFileLayout, no
// LibTorch, no stored copy), or a file the checkpoint already holds (a LoRA job's merged model,
// an adapter file).
#ifndef DREAMBOOTH_SERVER_SINGLE_FILE_SOURCE_H_
#define DREAMBOOTH_SERVER_SINGLE_FILE_SOURCE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "storage/blob_store.h"
#include "storage/records.h"
#include "worker/diffusion/io/single_file_layout.h"

namespace dreambooth::server {

// One checkpoint's single file. Immutable after Open; thread-safe. The blob store must outlive it.
class SingleFileSource {
 public:
  // The single file of `checkpoint`: for SAMPLEABLE and FINAL (a diffusers folder) the composed
  // LDM file, named "<job_id>-step<step>.safetensors" (its SHA-256 takes a pass over the
  // weights, remembered per checkpoint for later calls); a FINAL holding merged.safetensors (a
  // LoRA job's) sends that file under the same name; LORA_DIFFUSERS and LORA_KOHYA their adapter
  // .safetensors under its own name. FAILED_PRECONDITION naming the kind for other kinds, or
  // naming what is missing or malformed; DATA_LOSS when a blob is unreadable.
  static absl::StatusOr<std::unique_ptr<SingleFileSource>> Open(
      const storage::CheckpointRecord& checkpoint, const storage::BlobStore* blobs);

  // The file as the manifest lists it: path, size and SHA-256 digest.
  const storage::CheckpointFileRecord& file() const { return file_; }

  // Up to `length` bytes at `offset` (fewer at the end); DATA_LOSS when a blob is unreadable.
  absl::StatusOr<std::string> Read(int64_t offset, int64_t length) const;

 private:
  SingleFileSource() = default;

  const storage::BlobStore* blobs_ = nullptr;
  storage::CheckpointFileRecord file_;
  // Set when composed; otherwise file_.digest names the stored blob.
  std::optional<diffusion::SingleFileLayout> layout_;
};

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_SINGLE_FILE_SOURCE_H_
