#include "worker/train/checkpoint_writer.h"

#include <ATen/core/grad_mode.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/image/image.h"
#include "common/status_macros.h"
#include "worker/diffusion/pipelines/pipeline.h"
#include "worker/train/file_util.h"
#include "worker/train/resume_state.h"

namespace dreambooth::train {
namespace fs = std::filesystem;

absl::StatusOr<std::vector<NamedImage>> RenderValidationImages(diffusion::StableDiffusion& model,
                                                               const TrainOptions& options) {
  std::vector<NamedImage> out;
  if (options.validation_prompts.empty()) return out;
  const bool unet_training = model.unet->is_training();
  const bool text_training = model.text_encoder->is_training();
  model.unet->eval();
  model.text_encoder->eval();
  at::NoGradGuard no_grad;
  absl::Status status;
  for (size_t i = 0; i < options.validation_prompts.size() && status.ok(); ++i) {
    diffusion::Text2ImageOptions t2i;
    t2i.prompts = {options.validation_prompts[i]};
    t2i.negative_prompts = {options.validation_sampler.negative_prompt};
    t2i.steps = options.validation_sampler.num_inference_steps;
    t2i.guidance = options.validation_sampler.guidance_scale;
    t2i.scheduler = options.validation_sampler.scheduler;
    t2i.eta = options.validation_sampler.eta;
    t2i.seed = options.seed;
    t2i.width = options.resolution;
    t2i.height = options.resolution;
    t2i.num_images_per_prompt = options.num_validation_images;
    absl::StatusOr<diffusion::Text2ImageResult> result = diffusion::Text2Image(model, t2i);
    if (!result.ok()) {
      status = absl::Status(result.status().code(),
                            absl::StrCat("validation images: ", result.status().message()));
      break;
    }
    for (int64_t k = 0; k < result->images.size(0); ++k) {
      out.emplace_back(absl::StrFormat("prompt-%02d-%02d.png", i, k), result->images[k]);
    }
  }
  model.unet->train(unet_training);
  model.text_encoder->train(text_training);
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::vector<std::string>> WritePngs(const std::string& dir,
                                                   const std::vector<NamedImage>& images) {
  std::vector<std::string> paths;
  if (images.empty()) return paths;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  for (const auto& [name, pixels] : images) {
    at::Tensor t = pixels.to(at::kCPU).contiguous();
    image::Image img;
    img.height = static_cast<int>(t.size(0));
    img.width = static_cast<int>(t.size(1));
    img.rgb.assign(t.data_ptr<uint8_t>(), t.data_ptr<uint8_t>() + t.numel());
    ASSIGN_OR_RETURN(std::string png, image::EncodePng(img));
    const std::string path = (fs::path(dir) / name).string();
    RETURN_IF_ERROR(WriteFileAtomic(path, png));
    paths.push_back(path);
  }
  return paths;
}

absl::Status WriteModelCard(const std::string& dir, const ModelProvenance& provenance) {
  if (provenance.model_card.empty()) return absl::OkStatus();
  return WriteFileAtomic((fs::path(dir) / "README.md").string(), provenance.model_card);
}

absl::StatusOr<std::string> WriteSampleableCheckpoint(diffusion::StableDiffusion& model,
                                                      const std::string& root, int64_t step,
                                                      const std::vector<NamedImage>& images,
                                                      int keep,
                                                      std::vector<std::string>* image_paths,
                                                      const ModelProvenance& provenance) {
  const std::string final_dir = (fs::path(root) / absl::StrCat("checkpoint-", step)).string();
  const std::string staging = StagingPathFor(final_dir);
  std::error_code ec;
  fs::create_directories(staging, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", staging, ": ", ec.message()));
  auto fail = [&](absl::Status st) {
    fs::remove_all(staging, ec);
    return st;
  };
  diffusion::SaveOptions save;
  save.dtype = at::kHalf;
  save.metadata = provenance.metadata;
  if (absl::Status st = diffusion::SaveDiffusersFolder(model, staging, save); !st.ok()) {
    return fail(st);
  }
  if (absl::Status st = WriteModelCard(staging, provenance); !st.ok()) return fail(st);
  absl::StatusOr<std::vector<std::string>> written =
      WritePngs((fs::path(staging) / "validation").string(), images);
  if (!written.ok()) return fail(written.status());
  const nlohmann::json info = {{"step", step}, {"base_model", model.source}};
  if (absl::Status st =
          WriteFileAtomic((fs::path(staging) / "training_step.json").string(), info.dump(2) + "\n");
      !st.ok()) {
    return fail(st);
  }
  if (absl::Status st = CommitFolder(staging, final_dir); !st.ok()) return fail(st);
  if (image_paths) {
    image_paths->clear();
    for (const auto& [name, pixels] : images) {
      image_paths->push_back((fs::path(final_dir) / "validation" / name).string());
    }
  }
  RETURN_IF_ERROR(PruneStepFolders(root, "checkpoint-", keep));
  return final_dir;
}

absl::Status ExportDiffusersFolder(diffusion::StableDiffusion& model, const std::string& dir,
                                   const ModelProvenance& provenance) {
  const std::string staging = StagingPathFor(dir);
  std::error_code ec;
  fs::create_directories(fs::path(staging), ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", staging, ": ", ec.message()));
  diffusion::SaveOptions save;
  save.metadata = provenance.metadata;
  absl::Status st = diffusion::SaveDiffusersFolder(model, staging, save);
  if (st.ok()) st = WriteModelCard(staging, provenance);
  if (st.ok()) st = CommitFolder(staging, dir);
  if (!st.ok()) fs::remove_all(staging, ec);
  return st;
}

}  // namespace dreambooth::train
