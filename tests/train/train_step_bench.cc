// Training throughput on CPU: steps/s and peak RSS of one configuration per process (so the
// peak RSS is that configuration's), printed as one JSON line. Configurations:
//   tiny_cached   DreamBoothTrainer on the built-in tiny model, 64x64, prior preservation,
//                 cached latents + precomputed text embeddings;
//   tiny_online   the same, encoding images with the VAE and running the text encoder every step;
//   mid_step      the bench/mid UNet (random weights): one DreamBooth step with prior
//                 preservation (1 instance + 1 class latent [4, 32, 32], text [77, 768]), AdamW,
//                 as tests/data/bench/README.md's measurement 4 defines it.
// Usage: train_step_bench CONFIG [--steps N] [--threads T] [--gradient-checkpointing]
//                          [--attention auto|math|chunked|sliced|sdpa] [--mixed-precision no|bf16]
//                          [--lora-rank R]  (R > 0: DreamBooth-LoRA on to_q/k/v/out.0, base frozen)
// (--help lists the options with their defaults; bad usage exits with status 2).
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "common/cli_flags.h"
#include "kernels/caching_cpu_allocator.h"
#include "tests/train/test_util.h"
#include "worker/diffusion/models/attention.h"
#include "worker/diffusion/models/lora.h"
#include "worker/diffusion/models/tiny_model.h"
#include "worker/diffusion/models/unet_2d_condition.h"
#include "worker/diffusion/models/unet_2d_condition_config.h"
#include "worker/diffusion/schedulers/scheduler.h"
#include "worker/train/adamw.h"
#include "worker/train/dreambooth_loss.h"
#include "worker/train/dreambooth_trainer.h"
#include "worker/train/precision.h"
#include "worker/train/progress.h"

namespace dreambooth::train {
namespace {

using Clock = std::chrono::steady_clock;

int Fail(const std::string& what) {
  std::fprintf(stderr, "train_step_bench: %s\n", what.c_str());
  return 1;
}

int RunTiny(bool cached, int steps, bool checkpointing,
            const diffusion::AttentionOptions& attention, MixedPrecision precision, int lora_rank) {
  testing::TempDir tmp;
  testing::WriteImageSet(tmp.Join("instances"), 4, 80, 64, 1);
  testing::WriteImageSet(tmp.Join("classes"), 4, 64, 64, 2);
  TrainOptions o = testing::SmallRunOptions(tmp.path(), tmp.Join("instances"));
  o.resolution = 64;
  o.max_train_steps = steps + 2;  // two warm-up steps, excluded below
  o.with_prior_preservation = true;
  o.class_prompt = "a photo of a dog";
  o.class_dir = tmp.Join("classes");
  o.num_class_images = 4;
  o.use_cached_latents = cached;
  o.precompute_text_embeddings = cached;
  o.gradient_checkpointing = checkpointing;
  o.mixed_precision = precision;
  o.num_threads = 0;
  o.lora.enabled = lora_rank > 0;
  o.lora.rank = std::max(lora_rank, 1);
  Clock::time_point warm;
  TrainCallbacks cb;
  cb.on_progress = [&](const TrainProgress& p) {
    if (p.stage == TrainStage::kTraining && p.step == 2) warm = Clock::now();
  };
  auto t = DreamBoothTrainer::Create(o, cb);
  if (!t.ok()) return Fail(t.status().ToString());
  (*t)->model().unet->set_attention_options(attention);
  absl::StatusOr<TrainResult> r = (*t)->Train();
  if (!r.ok()) return Fail(r.status().ToString());
  const double seconds = std::chrono::duration<double>(Clock::now() - warm).count();
  std::printf(
      "{\"config\": \"tiny_%s\", \"model\": \"tiny\", \"resolution\": 64, \"batch\": \"1+1\", "
      "\"cached_latents\": %s, \"precomputed_text\": %s, \"gradient_checkpointing\": %s, "
      "\"attention\": \"%s\", \"mixed_precision\": \"%s\", "
      "\"lora_rank\": %d, \"threads\": %d, \"steps\": %d, \"steps_per_second\": %.3f, "
      "\"peak_rss_mib\": %.1f}\n",
      cached ? "cached" : "online", cached ? "true" : "false", cached ? "true" : "false",
      checkpointing ? "true" : "false", diffusion::AttentionBackendName(attention.backend),
      MixedPrecisionName(precision).c_str(), lora_rank, at::get_num_threads(), steps,
      steps / seconds, PeakRssBytes() / 1048576.0);
  return 0;
}

int RunMid(int steps, bool checkpointing, const diffusion::AttentionOptions& attention,
           MixedPrecision precision, int lora_rank) {
  const std::string path = DB_TEST_DATA_DIR "/bench/mid/unet/config.json";
  absl::StatusOr<diffusion::UNet2DConditionConfig> config =
      diffusion::UNet2DConditionConfig::FromFile(path);
  if (!config.ok()) return Fail(config.status().ToString());
  diffusion::UNet2DConditionModel unet(*config);
  diffusion::InitializeRandomWeights(*unet, 1);
  unet->train();
  unet->set_gradient_checkpointing(checkpointing);
  unet->set_attention_options(attention);
  auto schedule = diffusion::DdpmTrainingSchedule::Create(diffusion::SchedulerConfig{});
  if (!schedule.ok()) return Fail(schedule.status().ToString());
  std::vector<std::pair<std::string, at::Tensor>> params;
  diffusion::LoraAdapterSet adapters;
  if (lora_rank > 0) {  // the base frozen, adapters on the attention projections
    for (auto& p : unet->parameters()) p.requires_grad_(false);
    // As the trainer holds a LoRA run's frozen base: in the compute dtype (FrozenModules).
    if (precision == MixedPrecision::kBf16) unet->to(at::kBFloat16);
    auto created =
        diffusion::LoraAdapterSet::Create(*unet, nullptr, diffusion::LoraTargets{}, lora_rank,
                                          lora_rank, at::detail::createCPUGenerator(2));
    if (!created.ok()) return Fail(created.status().ToString());
    adapters = *std::move(created);
    adapters.set_requires_grad(true);
    params = adapters.NamedParameters();
  } else {
    for (const auto& item : unet->named_parameters()) params.emplace_back(item.key(), item.value());
  }
  int64_t trained = 0;
  for (const auto& [name, p] : params) trained += p.numel();
  diffusion::ScopedLora lora({lora_rank > 0 ? &adapters : nullptr, 1.0, 0.0, true});
  AdamW opt({AdamWParamGroup{params, AdamWOptions{}}});
  at::Generator gen = at::detail::createCPUGenerator(0);
  DreamBoothLossOptions lo;
  lo.with_prior_preservation = true;
  Clock::time_point start;
  for (int i = 0; i < steps + 2; ++i) {
    if (i == 2) start = Clock::now();
    DreamBoothStepInputs in;
    in.latents = at::randn({2, 4, 32, 32}, gen);
    in.noise = at::randn({2, 4, 32, 32}, gen);
    in.timesteps = at::randint(0, 1000, {2}, gen, at::TensorOptions().dtype(at::kLong));
    in.encoder_hidden_states = at::randn({2, 77, 768}, gen);
    absl::StatusOr<DreamBoothLossOutput> out;
    {
      AutocastScope autocast(precision == MixedPrecision::kBf16, at::kCPU, at::kBFloat16);
      out = ComputeDreamBoothLoss(unet, *schedule, in, lo);
    }
    if (!out.ok()) return Fail(out.status().ToString());
    out->loss.backward();
    opt.Step();
    opt.ZeroGrad();
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf(
      "{\"config\": \"mid_step\", \"model\": \"bench/mid unet\", \"resolution\": 256, "
      "\"batch\": \"1+1\", \"cached_latents\": true, \"precomputed_text\": true, "
      "\"gradient_checkpointing\": %s, \"attention\": \"%s\", \"mixed_precision\": \"%s\", "
      "\"lora_rank\": %d, \"trained_parameters\": %lld, \"threads\": %d, \"steps\": %d, "
      "\"steps_per_second\": %.3f, \"peak_rss_mib\": %.1f}\n",
      checkpointing ? "true" : "false", diffusion::AttentionBackendName(attention.backend),
      MixedPrecisionName(precision).c_str(), lora_rank, static_cast<long long>(trained),
      at::get_num_threads(), steps, steps / seconds, PeakRssBytes() / 1048576.0);
  return 0;
}

}  // namespace
}  // namespace dreambooth::train

int main(int argc, char** argv) {
  namespace cli = dreambooth::cli;
  CLI::App app("Training throughput on CPU: steps/s and peak RSS, one JSON line.",
               "train_step_bench");
  cli::ConfigureApp(app);
  std::string config;
  int steps = 20;
  int threads = 0;
  bool checkpointing = false;
  dreambooth::diffusion::AttentionOptions attention;
  dreambooth::train::MixedPrecision precision = dreambooth::train::MixedPrecision::kNo;
  int lora_rank = 0;
  app.add_option("CONFIG", config, "which measurement (see the top of train_step_bench.cc)")
      ->required()
      ->check(CLI::IsMember({"tiny_cached", "tiny_online", "mid_step"}));
  cli::AddInt(app, "--steps", &steps, "timed steps (after two warm-up steps)", 1);
  cli::AddInt(app, "--threads", &threads, "LibTorch intra-op threads (0: its default)", 0);
  cli::AddSwitch(app, "--gradient-checkpointing", &checkpointing, true,
                 "recompute UNet blocks in backward");
  cli::AddParsed(
      app, "--attention", &attention.backend,
      [](const std::string& name) -> absl::StatusOr<dreambooth::diffusion::AttentionBackend> {
        auto backend = dreambooth::diffusion::ParseAttentionBackend(name);
        if (!backend) return absl::InvalidArgumentError("unknown backend '" + name + "'");
        return *backend;
      },
      "auto|math|chunked|sliced|sdpa", "BACKEND",
      dreambooth::diffusion::AttentionBackendName(attention.backend));
  cli::AddParsed(app, "--mixed-precision", &precision, dreambooth::train::ParseMixedPrecision,
                 "no|bf16", "NAME", dreambooth::train::MixedPrecisionName(precision));
  cli::AddInt(app, "--lora-rank", &lora_rank, "LoRA rank (0: full fine-tuning)", 0, 256);
  if (std::optional<int> exit_code = cli::ParseCommandLine(app, argc, argv)) return *exit_code;
  dreambooth::kernels::InstallCachingCpuAllocator();
  if (threads > 0) at::set_num_threads(threads);
  if (config == "tiny_cached")
    return dreambooth::train::RunTiny(true, steps, checkpointing, attention, precision, lora_rank);
  if (config == "tiny_online")
    return dreambooth::train::RunTiny(false, steps, checkpointing, attention, precision, lora_rank);
  return dreambooth::train::RunMid(steps, checkpointing, attention, precision, lora_rank);
}
