#include "server/single_file_source.h"

#include <algorithm>
#include <map>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/crypto.h"
#include "common/status_macros.h"

namespace dreambooth::server {
namespace {

using storage::CheckpointKind;

constexpr char kMergedFile[] = "merged.safetensors";  // worker/train/lora_export.h
constexpr int64_t kHashChunk = 4 << 20;
constexpr size_t kMaxRememberedDigests = 1024;

// SHA-256 of composed files by their checkpoint's manifest digest (the composed bytes are a
// function of the files' paths and contents, which the manifest digest covers).
class ComposedDigests {
 public:
  std::optional<std::string> Find(const std::string& manifest_digest) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    auto it = digests_.find(manifest_digest);
    if (it == digests_.end()) return std::nullopt;
    return it->second;
  }
  void Put(const std::string& manifest_digest, std::string digest) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (digests_.size() >= kMaxRememberedDigests) digests_.clear();
    digests_[manifest_digest] = std::move(digest);
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, std::string> digests_ ABSL_GUARDED_BY(mu_);
};

ComposedDigests& Digests() {
  static auto* digests = new ComposedDigests();
  return *digests;
}

std::string SingleFileName(const storage::CheckpointRecord& checkpoint) {
  return absl::StrCat(checkpoint.job_id, "-step", checkpoint.step, ".safetensors");
}

std::string BaseName(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

const storage::CheckpointFileRecord* FindFile(const storage::CheckpointRecord& checkpoint,
                                              const std::string& path) {
  for (const auto& f : checkpoint.files) {
    if (f.path == path) return &f;
  }
  return nullptr;
}

absl::Status Unreadable(const std::string& path, const std::string& digest,
                        const absl::Status& why) {
  return absl::DataLossError(absl::StrCat("checkpoint file ", path, " (blob ", digest,
                                          ") is unreadable: ", why.message()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<SingleFileSource>> SingleFileSource::Open(
    const storage::CheckpointRecord& checkpoint, const storage::BlobStore* blobs) {
  std::unique_ptr<SingleFileSource> source(new SingleFileSource());
  source->blobs_ = blobs;
  const char* kind = storage::CheckpointKindName(checkpoint.kind);
  auto cannot = [&](const std::string& why) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint ", checkpoint.id, " (", kind, ") has no single-file form: ", why));
  };
  switch (checkpoint.kind) {
    case CheckpointKind::kLoraDiffusers:
    case CheckpointKind::kLoraKohya: {
      std::vector<const storage::CheckpointFileRecord*> adapters;
      for (const auto& f : checkpoint.files) {
        if (absl::EndsWith(f.path, ".safetensors")) adapters.push_back(&f);
      }
      if (adapters.size() != 1) {
        return cannot(absl::StrCat("it holds ", adapters.size(),
                                   " .safetensors files where one adapter file was expected"));
      }
      source->file_ = *adapters[0];
      source->file_.path = BaseName(adapters[0]->path);
      return source;
    }
    case CheckpointKind::kSampleable:
    case CheckpointKind::kFinal:
      break;
    default:
      return cannot(
          "only SAMPLEABLE, FINAL, LORA_DIFFUSERS and LORA_KOHYA checkpoints are sent as one "
          ".safetensors file");
  }
  if (const auto* merged = FindFile(checkpoint, kMergedFile); merged != nullptr) {
    source->file_ = *merged;
    source->file_.path = SingleFileName(checkpoint);
    return source;
  }

  std::vector<diffusion::FolderFile> files;
  std::map<std::string, std::string> digests;  // path -> blob
  for (const auto& f : checkpoint.files) {
    diffusion::FolderFile file;
    file.path = f.path;
    file.size = static_cast<uint64_t>(f.size_bytes);
    files.push_back(std::move(file));
    digests[f.path] = f.digest;
  }
  diffusion::ReadFileRange read = [blobs, digests = std::move(digests)](
                                      const std::string& path, uint64_t offset,
                                      uint64_t length) -> absl::StatusOr<std::string> {
    const std::string& digest = digests.at(path);  // Plan only reads the files it was given
    absl::StatusOr<std::string> data =
        blobs->Read(digest, static_cast<int64_t>(offset), static_cast<int64_t>(length));
    if (!data.ok()) return Unreadable(path, digest, data.status());
    return data;
  };
  absl::StatusOr<diffusion::SingleFileLayout> layout =
      diffusion::SingleFileLayout::Plan(files, std::move(read));
  if (!layout.ok()) {
    if (absl::IsFailedPrecondition(layout.status()) || absl::IsInvalidArgument(layout.status()) ||
        absl::IsUnimplemented(layout.status())) {
      return cannot(std::string(layout.status().message()));
    }
    return layout.status();
  }
  source->layout_ = std::move(*layout);
  source->file_.path = SingleFileName(checkpoint);
  source->file_.size_bytes = static_cast<int64_t>(source->layout_->size());
  if (std::optional<std::string> known = Digests().Find(checkpoint.manifest_digest)) {
    source->file_.digest = *known;
    return source;
  }
  Sha256 hasher;
  for (int64_t offset = 0; offset < source->file_.size_bytes; offset += kHashChunk) {
    ASSIGN_OR_RETURN(std::string bytes, source->Read(offset, kHashChunk));
    hasher.Update(bytes);
  }
  source->file_.digest = hasher.HexDigest();
  Digests().Put(checkpoint.manifest_digest, source->file_.digest);
  return source;
}

absl::StatusOr<std::string> SingleFileSource::Read(int64_t offset, int64_t length) const {
  if (layout_.has_value()) {
    return layout_->Read(static_cast<uint64_t>(offset), static_cast<uint64_t>(length));
  }
  absl::StatusOr<std::string> data = blobs_->Read(file_.digest, offset, length);
  if (!data.ok()) return Unreadable(file_.path, file_.digest, data.status());
  return data;
}

}  // namespace dreambooth::server
