#include "worker/train/lora_export.h"

#include <ATen/core/grad_mode.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/diffusion/torch_status.h"
#include "worker/train/file_util.h"

namespace dreambooth::train {
namespace fs = std::filesystem;

absl::StatusOr<LoraCheckpointFolders> WriteLoraCheckpoint(const diffusion::LoraAdapterSet& adapters,
                                                          const std::string& dir, int64_t step,
                                                          const std::vector<NamedImage>& images,
                                                          const diffusion::KohyaRunInfo& info,
                                                          const std::string& kohya_stem) {
  const std::string staging = StagingPathFor(dir);
  std::error_code ec;
  auto fail = [&](absl::Status st) {
    fs::remove_all(staging, ec);
    return st;
  };
  const fs::path diffusers = fs::path(staging) / "diffusers";
  const fs::path kohya = fs::path(staging) / "kohya";
  fs::create_directories(diffusers, ec);
  if (!ec) fs::create_directories(kohya, ec);
  if (ec)
    return fail(absl::InternalError(absl::StrCat("cannot create ", staging, ": ", ec.message())));
  if (absl::Status st = diffusion::WriteLoraFile(
          (diffusers / diffusion::kDiffusersLoraFileName).string(), adapters.weights(),
          diffusion::LoraFileFormat::kDiffusers, {{"format", "pt"}});
      !st.ok()) {
    return fail(st);
  }
  if (absl::Status st = diffusion::WriteLoraFile(
          (kohya / absl::StrCat(kohya_stem, ".safetensors")).string(), adapters.weights(),
          diffusion::LoraFileFormat::kKohya, diffusion::KohyaMetadata(info));
      !st.ok()) {
    return fail(st);
  }
  absl::StatusOr<std::vector<std::string>> written =
      WritePngs((diffusers / "validation").string(), images);
  if (!written.ok()) return fail(written.status());
  const nlohmann::json step_info = {{"step", step},
                                    {"base_model", info.base_model},
                                    {"lora_rank", adapters.rank()},
                                    {"lora_alpha", adapters.alpha()}};
  if (absl::Status st =
          WriteFileAtomic((diffusers / "training_step.json").string(), step_info.dump(2) + "\n");
      !st.ok()) {
    return fail(st);
  }
  if (absl::Status st = CommitFolder(staging, dir); !st.ok()) return fail(st);
  LoraCheckpointFolders out;
  out.diffusers_dir = (fs::path(dir) / "diffusers").string();
  out.kohya_dir = (fs::path(dir) / "kohya").string();
  for (const auto& [name, pixels] : images) {
    out.validation_images.push_back((fs::path(out.diffusers_dir) / "validation" / name).string());
  }
  return out;
}

absl::Status ExportMergedModel(diffusion::StableDiffusion& model,
                               const diffusion::LoraAdapterSet& adapters, const std::string& dir,
                               const ModelProvenance& provenance) {
  return GuardTorch("exporting the merged model", [&]() -> absl::Status {
    const diffusion::TensorMap unet = diffusion::ModuleStateDictOnHost(*model.unet);
    const diffusion::TensorMap text = diffusion::ModuleStateDictOnHost(*model.text_encoder);
    RETURN_IF_ERROR(adapters.MergeInto(1.0));
    const std::string staging = StagingPathFor(dir);
    std::error_code ec;
    fs::create_directories(staging, ec);
    diffusion::SaveOptions save;
    save.metadata = provenance.metadata;
    absl::Status st =
        ec ? absl::InternalError(absl::StrCat("cannot create ", staging, ": ", ec.message()))
           : diffusion::SaveDiffusersFolder(model, staging, save);
    if (st.ok()) {
      st = diffusion::SaveSingleFile(model, (fs::path(staging) / kMergedSingleFileName).string(),
                                     save);
    }
    if (st.ok()) st = WriteModelCard(staging, provenance);
    if (st.ok()) st = CommitFolder(staging, dir);
    if (!st.ok()) fs::remove_all(staging, ec);
    // Unmerged weights back, whatever happened.
    RETURN_IF_ERROR(diffusion::LoadStateDictStrict(*model.unet, unet, "unet"));
    RETURN_IF_ERROR(diffusion::LoadStateDictStrict(*model.text_encoder, text, "text_encoder"));
    return st;
  });
}

}  // namespace dreambooth::train
