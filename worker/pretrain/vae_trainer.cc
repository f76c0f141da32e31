#include "worker/pretrain/vae_trainer.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/diffusion/device.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/diffusion/io/safetensors.h"
#include "worker/diffusion/torch_status.h"
#include "worker/train/adamw.h"
#include "worker/train/image_dataset.h"

namespace dreambooth::pretrain {
namespace {

namespace fs = std::filesystem;
using diffusion::TensorMap;

constexpr char kStateFile[] = "state.safetensors";
constexpr char kWeightPrefix[] = "vae.";
constexpr char kOptimizerPrefix[] = "adamw.";

// The options that determine the numbers a run produces (not paths, device or max_steps, so a
// run can be extended).
std::string Fingerprint(const VaeTrainOptions& o) {
  return nlohmann::json{{"max_images", o.max_images},
                        {"batch_size", o.batch_size},
                        {"crop_size", o.crop_size},
                        {"learning_rate", o.learning_rate},
                        {"warmup_steps", o.warmup_steps},
                        {"kl_weight", o.kl_weight},
                        {"seed", o.seed}}
      .dump();
}

absl::Status CheckOptions(const VaeTrainOptions& o) {
  if (o.model_dir.empty()) return absl::InvalidArgumentError("model_dir is required");
  if (o.image_dir.empty()) return absl::InvalidArgumentError("image_dir is required");
  if (o.max_images < 1 || o.max_steps < 1 || o.batch_size < 1 || o.crop_size < 0 ||
      o.learning_rate <= 0 || o.warmup_steps < 0 || o.kl_weight < 0 || o.checkpoint_every < 1) {
    return absl::InvalidArgumentError(
        "max_images, max_steps, batch_size and checkpoint_every must be >= 1, learning_rate > 0, "
        "crop_size, warmup_steps and kl_weight >= 0");
  }
  return absl::OkStatus();
}

std::string StateDir(const VaeTrainOptions& o) {
  if (!o.state_dir.empty()) return o.state_dir;
  const fs::path model = fs::path(o.model_dir).lexically_normal();
  const std::string name =
      model.has_filename() ? model.filename().string() : model.parent_path().filename().string();
  const fs::path parent =
      model.has_filename() ? model.parent_path() : model.parent_path().parent_path();
  return (parent / (name + ".vae-train")).string();
}

// Every training image as float32 [N, 3, S, S] in [-1, 1] (S = the VAE's sample size).
absl::StatusOr<at::Tensor> LoadImages(const VaeTrainOptions& o, int size) {
  ASSIGN_OR_RETURN(std::vector<train::ImageRecord> records,
                   train::ScanImageFolder(o.image_dir, "", /*warnings=*/nullptr));
  if (static_cast<int>(records.size()) > o.max_images) records.resize(o.max_images);
  std::vector<at::Tensor> images;
  images.reserve(records.size());
  for (const train::ImageRecord& r : records) {
    ASSIGN_OR_RETURN(at::Tensor image, train::LoadTrainingImage(r.path, size, {}, false));
    images.push_back(std::move(image));
  }
  return at::stack(images);
}

// KL(q || N(0, 1)) per latent element, averaged.
at::Tensor MeanKl(const diffusion::LatentDistribution& d) {
  return 0.5 * (d.mean.pow(2) + d.logvar.exp() - 1.0 - d.logvar).mean();
}

}  // namespace

absl::StatusOr<VaeTrainResult> TrainVae(
    const VaeTrainOptions& options,
    const std::function<bool(const VaeTrainProgress&)>& on_progress) {
  RETURN_IF_ERROR(CheckOptions(options));
  if (options.num_threads > 0) at::set_num_threads(options.num_threads);
  ASSIGN_OR_RETURN(c10::Device device, diffusion::ResolveDevice(options.device));
  ASSIGN_OR_RETURN(diffusion::StableDiffusion model,
                   diffusion::LoadStableDiffusion(options.model_dir, {device, at::kFloat, ""}));
  const int size = static_cast<int>(model.vae_config.sample_size);
  if (options.crop_size > size) {
    return absl::InvalidArgumentError(
        absl::StrCat("crop_size ", options.crop_size, " exceeds the VAE's sample_size ", size));
  }
  const int crop = options.crop_size == 0 ? size : options.crop_size;
  ASSIGN_OR_RETURN(at::Tensor images, LoadImages(options, size));
  const int64_t n = images.size(0);

  diffusion::AutoencoderKL vae = model.vae;
  std::vector<std::pair<std::string, at::Tensor>> params;
  for (auto& p : vae->named_parameters()) {
    p.value().requires_grad_(true);
    params.emplace_back(p.key(), p.value());
  }
  train::AdamWOptions adam;
  adam.lr = options.learning_rate;
  train::AdamW optimizer({{params, adam}});

  const std::string state_dir = StateDir(options);
  const std::string state_path = (fs::path(state_dir) / kStateFile).string();
  const std::string fingerprint = Fingerprint(options);
  VaeTrainResult result;
  int step = 0;
  std::error_code ec;
  if (fs::exists(state_path, ec)) {
    std::map<std::string, std::string> metadata;
    ASSIGN_OR_RETURN(TensorMap state, diffusion::ReadSafetensors(state_path, &metadata));
    if (metadata["fingerprint"] != fingerprint) {
      return absl::FailedPreconditionError(
          absl::StrCat("the resume state ", state_path, " was written with other options (",
                       metadata["fingerprint"], "); remove it to start over"));
    }
    TensorMap weights, adam_state;
    for (auto& [name, t] : state) {
      if (name.rfind(kWeightPrefix, 0) == 0) weights[name.substr(4)] = t;
      if (name.rfind(kOptimizerPrefix, 0) == 0) adam_state[name.substr(6)] = t;
    }
    RETURN_IF_ERROR(diffusion::LoadStateDictStrict(*vae, weights, "vae"));
    RETURN_IF_ERROR(optimizer.LoadStateDict(adam_state));
    step = std::stoi(metadata["step"]);
    result.resumed_from = step;
  }
  fs::create_directories(state_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", state_dir, ": ", ec.message()));

  auto save_state = [&]() -> absl::Status {
    TensorMap state;
    for (auto& [name, t] : diffusion::ModuleStateDictOnHost(*vae)) state[kWeightPrefix + name] = t;
    for (auto& [name, t] : optimizer.StateDict()) state[kOptimizerPrefix + name] = t;
    return diffusion::WriteSafetensors(
        state_path, state, {{"fingerprint", fingerprint}, {"step", std::to_string(step)}});
  };

  vae->train();
  const auto start = std::chrono::steady_clock::now();
  while (step < options.max_steps) {
    VaeTrainProgress progress;
    RETURN_IF_ERROR(GuardTorch("VAE training step", [&]() -> absl::Status {
      // Everything drawn for a step is a function of (seed, step): resuming repeats it exactly.
      at::Generator gen = at::detail::createCPUGenerator(options.seed * 1000003ULL + step);
      at::Tensor index = at::randint(n, {options.batch_size}, gen, at::kLong);
      at::Tensor offsets = at::randint(size - crop + 1, {options.batch_size, 2}, gen, at::kLong);
      std::vector<at::Tensor> crops;
      for (int b = 0; b < options.batch_size; ++b) {
        crops.push_back(images[index[b].item<int64_t>()]
                            .narrow(1, offsets[b][0].item<int64_t>(), crop)
                            .narrow(2, offsets[b][1].item<int64_t>(), crop));
      }
      at::Tensor x = at::stack(crops).to(device);
      diffusion::LatentDistribution posterior = vae->Encode(x);
      at::Tensor eps = at::randn(posterior.mean.sizes(), gen).to(device);
      at::Tensor reconstruction = vae->Decode(posterior.mean + posterior.Std() * eps);
      at::Tensor l1 = (reconstruction - x).abs().mean();
      at::Tensor kl = MeanKl(posterior);
      at::Tensor loss = l1 + options.kl_weight * kl;
      const double warmup =
          options.warmup_steps > 0 ? std::min(1.0, (step + 1.0) / options.warmup_steps) : 1.0;
      optimizer.group_options(0).lr = options.learning_rate * warmup;
      optimizer.ZeroGrad();
      loss.backward();
      optimizer.Step();
      progress.l1 = l1.item<double>();
      progress.kl = kl.item<double>();
      return absl::OkStatus();
    }));
    ++step;
    progress.step = step;
    progress.max_steps = options.max_steps;
    progress.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const bool go_on = !on_progress || on_progress(progress);
    if (step % options.checkpoint_every == 0 || step == options.max_steps || !go_on) {
      RETURN_IF_ERROR(save_state());
    }
    if (!go_on) return absl::CancelledError(absl::StrCat("stopped after step ", step));
  }
  result.steps = step;

  // Whole-image reconstruction quality and the latent scale, on up to 256 images.
  vae->eval();
  RETURN_IF_ERROR(GuardTorch("VAE evaluation", [&]() -> absl::Status {
    at::NoGradGuard no_grad;
    at::Generator gen = at::detail::createCPUGenerator(options.seed + 7);
    const int64_t m = std::min<int64_t>(n, 256);
    double squared_error = 0, count = 0;
    std::vector<at::Tensor> latents;
    for (int64_t i = 0; i < m; i += 32) {
      at::Tensor x = images.narrow(0, i, std::min<int64_t>(32, m - i)).to(device);
      diffusion::LatentDistribution posterior = vae->Encode(x);
      latents.push_back(
          (posterior.mean + posterior.Std() * at::randn(posterior.mean.sizes(), gen).to(device))
              .cpu());
      at::Tensor y = vae->Decode(posterior.mean).clamp(-1, 1);
      // In 8-bit units: [-1, 1] -> [0, 255].
      squared_error += ((y - x) * 127.5).pow(2).sum().item<double>();
      count += static_cast<double>(x.numel());
    }
    const double mse = squared_error / count;
    result.psnr_db = 10.0 * std::log10(255.0 * 255.0 / std::max(mse, 1e-12));
    result.scaling_factor = 1.0 / at::cat(latents).std().item<double>();
    return absl::OkStatus();
  }));
  model.vae_config.scaling_factor = result.scaling_factor;
  // Rebuild the module from the updated config so the saved model is self-consistent.
  diffusion::AutoencoderKL saved(model.vae_config);
  RETURN_IF_ERROR(
      diffusion::LoadStateDictStrict(*saved, diffusion::ModuleStateDictOnHost(*vae), "vae"));
  model.vae = saved;
  RETURN_IF_ERROR(diffusion::SaveDiffusersFolder(model, options.model_dir));
  return result;
}

}  // namespace dreambooth::pretrain
