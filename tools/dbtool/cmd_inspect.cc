// `dbtool inspect MODEL`: loads a model (tiny, a diffusers folder or a single .safetensors file)
// and prints its source, digest, component configs and parameter counts; or, for any other
// .safetensors file, lists its tensors.
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/cli_flags.h"
#include "tools/dbtool/command_registry.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/diffusion/io/safetensors.h"

namespace dreambooth::dbtool {
namespace {

int ListTensors(const std::string& path) {
  std::map<std::string, std::string> metadata;
  absl::StatusOr<std::map<std::string, diffusion::SafetensorsEntry>> header =
      diffusion::ReadSafetensorsHeader(path, &metadata);
  if (!header.ok()) {
    std::fprintf(stderr, "dbtool inspect: %s\n", std::string(header.status().message()).c_str());
    return 1;
  }
  for (const auto& [key, value] : metadata) {
    std::printf("metadata %s = %.200s\n", key.c_str(), value.c_str());
  }
  for (const auto& [name, entry] : *header) {
    std::printf("%-80s %-5s [%s]\n", name.c_str(), entry.dtype.c_str(),
                absl::StrJoin(entry.shape, ", ").c_str());
  }
  std::printf("%zu tensors\n", header->size());
  return 0;
}

int RunInspect(const std::string& target) {
  absl::StatusOr<diffusion::StableDiffusion> model = diffusion::LoadStableDiffusion(target);
  if (!model.ok()) {
    // Not a model: a plain safetensors file is still worth listing.
    if (std::filesystem::path(target).extension() == ".safetensors" &&
        std::filesystem::is_regular_file(target)) {
      std::printf("not a Stable Diffusion model (%s); tensors:\n",
                  std::string(model.status().message()).c_str());
      return ListTensors(target);
    }
    std::fprintf(stderr, "dbtool inspect: %s\n", std::string(model.status().message()).c_str());
    return 1;
  }
  std::printf("source        %s\n", model->source.c_str());
  std::printf("digest        %s\n", model->digest.c_str());
  std::printf("text_encoder  %lld parameters  %s\n",
              static_cast<long long>(CountParameters(*model->text_encoder)),
              model->text_encoder_config.ToJson().dump().c_str());
  std::printf("unet          %lld parameters  %s\n",
              static_cast<long long>(CountParameters(*model->unet)),
              model->unet_config.ToJson().dump().c_str());
  std::printf("vae           %lld parameters  %s\n",
              static_cast<long long>(CountParameters(*model->vae)),
              model->vae_config.ToJson().dump().c_str());
  std::printf("scheduler     %s\n", model->scheduler_config.ToJson().dump().c_str());
  std::printf("tokenizer     %lld ids, bos %lld, eos %lld, pad %lld\n",
              static_cast<long long>(model->tokenizer.vocab_size()),
              static_cast<long long>(model->tokenizer.bos_id()),
              static_cast<long long>(model->tokenizer.eos_id()),
              static_cast<long long>(model->tokenizer.pad_id()));
  return 0;
}

Runner DeclareInspect(CLI::App& app) {
  auto target = std::make_shared<std::string>();
  app.add_option("MODEL", *target, "tiny, a diffusers folder, or a .safetensors file")->required();
  return [target] { return RunInspect(*target); };
}

DB_REGISTER_COMMAND({"inspect",
                     "Print a model's configs, parameter counts and digest (or a file's tensors)",
                     DeclareInspect});

}  // namespace
}  // namespace dreambooth::dbtool
