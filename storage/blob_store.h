// Content-addressed blob store on the local filesystem: root/blobs/sha256/ab/cdef... (the file
// name is the hex SHA-256 of the content).
//
// Writes go to root/tmp, are fsynced, renamed into place and the directory is fsynced, so a crash
// at any instant leaves either no blob or the complete one; temp files of dead writers are
// removed by Open. Thread-safe: concurrent writers of the same content are fine (the first rename
// wins and the content is identical).
#ifndef DREAMBOOTH_STORAGE_BLOB_STORE_H_
#define DREAMBOOTH_STORAGE_BLOB_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/crypto.h"

namespace dreambooth::storage {

struct BlobInfo {
  std::string digest;  // hex SHA-256
  int64_t size_bytes = 0;
  // True when the blob already existed (deduplicated) at Finish.
  bool existed = false;
};

class BlobStore {
 public:
  // Streams one blob into the store. Not thread-safe. Destroying it before Finish (or after a
  // failed Finish) removes the temp file and stores nothing.
  class Writer {
   public:
    ~Writer();
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;

    absl::Status Append(std::string_view data);
    // Bytes appended so far.
    int64_t size() const { return size_; }
    // Makes the blob visible under its digest. When expected_digest is non-empty and differs
    // from the content's digest: INVALID_ARGUMENT and nothing is stored.
    absl::StatusOr<BlobInfo> Finish(std::string_view expected_digest = "");

   private:
    friend class BlobStore;
    Writer(BlobStore* store, std::string temp_path, int fd);
    void Abort();

    BlobStore* store_;
    std::string temp_path_;
    int fd_;
    int64_t size_ = 0;
    Sha256 hasher_;
  };

  // Opens (creating) the store under `root` and deletes leftover temp files.
  static absl::StatusOr<std::unique_ptr<BlobStore>> Open(const std::string& root);

  absl::StatusOr<std::unique_ptr<Writer>> NewWriter();
  // Stores `data` in one call.
  absl::StatusOr<BlobInfo> Put(std::string_view data, std::string_view expected_digest = "");

  // True when the blob exists. `digest` must be IsSha256Hex (false otherwise).
  bool Contains(std::string_view digest) const;
  // Size of a stored blob; NOT_FOUND when absent, INVALID_ARGUMENT for a malformed digest.
  absl::StatusOr<int64_t> Size(std::string_view digest) const;
  // Reads up to `length` bytes from `offset` (shorter at the end). OUT_OF_RANGE when offset is
  // past the end.
  absl::StatusOr<std::string> Read(std::string_view digest, int64_t offset, int64_t length) const;
  // Reads the whole blob.
  absl::StatusOr<std::string> ReadAll(std::string_view digest) const;
  // Re-hashes a stored blob: DATA_LOSS when its content no longer matches its name.
  absl::Status Verify(std::string_view digest) const;

  // ---- Garbage collection (storage/blob_gc.h) ----

  struct StoredBlob {
    std::string digest;
    int64_t size_bytes = 0;
    // Last write or deduplicated write (a Finish that found the blob present refreshes it).
    int64_t modify_time_ms = 0;
  };
  // Calls `fn` for every stored blob, in no particular order.
  absl::Status ForEach(const std::function<void(const StoredBlob&)>& fn) const;
  // Deletes blob `digest` unless it was written or deduplicated at or after `cutoff_ms`; returns
  // the bytes freed (0 when kept or absent). Atomic with respect to Finish: a writer of the same
  // content either refreshes the blob first (so it is kept) or finds it gone and stores it anew.
  absl::StatusOr<int64_t> RemoveIfOlderThan(std::string_view digest, int64_t cutoff_ms);

  // Filesystem path of a blob (whether or not it exists).
  std::string PathFor(std::string_view digest) const;
  const std::string& root() const { return root_; }

 private:
  explicit BlobStore(std::string root) : root_(std::move(root)) {}
  std::string root_;
  // Orders a blob's appearance (Finish) against its removal (RemoveIfOlderThan).
  absl::Mutex presence_mu_;
};

}  // namespace dreambooth::storage

#endif  // DREAMBOOTH_STORAGE_BLOB_STORE_H_
