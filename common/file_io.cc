#include "common/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace dreambooth {
namespace {

absl::Status ErrnoError(const std::string& what, const std::string& path, int err) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", strerror(err)));
}

}  // namespace

absl::Status WriteFileAtomic(const std::string& path, const std::vector<std::string_view>& parts,
                             Durability durability) {
  std::filesystem::path target(path);
  std::filesystem::path dir = target.parent_path();
  if (dir.empty()) dir = ".";
  std::random_device device;
  const std::string temp =
      (dir / absl::StrCat(".", target.filename().string(), ".tmp.", ::getpid(), ".", device()))
          .string();
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("cannot create", temp, errno);
  auto fail = [&](const std::string& what, int err) {
    ::close(fd);
    ::unlink(temp.c_str());
    return ErrnoError(what, temp, err);
  };
  for (std::string_view range : parts) {
    size_t written = 0;
    while (written < range.size()) {
      ssize_t n = ::write(fd, range.data() + written, range.size() - written);
      if (n < 0) {
        if (errno == EINTR) continue;
        return fail("cannot write", errno);
      }
      written += static_cast<size_t>(n);
    }
  }
  const bool sync = durability == Durability::kSynced;
  if (sync && ::fsync(fd) != 0) return fail("cannot fsync", errno);
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    return ErrnoError("cannot close", temp, err);
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    return ErrnoError("cannot rename into", path, err);
  }
  if (!sync) return absl::OkStatus();
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return absl::OkStatus();
}

absl::Status SyncFileSystem(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open", path, errno);
  const int result = ::syncfs(fd);
  const int err = errno;
  ::close(fd);
  if (result != 0) return ErrnoError("cannot sync the file system of", path, err);
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec))
      return absl::NotFoundError(absl::StrCat("file not found: ", path));
    return absl::PermissionDeniedError(absl::StrCat("cannot read ", path));
  }
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("error while reading ", path));
  return out.str();
}

}  // namespace dreambooth
