#include "worker/worker_context.h"

#include <c10/core/Device.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "spec/builtin_models.h"
#include "worker/diffusion/io/builtin_models.h"

namespace dreambooth::worker {
namespace fs = std::filesystem;

std::string LoopWorkerId(const WorkerOptions& options, v1::TaskKind kind) {
  return absl::StrCat(options.worker_id, kind == v1::TASK_KIND_TRAIN ? "/train" : "/sample");
}

LogFields TaskLogFields(const WorkerOptions& options, const v1::Task& task) {
  return {{"job_id", task.job_id()},
          {"task_id", task.task_id()},
          {"worker_id", LoopWorkerId(options, task.kind())},
          {"attempt", task.attempt()}};
}

std::string RankDevice(const WorkerOptions& options, int rank) {
  const c10::Device first(options.device);
  if (!first.is_cuda()) return first.str();
  const int index = first.has_index() ? first.index() : 0;
  return c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(index + rank)).str();
}

std::vector<std::string> ListBaseModels(const std::string& model_root) {
  std::vector<std::string> names = {std::string(spec::kTinyModel)};
  if (diffusion::ToyModelAvailable()) names.emplace_back(spec::kToyModel);
  std::error_code ec;
  if (!model_root.empty()) {
    for (const auto& entry : fs::directory_iterator(model_root, ec)) {
      if (entry.is_directory(ec) && fs::is_regular_file(entry.path() / "model_index.json", ec)) {
        const std::string name = entry.path().filename().string();
        if (!spec::IsBuiltinModel(name)) names.push_back(name);
      }
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<std::string> ResolveBaseModel(const std::string& model_root,
                                             const std::string& name) {
  if (spec::IsBuiltinModel(name)) return name;
  if (name.empty() || name == "." || name == ".." ||
      name.find_first_of("/\\") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("base model name '", name, "' is not a folder name under --model-root"));
  }
  if (model_root.empty()) {
    return absl::NotFoundError(
        absl::StrCat("base model '", name, "' not found: this worker has no --model-root"));
  }
  const fs::path dir = fs::path(model_root) / name;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::NotFoundError(
        absl::StrCat("base model '", name, "' not found under --model-root ", model_root));
  }
  return dir.string();
}

bool IsRetryable(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kUnimplemented:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kAlreadyExists:
      return false;
    default:
      return true;
  }
}

}  // namespace dreambooth::worker
