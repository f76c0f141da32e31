// `dbtool init-model`: writes a diffusers folder of a built-in architecture with fixed-seed random
// (untrained) weights, the starting point of pretraining (docs/toy-world.md).
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common/cli_flags.h"
#include "common/status_macros.h"
#include "tools/dbtool/command_registry.h"
#include "tools/dbtool/random_archs.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/diffusion/models/tiny_model.h"

namespace dreambooth::dbtool {
namespace {

struct InitModelArgs {
  std::string arch = "toy";
  std::string out;
  int64_t seed = diffusion::kToyInitSeed;
};

int RunInitModel(const InitModelArgs& a) {
  absl::StatusOr<diffusion::RandomModelSpec> spec =
      RandomArchSpec(a.arch, static_cast<uint64_t>(a.seed));
  if (!spec.ok()) {
    std::fprintf(stderr, "dbtool init-model: %s\n", std::string(spec.status().message()).c_str());
    return 2;
  }
  absl::StatusOr<diffusion::StableDiffusion> model = diffusion::CreateRandomModel(*spec);
  absl::Status saved = model.ok() ? diffusion::SaveDiffusersFolder(*model, a.out) : model.status();
  if (!saved.ok()) {
    std::fprintf(stderr, "dbtool init-model: %s\n", saved.ToString().c_str());
    return 1;
  }
  std::printf("%s model (seed %lld): UNet %lld, VAE %lld, text encoder %lld parameters -> %s\n",
              a.arch.c_str(), static_cast<long long>(a.seed),
              static_cast<long long>(diffusion::CountParameters(*model->unet)),
              static_cast<long long>(diffusion::CountParameters(*model->vae)),
              static_cast<long long>(diffusion::CountParameters(*model->text_encoder)),
              a.out.c_str());
  return 0;
}

Runner DeclareInitModel(CLI::App& app) {
  auto a = std::make_shared<InitModelArgs>();
  cli::AddString(app, "--arch", &a->arch, std::string("architecture: ") + kRandomArchNames);
  cli::AddString(app, "--out", &a->out, "diffusers folder to write")->required();
  cli::AddInt(app, "--seed", &a->seed, "seed of the random weights");
  return [a] { return RunInitModel(*a); };
}

}  // namespace

DB_REGISTER_COMMAND({"init-model",
                     "write a built-in architecture (toy, tiny, mid, sd15) with fixed-seed random "
                     "weights as a diffusers folder: the start of pretraining",
                     DeclareInitModel});

}  // namespace dreambooth::dbtool
