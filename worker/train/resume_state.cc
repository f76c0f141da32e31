#include "worker/train/resume_state.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "worker/train/file_util.h"

namespace dreambooth::train {
namespace fs = std::filesystem;
namespace {

constexpr int kFormatVersion = 1;
constexpr char kStatePrefix[] = "step-";
constexpr char kStateJson[] = "trainer_state.json";

std::string In(const std::string& dir, const std::string& name) {
  return (fs::path(dir) / name).string();
}

absl::StatusOr<diffusion::TensorMap> ReadOptional(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return diffusion::TensorMap{};
  return diffusion::ReadSafetensors(path);
}

absl::Status DataLoss(const std::string& dir, const std::string& what) {
  return absl::DataLossError(absl::StrCat("resume state ", dir, ": ", what));
}

}  // namespace

std::vector<std::pair<int64_t, std::string>> ListStepFolders(const std::string& root,
                                                             const std::string& prefix) {
  std::vector<std::pair<int64_t, std::string>> out;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return out;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    if (!entry.is_directory()) continue;
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0 || name.size() == prefix.size()) continue;
    const std::string digits = name.substr(prefix.size());
    if (!std::all_of(digits.begin(), digits.end(),
                     [](unsigned char c) { return std::isdigit(c) != 0; })) {
      continue;
    }
    out.emplace_back(std::stoll(digits), entry.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::Status PruneStepFolders(const std::string& root, const std::string& prefix, int keep) {
  if (keep <= 0) return absl::OkStatus();
  auto folders = ListStepFolders(root, prefix);
  for (size_t i = 0; i + keep < folders.size(); ++i) {
    std::error_code ec;
    fs::remove_all(folders[i].second, ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat("cannot delete old folder ", folders[i].second, ": ", ec.message()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> SaveResumeState(const std::string& root, const ResumeState& s,
                                            int keep_last) {
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", root, ": ", ec.message()));
  const std::string final_dir = In(root, absl::StrFormat("%s%08d", kStatePrefix, s.step));
  const std::string staging = StagingPathFor(final_dir);
  fs::create_directories(staging, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", staging, ": ", ec.message()));
  auto fail = [&](absl::Status st) {
    fs::remove_all(staging, ec);
    return st;
  };
  nlohmann::json j = {{"format_version", kFormatVersion},
                      {"step", s.step},
                      {"fingerprint", s.fingerprint},
                      {"ema_updates", s.ema_updates},
                      {"loss_scale", s.loss_scale},
                      {"loss_scale_growth_tracker", s.loss_scale_growth_tracker},
                      {"has_text_encoder", !s.text_encoder.empty()},
                      {"has_ema", !s.ema_unet.empty()}};
  if (absl::Status st = WriteFileAtomic(In(staging, kStateJson), j.dump(2) + "\n"); !st.ok()) {
    return fail(st);
  }
  const std::vector<std::pair<std::string, const diffusion::TensorMap*>> files = {
      {"optimizer.safetensors", &s.optimizer},
      {"unet.safetensors", &s.unet},
      {"text_encoder.safetensors", &s.text_encoder},
      {"ema_unet.safetensors", &s.ema_unet}};
  for (const auto& [name, tensors] : files) {
    if (tensors->empty()) continue;
    if (absl::Status st = diffusion::WriteSafetensors(In(staging, name), *tensors); !st.ok()) {
      return fail(st);
    }
  }
  diffusion::TensorMap rng = {{"generator_state", s.generator_state.to(at::kCPU).contiguous()}};
  if (absl::Status st = diffusion::WriteSafetensors(In(staging, "rng.safetensors"), rng);
      !st.ok()) {
    return fail(st);
  }
  if (absl::Status st = CommitFolder(staging, final_dir); !st.ok()) return fail(st);
  RETURN_IF_ERROR(PruneStepFolders(root, kStatePrefix, keep_last));
  return final_dir;
}

absl::StatusOr<ResumeState> LoadResumeState(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat("resume state not found: ", dir));
  }
  absl::StatusOr<std::string> text = ReadFileToString(In(dir, kStateJson));
  if (!text.ok()) return DataLoss(dir, absl::StrCat("missing ", kStateJson));
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return DataLoss(dir, "trainer_state.json is not JSON");
  if (j.value("format_version", 0) != kFormatVersion) {
    return DataLoss(dir, absl::StrCat("unsupported format_version ", j.value("format_version", 0)));
  }
  ResumeState s;
  try {
    s.step = j.at("step").get<int64_t>();
    s.fingerprint = j.at("fingerprint");
    s.ema_updates = j.at("ema_updates").get<int64_t>();
    s.loss_scale = j.at("loss_scale").get<double>();
    s.loss_scale_growth_tracker = j.at("loss_scale_growth_tracker").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    return DataLoss(dir, absl::StrCat("trainer_state.json: ", e.what()));
  }
  ASSIGN_OR_RETURN(diffusion::TensorMap rng,
                   diffusion::ReadSafetensors(In(dir, "rng.safetensors")));
  if (!rng.count("generator_state")) return DataLoss(dir, "rng.safetensors lacks generator_state");
  s.generator_state = rng.at("generator_state");
  ASSIGN_OR_RETURN(s.optimizer, ReadOptional(In(dir, "optimizer.safetensors")));
  ASSIGN_OR_RETURN(s.unet, diffusion::ReadSafetensors(In(dir, "unet.safetensors")));
  ASSIGN_OR_RETURN(s.text_encoder, ReadOptional(In(dir, "text_encoder.safetensors")));
  ASSIGN_OR_RETURN(s.ema_unet, ReadOptional(In(dir, "ema_unet.safetensors")));
  if (j.value("has_text_encoder", false) && s.text_encoder.empty()) {
    return DataLoss(dir, "text_encoder.safetensors is missing");
  }
  if (j.value("has_ema", false) && s.ema_unet.empty()) {
    return DataLoss(dir, "ema_unet.safetensors is missing");
  }
  return s;
}

absl::StatusOr<std::string> LatestResumeState(const std::string& root) {
  auto folders = ListStepFolders(root, kStatePrefix);
  for (auto it = folders.rbegin(); it != folders.rend(); ++it) {
    std::error_code ec;
    if (fs::is_regular_file(In(it->second, kStateJson), ec)) return it->second;
  }
  return absl::NotFoundError(absl::StrCat("no resume state under ", root));
}

}  // namespace dreambooth::train
