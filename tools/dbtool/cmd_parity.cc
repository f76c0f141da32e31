// `dbtool parity FIXTURE_DIR`: runs every registered golden check that the fixture folder has
// goldens for (golden/*.safetensors, golden/schedules.json, golden/manifest.json, or a tokenizer
// cases.json), one line per compared tensor; exit status 1 when any check fails.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/cli_flags.h"
#include "kernels/fused_kernels.h"
#include "tools/dbtool/command_registry.h"
#include "tools/dbtool/parity_registry.h"
#include "tools/dbtool/sample_args.h"
#include "worker/diffusion/io/file_util.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/diffusion/io/safetensors.h"
#include "worker/diffusion/models/attention.h"

namespace dreambooth::dbtool {
namespace {

namespace fs = std::filesystem;
using diffusion::StableDiffusion;

constexpr double kBf16RelL2 = 5e-2;
constexpr double kFp16RelL2 = 1e-2;

// What model outputs must meet when the model runs in bf16 or fp16: relative L2 error against
// the float32 golden (max_abs is not bounded: a few outliers of 1-2 ulps of the output's range are
// expected). Chosen from measurements on tiny-a (docs/diffusion-io.md); float32 stays the parity
// mode.
Tolerance ReducedPrecisionTolerance(at::ScalarType dtype) {
  if (dtype == at::kBFloat16) return Tolerance::RelL2(kBf16RelL2);
  if (dtype == at::kHalf) return Tolerance::RelL2(kFp16RelL2);
  return Tolerance();
}

// Runs one check, turning exceptions into a FAIL line.
void RunCheck(const ParityCheck& check, const ParityContext& context, ParityReporter& reporter) {
  try {
    check.run(context, reporter);
  } catch (const c10::Error& e) {
    reporter.Fail(context.golden_name,
                  absl::StrCat("LibTorch error: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    reporter.Fail(context.golden_name, absl::StrCat("error: ", e.what()));
  }
}

struct ParityFlags {
  std::string dir;
  int64_t threads = 0;
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;
  bool cuda_graphs = false;
  diffusion::AttentionOptions attention;
  std::optional<kernels::FusedKernels> fused_kernels;
};

int RunParity(const ParityFlags& flags) {
  const std::string& dir = flags.dir;
  const at::Device device = flags.device;
  const at::ScalarType dtype = flags.dtype;
  const bool cuda_graphs = flags.cuda_graphs;
  const diffusion::AttentionOptions& attention = flags.attention;
  if (flags.threads > 0) at::set_num_threads(static_cast<int>(flags.threads));
  if (flags.fused_kernels) kernels::SetFusedKernels(*flags.fused_kernels);
  if (dtype == at::kHalf && !device.is_cuda()) {
    std::fprintf(stderr, "dbtool parity: --dtype fp16 needs a CUDA device (use bf16 on CPU)\n");
    return 2;
  }
  if (dir.empty() || !diffusion::IsDirectory(dir)) {
    std::fprintf(stderr, "dbtool parity: '%s' is not a folder\n", dir.c_str());
    return 2;
  }
  ParityReporter reporter;
  const auto& checks = ParityChecks();
  const nlohmann::json empty_manifest = nlohmann::json::object();
  nlohmann::json manifest = empty_manifest;
  const fs::path golden_dir = fs::path(dir) / "golden";
  if (diffusion::FileExists((golden_dir / "manifest.json").string())) {
    absl::StatusOr<nlohmann::json> parsed =
        diffusion::ReadJsonFile((golden_dir / "manifest.json").string());
    if (parsed.ok()) {
      manifest = *parsed;
    } else {
      reporter.Fail("manifest", std::string(parsed.status().message()));
    }
  }

  // The fixture's model, loaded on first use.
  std::optional<absl::StatusOr<StableDiffusion>> model;
  auto get_model = [&]() -> absl::StatusOr<StableDiffusion*> {
    if (!model.has_value()) {
      diffusion::LoadOptions load;
      load.device = device;
      load.dtype = dtype;
      // A fixture may name its model instead of holding it ("base_model", relative to `dir`).
      std::string model_dir = dir;
      if (manifest.contains("base_model") && manifest["base_model"].is_string()) {
        model_dir = (fs::path(dir) / manifest["base_model"].get<std::string>()).string();
      }
      model.emplace(diffusion::LoadStableDiffusion(model_dir, load));
      if (model->ok()) {
        (*model)->unet->set_attention_options(attention);
        diffusion::SetAttentionOptions(*(*model)->vae, attention);
      }
    }
    if (!model->ok()) return model->status();
    return &model->value();
  };

  bool found = false;
  const diffusion::TensorMap no_tensors;
  auto make_context = [&](const std::string& name, const std::string& path,
                          const diffusion::TensorMap* tensors) {
    ParityContext context;
    context.fixture_dir = dir;
    context.golden_name = name;
    context.golden_path = path;
    context.golden = tensors;
    context.manifest = &manifest;
    context.model = get_model;
    context.device = device;
    context.dtype = dtype;
    context.cuda_graphs = cuda_graphs;
    context.reduced_precision = ReducedPrecisionTolerance(dtype);
    return context;
  };

  if (diffusion::FileExists((fs::path(dir) / "cases.json").string())) {
    found = true;
    auto it = checks.find("cases");
    const std::string path = (fs::path(dir) / "cases.json").string();
    if (it == checks.end()) {
      reporter.Skip("cases", "no tokenizer check is registered");
    } else {
      RunCheck(it->second, make_context("cases", path, &no_tensors), reporter);
    }
  }

  if (diffusion::IsDirectory(golden_dir.string())) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(golden_dir)) {
      if (entry.is_regular_file()) files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& file : files) {
      const std::string name = file.stem().string();
      const std::string ext = file.extension().string();
      if (ext != ".safetensors" && ext != ".json") continue;
      found = true;
      auto it = checks.find(name);
      if (it == checks.end()) {
        reporter.Skip(name, "no check is registered for this golden file yet");
        continue;
      }
      if (ext == ".json") {
        RunCheck(it->second, make_context(name, file.string(), &no_tensors), reporter);
        continue;
      }
      absl::StatusOr<diffusion::TensorMap> tensors = diffusion::ReadSafetensors(file.string());
      if (!tensors.ok()) {
        reporter.Fail(name, std::string(tensors.status().message()));
        continue;
      }
      RunCheck(it->second, make_context(name, file.string(), &*tensors), reporter);
    }
  }
  if (!found) {
    std::fprintf(stderr, "dbtool parity: %s holds neither golden/*.safetensors nor cases.json\n",
                 dir.c_str());
    return 2;
  }
  std::printf(
      "parity %s on %s in %s, attention %s, fused kernels %s: %d passed, %d failed, %d skipped\n",
      dir.c_str(), device.str().c_str(), c10::toString(dtype),
      diffusion::AttentionBackendName(attention.backend),
      kernels::FusedKernelsName(kernels::ActiveFusedKernels()).c_str(), reporter.passes(),
      reporter.failures(), reporter.skips());
  return reporter.failures() == 0 ? 0 : 1;
}

Runner DeclareParity(CLI::App& app) {
  auto f = std::make_shared<ParityFlags>();
  app.add_option("FIXTURE_DIR", f->dir,
                 "a fixture folder (golden/*.safetensors, golden/*.json) or a tokenizer cases.json "
                 "folder")
      ->required();
  AddThreadsOption(app, &f->threads);
  AddDeviceOption(app, &f->device);
  AddDtypeOption(app, &f->dtype);
  AddAttentionOption(app, &f->attention.backend);
  AddFusedKernelsOption(app, &f->fused_kernels);
  cli::AddSwitch(app, "--cuda-graphs", &f->cuda_graphs, true,
                 "sampling replays the UNet as a CUDA graph (CUDA only)");
  return [f] { return RunParity(*f); };
}

DB_REGISTER_COMMAND({"parity", "Compare every component against the fixture's golden outputs",
                     DeclareParity});

}  // namespace
}  // namespace dreambooth::dbtool
