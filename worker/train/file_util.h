// Small filesystem helpers of the training engine: crash-safe commits of whole folders (files:
// common/file_io.h), and listing of image folders. All functions are thread-compatible (no shared
// state); concurrent writers of the same final path must be serialized by the caller.
#ifndef DREAMBOOTH_WORKER_TRAIN_FILE_UTIL_H_
#define DREAMBOOTH_WORKER_TRAIN_FILE_UTIL_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/file_io.h"

namespace dreambooth::train {

// Makes the folder `staging` (fully written by the caller) appear as `final_path` atomically:
// fsyncs every file and folder below `staging`, renames it to `final_path` and fsyncs the parent.
// An existing `final_path` is replaced (moved aside, then deleted after the rename).
absl::Status CommitFolder(const std::string& staging, const std::string& final_path);

// A fresh, unique staging folder name next to `final_path` (not created).
std::string StagingPathFor(const std::string& final_path);

// Regular files directly inside `dir` whose extension is .png, .jpg or .jpeg (any case), sorted
// by name. NOT_FOUND when `dir` does not exist; an empty vector when it holds no image.
absl::StatusOr<std::vector<std::string>> ListImageFiles(const std::string& dir);

}  // namespace dreambooth::train

#endif  // DREAMBOOTH_WORKER_TRAIN_FILE_UTIL_H_
