// Small file helpers of worker/diffusion: whole-file reads and crash-safe (atomic) writes.
#ifndef DREAMBOOTH_WORKER_DIFFUSION_FILE_UTIL_H_
#define DREAMBOOTH_WORKER_DIFFUSION_FILE_UTIL_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace dreambooth::diffusion {

// A borrowed span of bytes.
struct ByteRange {
  const char* data;
  size_t size;
};

// Writes the concatenation of `ranges` to `path`: a temporary file in the same folder is written,
// fsynced and renamed over `path`, then the folder is fsynced. On error the temporary file is
// removed and `path` is untouched.
absl::Status WriteFileAtomically(const std::string& path, const std::vector<ByteRange>& ranges);
absl::Status WriteStringAtomically(const std::string& path, const std::string& contents);
// Writes `json` pretty-printed (2 spaces, trailing newline), atomically.
absl::Status WriteJsonFile(const std::string& path, const nlohmann::json& json);

// Reads the whole file. NOT_FOUND when it does not exist.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);
// Reads and parses a JSON file; INVALID_ARGUMENT naming the file on a syntax error.
absl::StatusOr<nlohmann::json> ReadJsonFile(const std::string& path);

bool FileExists(const std::string& path);
bool IsDirectory(const std::string& path);
// Creates `dir` and its parents when missing.
absl::Status MakeDirectories(const std::string& dir);

}  // namespace dreambooth::diffusion

#endif  // DREAMBOOTH_WORKER_DIFFUSION_FILE_UTIL_H_
