#include "storage/blob_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/status_macros.h"

namespace dreambooth::storage {
namespace {

// Debian's Abseil is built without std::string_view support in StrCat.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

absl::Status ErrnoError(std::string_view what, const std::string& path) {
  const int err = errno;
  const std::string message = absl::StrCat(Sv(what), " ", path, ": ", std::strerror(err));
  if (err == ENOSPC || err == EDQUOT) return absl::ResourceExhaustedError(message);
  if (err == ENOENT) return absl::NotFoundError(message);
  return absl::UnavailableError(message);
}

absl::Status MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoError("mkdir", path);
  return absl::OkStatus();
}

absl::Status FsyncDir(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open dir", path);
  const int rc = fsync(fd);
  close(fd);
  if (rc != 0) return ErrnoError("fsync dir", path);
  return absl::OkStatus();
}

absl::Status CheckDigest(std::string_view digest) {
  if (!IsSha256Hex(digest)) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed digest '", Sv(digest.substr(0, 80)),
                     "': expected 64 lower-case hex characters (SHA-256)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<BlobStore>> BlobStore::Open(const std::string& root) {
  RETURN_IF_ERROR(MakeDir(root));
  RETURN_IF_ERROR(MakeDir(root + "/blobs"));
  RETURN_IF_ERROR(MakeDir(root + "/blobs/sha256"));
  RETURN_IF_ERROR(MakeDir(root + "/tmp"));
  // Temp files belong to writers of a previous process; none can be live now.
  if (DIR* dir = opendir((root + "/tmp").c_str())) {
    while (dirent* entry = readdir(dir)) {
      if (std::strcmp(entry->d_name, ".") == 0 || std::strcmp(entry->d_name, "..") == 0) continue;
      unlink((root + "/tmp/" + entry->d_name).c_str());
    }
    closedir(dir);
  }
  return std::unique_ptr<BlobStore>(new BlobStore(root));
}

std::string BlobStore::PathFor(std::string_view digest) const {
  return absl::StrCat(root_, "/blobs/sha256/", Sv(digest.substr(0, 2)), "/", Sv(digest.substr(2)));
}

absl::StatusOr<std::unique_ptr<BlobStore::Writer>> BlobStore::NewWriter() {
  const std::string path = absl::StrCat(root_, "/tmp/", RandomHex(12), ".part");
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("create", path);
  return std::unique_ptr<Writer>(new Writer(this, path, fd));
}

BlobStore::Writer::Writer(BlobStore* store, std::string temp_path, int fd)
    : store_(store), temp_path_(std::move(temp_path)), fd_(fd) {}

BlobStore::Writer::~Writer() { Abort(); }

void BlobStore::Writer::Abort() {
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
  if (!temp_path_.empty()) {
    unlink(temp_path_.c_str());
    temp_path_.clear();
  }
}

absl::Status BlobStore::Writer::Append(std::string_view data) {
  if (fd_ < 0) return absl::FailedPreconditionError("blob writer already finished");
  hasher_.Update(data);
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = write(fd_, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status s = ErrnoError("write", temp_path_);
      Abort();
      return s;
    }
    done += static_cast<size_t>(n);
  }
  size_ += static_cast<int64_t>(data.size());
  return absl::OkStatus();
}

absl::StatusOr<BlobInfo> BlobStore::Writer::Finish(std::string_view expected_digest) {
  if (fd_ < 0) return absl::FailedPreconditionError("blob writer already finished");
  BlobInfo info;
  info.digest = hasher_.HexDigest();
  info.size_bytes = size_;
  if (!expected_digest.empty() && expected_digest != info.digest) {
    Abort();
    return absl::InvalidArgumentError(absl::StrCat("content digest ", info.digest,
                                                   " does not match the expected digest ",
                                                   Sv(expected_digest.substr(0, 80))));
  }
  if (fsync(fd_) != 0) {
    absl::Status s = ErrnoError("fsync", temp_path_);
    Abort();
    return s;
  }
  close(fd_);
  fd_ = -1;
  const std::string final_path = store_->PathFor(info.digest);
  const std::string shard = absl::StrCat(store_->root_, "/blobs/sha256/", info.digest.substr(0, 2));
  {
    // Only the blob's appearance is ordered against removal; the directory fsync below runs
    // outside the lock so concurrent writers do not queue behind each other's fsyncs.
    absl::MutexLock presence(&store_->presence_mu_);
    // A deduplicated write refreshes the blob's time, so the garbage collector's grace period
    // covers the reference its writer is about to record.
    if (store_->Contains(info.digest) && utimensat(AT_FDCWD, final_path.c_str(), nullptr, 0) == 0) {
      info.existed = true;
      Abort();
      return info;
    }
    struct stat st;
    if (stat(shard.c_str(), &st) != 0) {
      RETURN_IF_ERROR(MakeDir(shard));
      RETURN_IF_ERROR(FsyncDir(store_->root_ + "/blobs/sha256"));
    }
    if (rename(temp_path_.c_str(), final_path.c_str()) != 0) {
      absl::Status s = ErrnoError("rename to", final_path);
      Abort();
      return s;
    }
  }
  temp_path_.clear();
  RETURN_IF_ERROR(FsyncDir(shard));
  return info;
}

absl::StatusOr<BlobInfo> BlobStore::Put(std::string_view data, std::string_view expected_digest) {
  ASSIGN_OR_RETURN(std::unique_ptr<Writer> writer, NewWriter());
  RETURN_IF_ERROR(writer->Append(data));
  return writer->Finish(expected_digest);
}

bool BlobStore::Contains(std::string_view digest) const {
  if (!IsSha256Hex(digest)) return false;
  struct stat st;
  return stat(PathFor(digest).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

absl::StatusOr<int64_t> BlobStore::Size(std::string_view digest) const {
  RETURN_IF_ERROR(CheckDigest(digest));
  struct stat st;
  if (stat(PathFor(digest).c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("blob ", Sv(digest), " not found"));
  }
  return static_cast<int64_t>(st.st_size);
}

absl::StatusOr<std::string> BlobStore::Read(std::string_view digest, int64_t offset,
                                            int64_t length) const {
  RETURN_IF_ERROR(CheckDigest(digest));
  const std::string path = PathFor(digest);
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT)
      return absl::NotFoundError(absl::StrCat("blob ", Sv(digest), " not found"));
    return ErrnoError("open", path);
  }
  struct stat st;
  fstat(fd, &st);
  if (offset < 0 || offset > st.st_size) {
    close(fd);
    return absl::OutOfRangeError(absl::StrCat("offset ", offset, " is outside blob ", Sv(digest),
                                              " of ", st.st_size, " bytes"));
  }
  const int64_t n = std::min<int64_t>(std::max<int64_t>(length, 0), st.st_size - offset);
  std::string out(static_cast<size_t>(n), '\0');
  int64_t done = 0;
  while (done < n) {
    const ssize_t got = pread(fd, out.data() + done, n - done, offset + done);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      absl::Status s = ErrnoError("read", path);
      close(fd);
      return s;
    }
    done += got;
  }
  close(fd);
  return out;
}

absl::Status BlobStore::ForEach(const std::function<void(const StoredBlob&)>& fn) const {
  const std::string top = root_ + "/blobs/sha256";
  DIR* shards = opendir(top.c_str());
  if (shards == nullptr) return ErrnoError("opendir", top);
  while (const dirent* shard = readdir(shards)) {
    const std::string prefix = shard->d_name;
    if (prefix.size() != 2) continue;
    const std::string dir = absl::StrCat(top, "/", prefix);
    DIR* files = opendir(dir.c_str());
    if (files == nullptr) continue;  // removed meanwhile, or not a folder
    while (const dirent* file = readdir(files)) {
      const std::string digest = prefix + file->d_name;
      if (!IsSha256Hex(digest)) continue;
      struct stat st;
      if (stat(PathFor(digest).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      fn({digest, static_cast<int64_t>(st.st_size),
          static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1'000'000});
    }
    closedir(files);
  }
  closedir(shards);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> BlobStore::RemoveIfOlderThan(std::string_view digest, int64_t cutoff_ms) {
  RETURN_IF_ERROR(CheckDigest(digest));
  const std::string path = PathFor(digest);
  absl::MutexLock presence(&presence_mu_);
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return 0;
  const int64_t mtime_ms =
      static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1'000'000;
  if (mtime_ms >= cutoff_ms) return 0;
  if (unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return 0;
    return ErrnoError("unlink", path);
  }
  return static_cast<int64_t>(st.st_size);
}

absl::StatusOr<std::string> BlobStore::ReadAll(std::string_view digest) const {
  ASSIGN_OR_RETURN(int64_t size, Size(digest));
  return Read(digest, 0, size);
}

absl::Status BlobStore::Verify(std::string_view digest) const {
  ASSIGN_OR_RETURN(int64_t size, Size(digest));
  Sha256 hasher;
  constexpr int64_t kChunk = 1 << 20;
  for (int64_t offset = 0; offset < size; offset += kChunk) {
    ASSIGN_OR_RETURN(std::string chunk, Read(digest, offset, kChunk));
    hasher.Update(chunk);
  }
  const std::string actual = hasher.HexDigest();
  if (actual != digest) {
    return absl::DataLossError(
        absl::StrCat("blob ", Sv(digest), " is corrupt: its content hashes to ", actual));
  }
  return absl::OkStatus();
}

}  // namespace dreambooth::storage
