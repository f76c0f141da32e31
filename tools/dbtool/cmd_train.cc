// `dbtool train`: a DreamBooth fine-tune from local folders, without the server. Every option of
// the job spec (proto/dreambooth/v1/job_spec.proto) has a flag; `dbtool train --help` lists them
// with the defaults of a default-constructed train::TrainOptions. Progress is printed one line per
// event. Data parallel: `--world-size N` alone starts ranks 1..N-1 as child processes of this
// one (rank 0) on this machine (their output in <output>/rank-<r>.log); with `--rank R
// --rendezvous HOST:PORT` each rank is started by hand, e.g. one per node.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/cli_flags.h"
#include "tools/dbtool/command_registry.h"
#include "worker/train/collective.h"
#include "worker/train/dreambooth_trainer.h"
#include "worker/train/local_ranks.h"

namespace dreambooth::dbtool {
namespace {

using train::TrainOptions;

std::atomic<bool> g_cancel{false};

void OnSignal(int) { g_cancel.store(true); }

// Declares the options of a sampler (class images or validation images) as --<prefix>-....
void AddSamplerOptions(CLI::App& app, const std::string& prefix, train::SamplerOptions& s) {
  const std::string p = "--" + prefix + "-";
  cli::AddString(app, p + "scheduler", &s.scheduler,
                 prefix + " sampler: ddim|pndm|euler|euler_ancestral|dpmpp_2m|ddpm");
  cli::AddInt(app, p + "inference-steps", &s.num_inference_steps, prefix + " denoising steps");
  cli::AddDouble(app, p + "guidance-scale", &s.guidance_scale,
                 prefix + " classifier-free guidance");
  cli::AddString(app, p + "negative-prompt", &s.negative_prompt, prefix + " negative prompt");
  cli::AddDouble(app, p + "eta", &s.eta, prefix + " DDIM eta");
}

// Declares every option on `app`, stored into `o`; --help shows o's values as the defaults, so
// `o` must be a default-constructed TrainOptions. Bounds are ValidateTrainOptions's.
void AddTrainOptions(CLI::App& app, TrainOptions& o, std::vector<std::string>* lora_targets) {
  // Model and data.
  cli::AddParsed(app, "--mode", &o.mode, train::ParseTrainingMode,
                 "dreambooth | text-to-image (every image captioned by its <stem>.txt, no prior "
                 "loss, no instance prompt)",
                 "NAME", train::TrainingModeName(o.mode));
  cli::AddString(app, "--base-model", &o.base_model, "tiny | diffusers folder | .safetensors file")
      ->required();
  cli::AddString(app, "--variant", &o.base_model_variant, "weight variant to prefer, e.g. fp16");
  cli::AddString(app, "--instance-dir", &o.instance_dir,
                 "folder of instance images (+ .txt captions)")
      ->required();
  cli::AddString(app, "--instance-prompt", &o.instance_prompt,
                 "e.g. \"a photo of sks dog\" (required in dreambooth mode)");
  // Prior preservation.
  cli::AddSwitch(app, "--with-prior-preservation", &o.with_prior_preservation, true,
                 "add the class-prior preservation loss");
  cli::AddDouble(app, "--prior-loss-weight", &o.prior_loss_weight, "weight of the prior loss");
  cli::AddString(app, "--class-prompt", &o.class_prompt, "e.g. \"a photo of a dog\"");
  cli::AddString(app, "--class-dir", &o.class_dir, "user-supplied class images (optional)");
  cli::AddInt(app, "--num-class-images", &o.num_class_images, "class images to train with");
  cli::AddInt(app, "--num-images-per-prompt", &o.num_images_per_prompt, "class-generation batch");
  AddSamplerOptions(app, "class", o.class_sampler);
  cli::AddString(app, "--class-cache-dir", &o.class_cache_dir,
                 "generated class-image store (default: <output>/cache/class_images)");
  // Data pipeline.
  cli::AddInt(app, "--resolution", &o.resolution, "square resolution, a multiple of 8");
  CLI::Option* center = cli::AddSwitch(app, "--center-crop", &o.center_crop, true, "center crop");
  cli::AddSwitch(app, "--random-crop", &o.center_crop, false,
                 "random crop (needs --no-cached-latents)")
      ->excludes(center);
  cli::AddSwitch(app, "--random-flip", &o.random_flip, true, "random horizontal flip");
  CLI::Option* cached = cli::AddSwitch(app, "--use-cached-latents", &o.use_cached_latents, true,
                                       "encode each image once (latent cache)");
  cli::AddSwitch(app, "--no-cached-latents", &o.use_cached_latents, false, "encode every step")
      ->excludes(cached);
  cli::AddString(app, "--latent-cache-dir", &o.latent_cache_dir,
                 "latent cache folder (default: <output>/cache/latents)");
  // Optimisation.
  cli::AddSwitch(app, "--train-text-encoder", &o.train_text_encoder, true, "fine-tune CLIP too");
  cli::AddDouble(app, "--text-encoder-learning-rate", &o.text_encoder_learning_rate,
                 "text-encoder LR (0: --learning-rate)");
  cli::AddSwitch(app, "--no-precompute-text-embeddings", &o.precompute_text_embeddings, false,
                 "run the frozen text encoder every step");
  cli::AddInt(app, "--max-train-steps", &o.max_train_steps, "optimizer steps");
  cli::AddDouble(app, "--learning-rate", &o.learning_rate, "peak learning rate");
  cli::AddParsed(app, "--lr-scheduler", &o.lr_scheduler, train::ParseLrScheduleType,
                 "constant|constant_with_warmup|linear|cosine|cosine_with_restarts|polynomial",
                 "NAME", train::LrScheduleTypeName(o.lr_scheduler));
  cli::AddInt(app, "--lr-warmup-steps", &o.lr_warmup_steps, "linear warmup steps");
  cli::AddInt(app, "--lr-num-cycles", &o.lr_num_cycles, "cosine_with_restarts cycles");
  cli::AddDouble(app, "--lr-power", &o.lr_power, "polynomial power");
  cli::AddInt(app, "--train-batch-size", &o.train_batch_size, "instance images per step");
  cli::AddInt(app, "--gradient-accumulation-steps", &o.gradient_accumulation_steps,
              "micro-batches per step");
  cli::AddDouble(app, "--max-grad-norm", &o.max_grad_norm, "clip norm (0: off)");
  cli::AddDouble(app, "--adam-beta1", &o.adam_beta1, "AdamW beta1");
  cli::AddDouble(app, "--adam-beta2", &o.adam_beta2, "AdamW beta2");
  cli::AddDouble(app, "--adam-weight-decay", &o.adam_weight_decay, "AdamW weight decay");
  cli::AddDouble(app, "--adam-epsilon", &o.adam_epsilon, "AdamW epsilon");
  cli::AddInt(app, "--seed", &o.seed, "seed of noise, timesteps, crops, class images");
  cli::AddParsed(app, "--mixed-precision", &o.mixed_precision, train::ParseMixedPrecision,
                 "no|fp16|bf16", "NAME", train::MixedPrecisionName(o.mixed_precision));
  cli::AddSwitch(app, "--gradient-checkpointing", &o.gradient_checkpointing, true,
                 "recompute UNet blocks in backward");
  cli::AddDouble(app, "--snr-gamma", &o.snr_gamma, "min-SNR gamma (0: off)");
  cli::AddDouble(app, "--offset-noise", &o.offset_noise, "offset-noise scale (0: off)");
  cli::AddDouble(app, "--caption-dropout", &o.caption_dropout,
                 "probability of training an image with the empty prompt");
  cli::AddSwitch(app, "--use-ema", &o.use_ema, true, "EMA of the UNet weights (exported)");
  cli::AddDouble(app, "--ema-decay", &o.ema_decay, "EMA decay");
  // Checkpoints, resume, validation.
  cli::AddString(app, "--output", &o.output_dir, "output folder")->required();
  cli::AddInt(app, "--checkpointing-steps", &o.checkpointing_steps,
              "checkpoint + resume state every N steps (0: only the final model)");
  cli::AddInt(app, "--checkpoints-total-limit", &o.checkpoints_total_limit,
              "sampleable checkpoints kept (0: all)");
  cli::AddInt(app, "--resume-states-to-keep", &o.resume_states_to_keep, "resume states kept");
  CLI::Option* resume = app.add_flag_callback(
      "--resume", [&o] { o.resume_from = "latest"; },
      "continue from the newest resume state in --output");
  cli::AddString(app, "--resume-from", &o.resume_from, "continue from this resume-state folder")
      ->excludes(resume);
  cli::AddRepeated(app, "--validation-prompt", &o.validation_prompts,
                   "validation prompt (repeatable)");
  cli::AddInt(app, "--validation-steps", &o.validation_steps, "validate every N steps");
  cli::AddInt(app, "--num-validation-images", &o.num_validation_images, "per prompt");
  AddSamplerOptions(app, "validation", o.validation_sampler);
  // LoRA (docs/lora.md).
  cli::AddSwitch(app, "--lora", &o.lora.enabled, true,
                 "train LoRA adapters instead of the whole model");
  cli::AddInt(app, "--lora-rank", &o.lora.rank, "adapter rank");
  cli::AddDouble(app, "--lora-alpha", &o.lora.alpha, "adapter alpha (0: the rank)");
  cli::AddDouble(app, "--lora-dropout", &o.lora.dropout, "dropout on the adapters' input");
  cli::AddRepeated(app, "--lora-target", lora_targets,
                   "UNet layer to adapt (repeatable; default to_q to_k to_v to_out.0)");
  cli::AddDouble(app, "--lora-lr", &o.lora.learning_rate, "the adapters' learning rate");
  // Data parallel (docs/distributed.md).
  cli::AddInt(app, "--world-size", &o.world_size, "ranks (processes) training this run", 1);
  cli::AddInt(app, "--rank", &o.rank, "this process's rank (default: start all ranks here)", 0)
      ->default_str("");
  cli::AddString(app, "--rendezvous", &o.rendezvous,
                 "host:port of rank 0's store (default with local ranks: a free loopback port)");
  cli::AddInt(app, "--collective-timeout-ms", &o.collective_timeout_ms,
              "a rank silent this long fails the run", int64_t{1});
  cli::AddString(app, "--collective-backend", &o.collective_backend,
                 "auto|ring|nccl: how ranks exchange gradients (auto: NCCL on CUDA when built "
                 "with it, else the TCP ring)");
  cli::AddSwitch(app, "--no-overlap-grad-reduction", &o.overlap_grad_reduction, false,
                 "average the gradients after backward instead of bucket by bucket during it");
  cli::AddSwitch(app, "--shard-preparation", &o.shard_preparation, true,
                 "the ranks share the class-image and latent caches (one machine or a shared "
                 "filesystem): each prepares 1/N of them (on by itself for local ranks)");
  // Runtime.
  cli::AddString(app, "--device", &o.device, "cpu | cuda | cuda:N");
  cli::AddInt(app, "--threads", &o.num_threads, "CPU threads (0: LibTorch's default)");
}

// This process's command line (/proc/self/cmdline).
int RunTrain(const TrainOptions& options) {
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  train::TrainCallbacks callbacks;
  callbacks.cancel = &g_cancel;
  callbacks.on_warning = [](const std::string& w) {
    std::fprintf(stderr, "warning: %s\n", w.c_str());
  };
  callbacks.on_progress = [](const train::TrainProgress& p) {
    if (p.stage == train::TrainStage::kTraining) {
      std::printf(
          "[%s] step %lld/%lld loss %.6f (instance %.6f prior %.6f) grad_norm %.4f lr %.3g "
          "%.2f img/s ETA %.0fs peak_rss %.1f MiB%s%s\n",
          train::TrainStageName(p.stage), static_cast<long long>(p.step),
          static_cast<long long>(p.total), p.loss, p.instance_loss, p.prior_loss, p.grad_norm, p.lr,
          p.images_per_second, p.eta_seconds, p.peak_rss_bytes / 1048576.0,
          p.message.empty() ? "" : " ", p.message.c_str());
    } else {
      std::printf("[%s] %lld/%lld %s\n", train::TrainStageName(p.stage),
                  static_cast<long long>(p.step), static_cast<long long>(p.total),
                  p.message.c_str());
    }
    std::fflush(stdout);
  };
  callbacks.on_checkpoint = [](const train::CheckpointEvent& e) {
    using Kind = train::CheckpointEvent::Kind;
    const char* kind = e.kind == Kind::kFinal           ? "final model"
                       : e.kind == Kind::kResumeState   ? "resume state"
                       : e.kind == Kind::kLoraDiffusers ? "LoRA (diffusers layout)"
                       : e.kind == Kind::kLoraKohya     ? "LoRA (kohya layout)"
                                                        : "checkpoint";
    std::printf("[CHECKPOINT] step %lld %s: %s (%zu validation images)\n",
                static_cast<long long>(e.step), kind, e.path.c_str(), e.validation_images.size());
    std::fflush(stdout);
  };

  auto trainer = train::DreamBoothTrainer::Create(options, callbacks);
  if (!trainer.ok()) {
    std::fprintf(stderr, "dbtool train: %s\n", std::string(trainer.status().ToString()).c_str());
    return 1;
  }
  absl::StatusOr<train::ClassImageSet> classes = (*trainer)->GenerateClassImages();
  if (classes.ok() && options.with_prior_preservation) {
    std::printf("class images: %zu (%d user, %d reused, %d generated) in %s\n",
                classes->paths.size(), classes->user_images, classes->reused, classes->generated,
                classes->store_dir.c_str());
  }
  absl::StatusOr<train::LatentCacheStats> cache =
      classes.ok() ? (*trainer)->PrepareLatents()
                   : absl::StatusOr<train::LatentCacheStats>(classes.status());
  if (cache.ok() && options.use_cached_latents) {
    std::printf("latent cache: %d hits, %d misses\n", cache->hits, cache->misses);
  }
  absl::StatusOr<train::TrainResult> result =
      cache.ok() ? (*trainer)->Train() : absl::StatusOr<train::TrainResult>(cache.status());
  if (!result.ok()) {
    std::fprintf(stderr, "dbtool train: %s\n", std::string(result.status().ToString()).c_str());
    return result.status().code() == absl::StatusCode::kCancelled ? 130 : 1;
  }
  std::printf("done: steps %lld..%lld, %.3f steps/s, peak RSS %.1f MiB, model in %s\n",
              static_cast<long long>(result->start_step), static_cast<long long>(result->end_step),
              result->steps_per_second, result->peak_rss_bytes / 1048576.0,
              result->final_model_dir.c_str());
  return 0;
}

// Runs rank 0 here and ranks 1.. as child processes; fails when any rank fails.
int RunLocalRanks(TrainOptions options) {
  std::error_code ec;
  std::filesystem::create_directories(options.output_dir, ec);
  if (options.rendezvous.empty()) {
    const int port = train::FreeLoopbackPort();
    if (port == 0) {
      std::fprintf(stderr, "dbtool train: no free loopback port for the rendezvous\n");
      return 1;
    }
    options.rendezvous = "127.0.0.1:" + std::to_string(port);
  }
  const std::vector<std::string> own = train::OwnCommandLine();
  std::vector<train::RankCommand> commands;
  for (int r = 1; r < options.world_size; ++r) {
    train::RankCommand command;
    command.rank = r;
    command.args.assign(own.begin() + (own.empty() ? 0 : 1), own.end());
    command.args.push_back("--rank=" + std::to_string(r));
    command.args.push_back("--rendezvous=" + options.rendezvous);
    if (!options.shard_preparation) command.args.push_back("--shard-preparation");
    command.log_path = options.output_dir + "/rank-" + std::to_string(r) + ".log";
    commands.push_back(std::move(command));
  }
  absl::StatusOr<train::LocalRanks> ranks = train::LocalRanks::Start(commands);
  if (!ranks.ok()) {
    std::fprintf(stderr, "dbtool train: %s\n", std::string(ranks.status().message()).c_str());
    return 1;
  }
  std::printf("data parallel: %d ranks, rendezvous %s, ranks 1..%d log to %s/rank-N.log\n",
              options.world_size, options.rendezvous.c_str(), options.world_size - 1,
              options.output_dir.c_str());
  options.rank = 0;
  options.shard_preparation = true;  // the local ranks share this machine's caches
  int code = RunTrain(options);
  if (code != 0) ranks->Signal(SIGTERM);
  if (absl::Status st = ranks->Wait(); code == 0 && !st.ok()) {
    std::fprintf(stderr, "dbtool train: %s\n", std::string(st.message()).c_str());
    code = 1;
  }
  return code;
}

Runner DeclareTrain(CLI::App& app) {
  auto options = std::make_shared<TrainOptions>();
  auto lora_targets = std::make_shared<std::vector<std::string>>();
  AddTrainOptions(app, *options, lora_targets.get());
  return [options, lora_targets, &app] {
    if (!lora_targets->empty()) options->lora.unet_targets = *lora_targets;
    if (options->world_size > 1 && app.count("--rank") == 0) return RunLocalRanks(*options);
    return RunTrain(*options);
  };
}

}  // namespace

DB_REGISTER_COMMAND({"train",
                     "DreamBooth fine-tune (prior preservation, class images, cached latents, "
                     "checkpoints, resume); train --help lists every option",
                     DeclareTrain});

}  // namespace dreambooth::dbtool
