// Small file helpers of worker/diffusion: JSON files and folder checks (whole-file reads and
// atomic writes are common/file_io.h).
#ifndef DREAMBOOTH_WORKER_DIFFUSION_IO_FILE_UTIL_H_
#define DREAMBOOTH_WORKER_DIFFUSION_IO_FILE_UTIL_H_

#include <nlohmann/json_fwd.hpp>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/file_io.h"

namespace dreambooth::diffusion {

// Writes `json` pretty-printed (2 spaces, trailing newline), atomically.
absl::Status WriteJsonFile(const std::string& path, const nlohmann::json& json);

// Reads and parses a JSON file; INVALID_ARGUMENT naming the file on a syntax error.
absl::StatusOr<nlohmann::json> ReadJsonFile(const std::string& path);

bool FileExists(const std::string& path);
bool IsDirectory(const std::string& path);
// Creates `dir` and its parents when missing.
absl::Status MakeDirectories(const std::string& dir);

}  // namespace dreambooth::diffusion

#endif  // DREAMBOOTH_WORKER_DIFFUSION_IO_FILE_UTIL_H_
