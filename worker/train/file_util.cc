#include "worker/train/file_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace dreambooth::train {
namespace fs = std::filesystem;
namespace {

absl::Status FsyncPath(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot open ", path, " to fsync"));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return absl::InternalError(absl::StrCat("fsync failed for ", path));
  return absl::OkStatus();
}

std::string ParentOf(const std::string& path) {
  fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

}  // namespace

std::string StagingPathFor(const std::string& final_path) {
  static std::atomic<uint64_t> counter{0};
  const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  return absl::StrCat(final_path, ".tmp-", ::getpid(), "-", now, "-", counter++);
}

absl::Status CommitFolder(const std::string& staging, const std::string& final_path) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(staging, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file()) {
      if (absl::Status st = FsyncPath(it->path().string(), false); !st.ok()) return st;
    } else if (it->is_directory()) {
      if (absl::Status st = FsyncPath(it->path().string(), true); !st.ok()) return st;
    }
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot walk ", staging, ": ", ec.message()));
  if (absl::Status st = FsyncPath(staging, true); !st.ok()) return st;
  std::string old;
  if (fs::exists(final_path)) {
    old = StagingPathFor(final_path) + ".old";
    fs::rename(final_path, old, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot move aside ", final_path));
  }
  fs::rename(staging, final_path, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("rename ", staging, " -> ", final_path, ": ", ec.message()));
  }
  if (absl::Status st = FsyncPath(ParentOf(final_path), true); !st.ok()) return st;
  if (!old.empty()) fs::remove_all(old, ec);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ListImageFiles(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat("image folder not found: ", dir));
  }
  std::vector<std::string> out;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_regular_file()) continue;
    std::string ext = entry.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (ext == ".png" || ext == ".jpg" || ext == ".jpeg") out.push_back(entry.path().string());
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list ", dir, ": ", ec.message()));
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace dreambooth::train
