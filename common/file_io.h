// Whole-file reads and crash-safe writes, one implementation for every layer: a write goes to a
// temporary file in the same folder, is fsynced and renamed over the target, then the folder is
// fsynced, so a crash at any instant leaves the old file or the new one. Thread-safe (no shared
// state); concurrent writers of one path must be serialized by the caller.
#ifndef DREAMBOOTH_COMMON_FILE_IO_H_
#define DREAMBOOTH_COMMON_FILE_IO_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dreambooth {

// The whole file. NOT_FOUND when it does not exist, PERMISSION_DENIED when it cannot be opened,
// DATA_LOSS on a read error; the message names the path.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// When a write reaches stable storage.
enum class Durability {
  kSynced,    // fsynced (file, then folder) before WriteFileAtomic returns
  kDeferred,  // renamed into place unsynced: readers still never see a partial file, but a crash
              // may lose it until SyncFileSystem; for writing many files and syncing once
};

// Writes the concatenation of `parts` to `path` atomically (see above). On error the temporary
// file is removed and `path` is untouched; INTERNAL names the failing step and the path.
absl::Status WriteFileAtomic(const std::string& path, const std::vector<std::string_view>& parts,
                             Durability durability = Durability::kSynced);
inline absl::Status WriteFileAtomic(const std::string& path, std::string_view bytes,
                                    Durability durability = Durability::kSynced) {
  return WriteFileAtomic(path, std::vector<std::string_view>{bytes}, durability);
}

// Flushes all written data of the file system that holds `path` (a file or folder) to stable
// storage (Linux syncfs), e.g. after many Durability::kDeferred writes. INTERNAL names the path.
absl::Status SyncFileSystem(const std::string& path);

}  // namespace dreambooth

#endif  // DREAMBOOTH_COMMON_FILE_IO_H_
