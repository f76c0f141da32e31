// `dbtool memory`: the peak-memory estimate of a DreamBooth job (worker/train/memory_estimate.h)
// and, with --measure, the measured peak RSS of the same job run in this process on the CPU
// (class-image generation, latent caching and a few training steps on synthetic images). Prints
// one JSON line and one human line; docs/memory.md has the measured table.
#include <ATen/Parallel.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/cli_flags.h"
#include "common/image/image.h"
#include "common/status_macros.h"
#include "kernels/caching_cpu_allocator.h"
#include "tools/dbtool/command_registry.h"
#include "tools/dbtool/random_archs.h"
#include "worker/train/dreambooth_trainer.h"
#include "worker/train/memory_estimate.h"
#include "worker/train/progress.h"

namespace dreambooth::dbtool {
namespace {

namespace fs = std::filesystem;

struct MemoryArgs {
  std::string model = "tiny";
  int resolution = 0;  // 0: the UNet's sample_size x the VAE factor
  int train_batch_size = 1;
  bool prior = false;
  int num_images_per_prompt = 1;
  bool checkpointing = false;
  train::MixedPrecision precision = train::MixedPrecision::kNo;
  bool train_text_encoder = false;
  int lora_rank = 0;
  bool cached_latents = true;
  std::string device = "cpu";
  int64_t budget_mib = 0;
  bool measure = false;
  int steps = 1;
  int class_steps = 2;
  int threads = 0;
  std::string work_dir;  // default: a fresh folder under the system temp dir
};

bool IsArch(const std::string& name) {
  return name == "tiny" || name == "toy" || name == "mid" || name == "sd15";
}

// A "<key> <n> kB" line of /proc/self/status, in bytes (0 when absent).
int64_t StatusBytes(const std::string& wanted) {
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == wanted) {
      int64_t kib = 0;
      status >> kib;
      return kib * 1024;
    }
    status.ignore(1 << 20, '\n');
  }
  return 0;
}

// Resident set size now (VmRSS), in bytes.
int64_t CurrentRssBytes() { return StatusBytes("VmRSS:"); }

// Peak resident set size since the start or the last ResetPeakRss (VmHWM), in bytes.
int64_t PeakRssSinceReset() { return StatusBytes("VmHWM:"); }

// Restarts VmHWM from the current RSS (Linux >= 4.0: "5" > /proc/self/clear_refs).
bool ResetPeakRss() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  clear.flush();
  return clear.good();
}

// `count` synthetic square PNGs (a gradient with a disc) in `dir`.
absl::Status WriteImages(const fs::path& dir, int count, int size) {
  fs::create_directories(dir);
  std::mt19937 rng(7);
  for (int k = 0; k < count; ++k) {
    image::Image img;
    img.width = img.height = size;
    img.rgb.resize(static_cast<size_t>(size) * size * 3);
    const int cx = static_cast<int>(rng() % size), cy = static_cast<int>(rng() % size);
    for (int y = 0; y < size; ++y) {
      for (int x = 0; x < size; ++x) {
        uint8_t* px = &img.rgb[(static_cast<size_t>(y) * size + x) * 3];
        const bool disc = (x - cx) * (x - cx) + (y - cy) * (y - cy) < size * size / 16;
        px[0] = disc ? 200 : static_cast<uint8_t>(255 * x / size);
        px[1] = disc ? 40 : static_cast<uint8_t>(255 * y / size);
        px[2] = static_cast<uint8_t>(100 + 50 * k);
      }
    }
    ASSIGN_OR_RETURN(std::string png, image::EncodePng(img));
    std::ofstream((dir / absl::StrCat("img", k, ".png")).string(), std::ios::binary) << png;
  }
  return absl::OkStatus();
}

train::TrainOptions OptionsFor(const MemoryArgs& a, int resolution) {
  train::TrainOptions o;
  o.base_model = a.model;
  o.instance_prompt = "a photo of sks dog";
  o.resolution = resolution;
  o.train_batch_size = a.train_batch_size;
  o.with_prior_preservation = a.prior;
  o.class_prompt = "a photo of a dog";
  o.num_images_per_prompt = a.num_images_per_prompt;
  o.num_class_images = a.num_images_per_prompt;  // one generation batch
  o.class_sampler.num_inference_steps = a.class_steps;
  o.use_cached_latents = a.cached_latents;
  o.gradient_checkpointing = a.checkpointing;
  o.mixed_precision = a.precision;
  o.train_text_encoder = a.train_text_encoder;
  o.lora.enabled = a.lora_rank > 0;
  if (a.lora_rank > 0) o.lora.rank = a.lora_rank;
  o.max_train_steps = a.steps;
  o.checkpointing_steps = 0;
  o.device = a.device;
  o.num_threads = a.threads;
  return o;
}

// Runs the job as the worker does (the trainer loads the model folder) and returns its peak RSS
// (bytes). A built-in architecture is first written with random weights to a folder under the
// work dir; then the allocator's idle blocks go back to the system and the peak is restarted, so
// the peak is the job's. `stages` receives the peak reached before each stage began (and at the
// end).
absl::StatusOr<int64_t> Measure(const MemoryArgs& a, train::TrainOptions o,
                                nlohmann::json* stages) {
  const fs::path dir = a.work_dir.empty()
                           ? fs::temp_directory_path() / absl::StrCat("dbtool-memory-", getpid())
                           : fs::path(a.work_dir);
  RETURN_IF_ERROR(WriteImages(dir / "instances", std::max(2, a.train_batch_size), o.resolution));
  o.instance_dir = (dir / "instances").string();
  o.output_dir = (dir / "out").string();
  absl::StatusOr<int64_t> peak = [&]() -> absl::StatusOr<int64_t> {
    std::unique_ptr<train::DreamBoothTrainer> trainer;
    train::TrainCallbacks callbacks;
    std::string stage;
    callbacks.on_progress = [&](const train::TrainProgress& p) {
      if (p.stage == train::TrainStage::kPreparing || stage == train::TrainStageName(p.stage))
        return;
      stage = train::TrainStageName(p.stage);
      (*stages)[stage] = PeakRssSinceReset() / 1048576.0;
    };
    if (IsArch(a.model)) {  // written as a diffusers folder, then loaded as a job loads it
      {
        ASSIGN_OR_RETURN(diffusion::RandomModelSpec spec, RandomArchSpec(a.model, 1));
        ASSIGN_OR_RETURN(diffusion::StableDiffusion model, diffusion::CreateRandomModel(spec));
        RETURN_IF_ERROR(diffusion::SaveDiffusersFolder(model, (dir / "model").string()));
      }
      o.base_model = (dir / "model").string();
      (*stages)["created"] = PeakRssSinceReset() / 1048576.0;
      kernels::ReleaseCachedCpuMemory();
      if (!ResetPeakRss()) return absl::InternalError("cannot reset the peak RSS");
    }
    ASSIGN_OR_RETURN(trainer, train::DreamBoothTrainer::Create(o, callbacks));
    ASSIGN_OR_RETURN(train::TrainResult result, trainer->Train());
    (*stages)["end"] = PeakRssSinceReset() / 1048576.0;
    return PeakRssSinceReset();
  }();
  std::error_code ec;
  if (a.work_dir.empty()) fs::remove_all(dir, ec);
  return peak;
}

int RunMemory(const MemoryArgs& a) {
  const int64_t runtime_rss = CurrentRssBytes();
  if (a.threads > 0) at::set_num_threads(a.threads);
  absl::StatusOr<train::ModelConfigs> configs = [&]() -> absl::StatusOr<train::ModelConfigs> {
    if (!IsArch(a.model)) return train::ModelConfigs::Load(a.model);
    ASSIGN_OR_RETURN(diffusion::RandomModelSpec spec, RandomArchSpec(a.model, 1));
    return train::ModelConfigs{spec.unet_config, spec.vae_config, spec.text_encoder_config};
  }();
  if (!configs.ok()) {
    std::fprintf(stderr, "dbtool memory: %s\n", configs.status().ToString().c_str());
    return 2;
  }
  const int resolution = a.resolution > 0
                             ? a.resolution
                             : static_cast<int>(configs->unet.sample_size
                                                << (configs->vae.block_out_channels.size() - 1));
  train::TrainOptions o = OptionsFor(a, resolution);
  const train::DeviceKind kind =
      a.device == "cpu" ? train::DeviceKind::kCpu : train::DeviceKind::kCuda;
  absl::StatusOr<train::MemoryEstimate> est = train::EstimateTrainingMemory(o, *configs, kind);
  if (!est.ok()) {
    std::fprintf(stderr, "dbtool memory: %s\n", est.status().ToString().c_str());
    return 2;
  }
  nlohmann::json line = {{"model", a.model},
                         {"resolution", resolution},
                         {"train_batch_size", a.train_batch_size},
                         {"prior_preservation", a.prior},
                         {"num_images_per_prompt", a.num_images_per_prompt},
                         {"gradient_checkpointing", a.checkpointing},
                         {"mixed_precision", train::MixedPrecisionName(a.precision)},
                         {"train_text_encoder", a.train_text_encoder},
                         {"lora_rank", a.lora_rank},
                         {"cached_latents", a.cached_latents},
                         {"device", a.device},
                         {"estimate_mib", est->total_bytes / 1048576.0},
                         {"peak_phase", est->peak_phase},
                         {"breakdown_mib",
                          {{"weights", est->weights_bytes / 1048576.0},
                           {"gradients", est->gradients_bytes / 1048576.0},
                           {"optimizer", est->optimizer_bytes / 1048576.0},
                           {"activations", est->activations_bytes / 1048576.0},
                           {"class_generation", est->class_generation_bytes / 1048576.0},
                           {"latent_caching", est->latent_caching_bytes / 1048576.0},
                           {"overhead", est->overhead_bytes / 1048576.0},
                           {"runtime", est->runtime_bytes / 1048576.0}}},
                         {"runtime_rss_mib", runtime_rss / 1048576.0}};
  std::string human = est->Describe();
  if (a.budget_mib > 0) {
    absl::StatusOr<train::MemoryPlan> plan =
        train::PlanMemory(o, *configs, kind, a.budget_mib * 1048576, train::MemoryPolicy::kAdapt);
    line["plan"] = plan.ok() ? nlohmann::json(plan->notes)
                             : nlohmann::json(std::string(plan.status().message()));
  }
  if (a.measure) {
    if (kind != train::DeviceKind::kCpu) {
      std::fprintf(stderr, "dbtool memory: --measure measures peak RSS: use --device cpu\n");
      return 2;
    }
    nlohmann::json stages = nlohmann::json::object();
    absl::StatusOr<int64_t> peak = Measure(a, o, &stages);
    if (!peak.ok()) {
      std::fprintf(stderr, "dbtool memory: %s\n", peak.status().ToString().c_str());
      return 1;
    }
    const double ratio = static_cast<double>(est->total_bytes) / static_cast<double>(*peak);
    line["measured_peak_rss_mib"] = *peak / 1048576.0;
    line["ratio"] = ratio;
    line["peak_rss_mib_before_stage"] = stages;
    line["steps"] = a.steps;
    line["threads"] = at::get_num_threads();
    human = absl::StrCat(human, "; measured peak RSS ", train::FormatBytes(*peak), " (estimate / ",
                         "measured = ", absl::StrFormat("%.2f", ratio), ")");
  }
  std::printf("%s\n%s\n", line.dump().c_str(), human.c_str());
  return 0;
}

Runner DeclareMemory(CLI::App& app) {
  auto a = std::make_shared<MemoryArgs>();
  cli::AddString(app, "--model", &a->model,
                 std::string("diffusers folder, or a built-in architecture with random weights: ") +
                     kRandomArchNames);
  cli::AddInt(app, "--resolution", &a->resolution, "image size (0: the model's native)", 0);
  cli::AddInt(app, "--train-batch-size", &a->train_batch_size, "instance images per step", 1);
  cli::AddSwitch(app, "--prior-preservation", &a->prior, true,
                 "class images in every micro-batch (and one batch of them generated)");
  cli::AddInt(app, "--num-images-per-prompt", &a->num_images_per_prompt, "class-generation batch",
              1);
  cli::AddSwitch(app, "--gradient-checkpointing", &a->checkpointing, true,
                 "recompute UNet blocks in backward");
  cli::AddParsed(app, "--mixed-precision", &a->precision, train::ParseMixedPrecision, "no|bf16",
                 "NAME", train::MixedPrecisionName(a->precision));
  cli::AddSwitch(app, "--train-text-encoder", &a->train_text_encoder, true,
                 "train the text encoder too");
  cli::AddInt(app, "--lora-rank", &a->lora_rank, "LoRA rank (0: full fine-tuning)", 0, 1024);
  cli::AddSwitch(app, "--no-cached-latents", &a->cached_latents, false,
                 "encode images with the VAE every step");
  cli::AddString(app, "--device", &a->device, "cpu | cuda (estimate only)");
  cli::AddInt(app, "--budget-mib", &a->budget_mib,
              "also plan for this budget (memory policy adapt) and print the notes", 0);
  cli::AddSwitch(app, "--measure", &a->measure, true,
                 "run the job here (CPU) and print the measured peak RSS");
  cli::AddInt(app, "--steps", &a->steps, "training steps with --measure", 1);
  cli::AddInt(app, "--class-steps", &a->class_steps, "class-image sampler steps with --measure", 1);
  cli::AddInt(app, "--threads", &a->threads, "LibTorch intra-op threads (0: its default)", 0);
  cli::AddString(app, "--work-dir", &a->work_dir,
                 "folder for the synthetic images and outputs (default: a temporary one, removed)");
  return [a] { return RunMemory(*a); };
}

}  // namespace

DB_REGISTER_COMMAND({"memory",
                     "estimate a training job's peak memory; with --measure, run it on the CPU "
                     "and print the measured peak RSS next to the estimate",
                     DeclareMemory});

}  // namespace dreambooth::dbtool
