// `dbtool eval`: the toy-world evaluation (evaluation/model_eval.h): samples the prompt suite from
// --model (and the class prompt from --reference-model) or reads --images, and prints the scores
// (prompt fidelity, subject fidelity, recontextualization, class-prior drift, diversity).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/cli_flags.h"
#include "common/file_io.h"
#include "common/image/image.h"
#include "common/status_macros.h"
#include "evaluation/model_eval.h"
#include "tools/dbtool/command_registry.h"
#include "tools/dbtool/sample_args.h"
#include "worker/diffusion/io/builtin_models.h"
#include "world/grid.h"

namespace dreambooth::dbtool {
namespace {

struct EvalArgs {
  evaluation::ModelEvalOptions model;
  std::string images;
  std::string prompt;
  std::string json_out;
  std::string grid_out;
  int64_t threads = 0;
  int64_t seed = 0;
};

constexpr int kGridColumns = 8;

// The PNG/JPEG files of `dir`, sorted by name (none when dir is "").
absl::StatusOr<std::vector<image::Image>> ReadImages(const std::string& dir) {
  std::vector<image::Image> out;
  if (dir.empty()) return out;
  std::vector<std::string> paths;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string ext = e.path().extension().string();
    if (ext == ".png" || ext == ".jpg" || ext == ".jpeg") paths.push_back(e.path().string());
  }
  if (ec) return absl::NotFoundError(absl::StrCat("cannot list ", dir, ": ", ec.message()));
  std::sort(paths.begin(), paths.end());
  for (const std::string& path : paths) {
    ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
    ASSIGN_OR_RETURN(image::Image img, image::DecodeRgb(bytes, {}));
    out.push_back(std::move(img));
  }
  return out;
}

// A contact sheet: the instance images on the first row(s), then the scored images.
absl::Status WriteGrid(const std::string& path, const std::string& instance_dir,
                       const std::string& images_dir) {
  ASSIGN_OR_RETURN(std::vector<image::Image> instances, ReadImages(instance_dir));
  ASSIGN_OR_RETURN(std::vector<image::Image> images, ReadImages(images_dir));
  if (images.empty()) return absl::InvalidArgumentError("no images for the grid");
  std::vector<image::Image> tiles = instances;
  image::Image blank = images[0];
  std::fill(blank.rgb.begin(), blank.rgb.end(), 255);
  while (tiles.size() % kGridColumns != 0) tiles.push_back(blank);
  tiles.insert(tiles.end(), images.begin(), images.end());
  ASSIGN_OR_RETURN(image::Image grid, world::MakeGrid(tiles, kGridColumns));
  ASSIGN_OR_RETURN(std::string png, image::EncodePng(grid));
  return WriteFileAtomic(path, std::string_view(png));
}

int RunEval(EvalArgs& a) {
  if (a.model.model.empty() == a.images.empty()) {
    std::fprintf(stderr, "dbtool eval: give exactly one of --model and --images\n");
    return 2;
  }
  if (a.threads > 0) at::set_num_threads(static_cast<int>(a.threads));
  a.model.seed = static_cast<uint64_t>(a.seed);
  absl::StatusOr<evaluation::EvalReport> report =
      a.images.empty() ? evaluation::EvaluateModel(a.model)
                       : evaluation::EvaluateImages(a.images, a.prompt, a.model.instance_dir,
                                                    a.model.classifier_path);
  if (!report.ok()) {
    std::fprintf(stderr, "dbtool eval: %s\n", report.status().ToString().c_str());
    return 1;
  }
  std::printf("%s", evaluation::ReportTable(*report).c_str());
  if (!a.grid_out.empty()) {
    const std::string dir = a.images.empty() ? a.model.images_out : a.images;
    absl::Status st =
        dir.empty()
            ? absl::InvalidArgumentError("--grid needs --images, or --images-out with --model")
            : WriteGrid(a.grid_out, a.model.instance_dir, dir);
    if (!st.ok()) {
      std::fprintf(stderr, "dbtool eval: %s\n", st.ToString().c_str());
      return 1;
    }
    std::printf("grid (instance images, then the scored images): %s\n", a.grid_out.c_str());
  }
  if (!a.json_out.empty()) {
    const std::string json = evaluation::ReportJson(*report).dump(2) + "\n";
    absl::Status st = WriteFileAtomic(a.json_out, std::string_view(json));
    if (!st.ok()) {
      std::fprintf(stderr, "dbtool eval: %s\n", st.ToString().c_str());
      return 1;
    }
  }
  return 0;
}

Runner DeclareEval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  a->model.classifier_path = diffusion::ToyClassifierPath();
  cli::AddString(app, "--model", &a->model.model, "model to sample the suite from (e.g. toy)");
  cli::AddString(app, "--images", &a->images,
                 "score these images instead (prompts from <stem>.txt or --prompt)");
  cli::AddString(app, "--prompt", &a->prompt, "with --images: the prompt of every image");
  cli::AddString(app, "--reference-model", &a->model.reference_model,
                 "base model for the class-prior drift (e.g. toy)");
  cli::AddString(app, "--instance-dir", &a->model.instance_dir,
                 "the subject's instance images (feature similarity)");
  cli::AddString(app, "--classifier", &a->model.classifier_path, "attribute classifier weights");
  cli::AddString(app, "--identifier", &a->model.identifier, "the rare token of the subject");
  cli::AddInt(app, "--samples", &a->model.samples, "images per suite prompt");
  cli::AddInt(app, "--attribute-prompts", &a->model.attribute_prompts,
              "full-caption prompts (one image each) for prompt fidelity");
  cli::AddInt(app, "--steps", &a->model.steps, "denoising steps");
  cli::AddDouble(app, "--guidance", &a->model.guidance, "classifier-free guidance");
  cli::AddString(app, "--scheduler", &a->model.scheduler, "sampler (ddim, pndm, euler, ...)");
  cli::AddInt(app, "--seed", &a->seed, "seed of the samples");
  cli::AddString(app, "--images-out", &a->model.images_out,
                 "keep the generated images (PNG + .txt prompt) here");
  cli::AddString(app, "--json-out", &a->json_out, "write the report as JSON");
  cli::AddString(app, "--grid", &a->grid_out,
                 "write a PNG contact sheet: instance images, then the scored images");
  AddDeviceOption(app, &a->model.device);
  AddThreadsOption(app, &a->threads);
  return [a] { return RunEval(*a); };
}

}  // namespace

DB_REGISTER_COMMAND({"eval",
                     "score a toy-world model (or images) with the attribute classifier: prompt "
                     "fidelity, subject fidelity, recontextualization, class-prior drift, "
                     "diversity",
                     DeclareEval});

}  // namespace dreambooth::dbtool
