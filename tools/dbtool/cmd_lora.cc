// `dbtool lora-convert IN OUT --model M --to kohya|diffusers [--alpha A]`: rewrites a LoRA file
// (diffusers, peft or kohya layout) in the layout another tool loads.
// `dbtool lora-merge IN --model M --out PATH [--scale S]`: folds a LoRA file into the model and
// writes a diffusers folder, or a single file when PATH ends in .safetensors.
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "common/cli_flags.h"
#include "tools/dbtool/command_registry.h"
#include "worker/diffusion/io/lora_file.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/diffusion/models/lora.h"

namespace dreambooth::dbtool {
namespace {

struct LoraFlags {
  std::string in;
  std::string out;
  std::string model = "tiny";
  std::string to = "kohya";
  double alpha = 0;  // > 0: the alpha of adapters whose file does not store one
  double scale = 1.0;
};

int Fail(const char* command, const absl::Status& status) {
  std::fprintf(stderr, "dbtool %s: %s\n", command, std::string(status.message()).c_str());
  return 1;
}

// The model and the file's adapters for it (with --alpha applied).
absl::StatusOr<diffusion::LoraFile> Read(const LoraFlags& f,
                                         std::optional<diffusion::StableDiffusion>* model) {
  absl::StatusOr<diffusion::StableDiffusion> loaded = diffusion::LoadStableDiffusion(f.model);
  if (!loaded.ok()) return loaded.status();
  model->emplace(*std::move(loaded));
  absl::StatusOr<diffusion::LoraFile> file = diffusion::ReadLoraFile(f.in, **model);
  if (!file.ok()) return file.status();
  if (f.alpha > 0) {
    for (auto& [layer, w] : file->adapters) w.alpha = f.alpha;
  }
  return file;
}

int RunConvert(const LoraFlags& f) {
  if (f.to != "kohya" && f.to != "diffusers") {
    return Fail("lora-convert", absl::InvalidArgumentError("--to must be kohya or diffusers"));
  }
  std::optional<diffusion::StableDiffusion> model;
  absl::StatusOr<diffusion::LoraFile> file = Read(f, &model);
  if (!file.ok()) return Fail("lora-convert", file.status());
  const auto format =
      f.to == "kohya" ? diffusion::LoraFileFormat::kKohya : diffusion::LoraFileFormat::kDiffusers;
  std::map<std::string, std::string> metadata = file->metadata;
  if (format == diffusion::LoraFileFormat::kDiffusers) metadata = {{"format", "pt"}};
  if (format == diffusion::LoraFileFormat::kKohya && !metadata.count("ss_network_dim")) {
    diffusion::KohyaRunInfo info;
    info.base_model = f.model;
    info.rank = file->adapters.begin()->second.rank();
    info.alpha = file->adapters.begin()->second.alpha;
    for (const auto& [key, value] : diffusion::KohyaMetadata(info)) metadata.emplace(key, value);
  }
  absl::Status st = diffusion::WriteLoraFile(f.out, file->adapters, format, metadata);
  if (!st.ok()) return Fail("lora-convert", st);
  std::printf("wrote %s: %zu adapters, %s layout (read as %s)\n", f.out.c_str(),
              file->adapters.size(), diffusion::LoraFileFormatName(format),
              diffusion::LoraFileFormatName(file->format));
  return 0;
}

int RunMerge(const LoraFlags& f) {
  std::optional<diffusion::StableDiffusion> model;
  absl::StatusOr<diffusion::LoraFile> file = Read(f, &model);
  if (!file.ok()) return Fail("lora-merge", file.status());
  absl::StatusOr<diffusion::LoraAdapterSet> adapters =
      diffusion::LoraAdapterSet::Bind(*model, file->adapters);
  if (!adapters.ok()) return Fail("lora-merge", adapters.status());
  absl::Status st = adapters->MergeInto(f.scale);
  if (st.ok()) {
    st = absl::EndsWith(f.out, ".safetensors") ? diffusion::SaveSingleFile(*model, f.out)
                                               : diffusion::SaveDiffusersFolder(*model, f.out);
  }
  if (!st.ok()) return Fail("lora-merge", st);
  std::printf("wrote %s: %s with %zu adapters merged at scale %g\n", f.out.c_str(), f.model.c_str(),
              file->adapters.size(), f.scale);
  return 0;
}

void DeclareCommon(CLI::App& app, LoraFlags* f) {
  app.add_option("IN", f->in, "a LoRA .safetensors file (diffusers, peft or kohya layout)")
      ->required();
  cli::AddString(app, "--model", &f->model,
                 "the base model it adapts: tiny, a diffusers folder or a single file");
  cli::AddDouble(app, "--alpha", &f->alpha,
                 "alpha of adapters whose file stores none (diffusers files mean alpha = rank)");
}

Runner DeclareConvert(CLI::App& app) {
  auto f = std::make_shared<LoraFlags>();
  DeclareCommon(app, f.get());
  app.add_option("OUT", f->out, "the .safetensors file to write")->required();
  cli::AddString(app, "--to", &f->to,
                 "kohya (A1111, ComfyUI, kohya) or diffusers (diffusers, peft)");
  return [f] { return RunConvert(*f); };
}

Runner DeclareMerge(CLI::App& app) {
  auto f = std::make_shared<LoraFlags>();
  DeclareCommon(app, f.get());
  cli::AddString(app, "--out", &f->out, "a diffusers folder, or a single file (*.safetensors)")
      ->required();
  cli::AddDouble(app, "--scale", &f->scale, "multiplier of the adapters' effect");
  return [f] { return RunMerge(*f); };
}

DB_REGISTER_COMMAND({"lora-convert",
                     "Rewrite a LoRA file in the kohya (A1111/ComfyUI) or diffusers layout",
                     DeclareConvert});
DB_REGISTER_COMMAND({"lora-merge",
                     "Fold a LoRA file into a model (diffusers folder or single file)",
                     DeclareMerge});

}  // namespace
}  // namespace dreambooth::dbtool
