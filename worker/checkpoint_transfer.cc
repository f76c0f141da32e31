#include "worker/checkpoint_transfer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/train/file_util.h"

namespace dreambooth::worker {
namespace fs = std::filesystem;
namespace {

constexpr char kCompleteMarker[] = ".downloaded";

// True for a path component that a staging or temp file would use.
bool IsHidden(const fs::path& relative) {
  for (const fs::path& part : relative) {
    if (absl::StartsWith(part.string(), ".")) return true;
    if (absl::StrContains(part.string(), ".part-")) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<std::string> UploadCheckpoint(GatewayClient& client, const std::string& lease_token,
                                             const std::string& dir, int64_t step,
                                             v1::CheckpointKind kind) {
  std::error_code ec;
  std::vector<std::string> files;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    const fs::path relative = fs::relative(it->path(), dir);
    if (IsHidden(relative)) continue;
    files.push_back(relative.generic_string());
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list ", dir, ": ", ec.message()));
  if (files.empty())
    return absl::InternalError(absl::StrCat("checkpoint folder ", dir, " is empty"));
  std::sort(files.begin(), files.end());

  v1::CommitCheckpointRequest request;
  request.set_lease_token(lease_token);
  request.set_step(step);
  request.set_kind(kind);
  for (const std::string& file : files) {
    ASSIGN_OR_RETURN(BlobRef blob,
                     client.WriteBlobFromFile(lease_token, (fs::path(dir) / file).string()));
    v1::CheckpointFile* f = request.add_files();
    f->set_path(file);
    f->set_digest(blob.digest);
    f->set_size_bytes(blob.size_bytes);
  }
  return client.CommitCheckpoint(request);
}

absl::Status DownloadCheckpoint(GatewayClient& client, const std::string& lease_token,
                                const v1::Checkpoint& checkpoint, const std::string& dir) {
  const std::string marker = (fs::path(dir) / kCompleteMarker).string();
  absl::StatusOr<std::string> done = ReadFileToString(marker);
  if (done.ok() && *done == checkpoint.manifest_digest() && !checkpoint.manifest_digest().empty()) {
    return absl::OkStatus();
  }
  for (const v1::CheckpointFile& file : checkpoint.files()) {
    const fs::path relative(file.path());
    if (relative.is_absolute() || absl::StrContains(file.path(), "..")) {
      return absl::DataLossError(
          absl::StrCat("checkpoint ", checkpoint.id(), " has an unsafe file path: ", file.path()));
    }
    RETURN_IF_ERROR(client.ReadBlobToFile(lease_token, file.digest(), file.size_bytes(),
                                          (fs::path(dir) / relative).string()));
  }
  return WriteFileAtomic(marker, checkpoint.manifest_digest());
}

}  // namespace dreambooth::worker
