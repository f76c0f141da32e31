// `dbtool pretrain-vae`: trains the VAE of a model folder from scratch on a folder of images
// (worker/pretrain/vae_trainer.h); resumable, Ctrl-C saves the state.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>

#include "common/cli_flags.h"
#include "tools/dbtool/command_registry.h"
#include "worker/pretrain/vae_trainer.h"

namespace dreambooth::dbtool {
namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop.store(true); }

int RunPretrainVae(const pretrain::VaeTrainOptions& o, int log_every) {
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  absl::StatusOr<pretrain::VaeTrainResult> result =
      pretrain::TrainVae(o, [log_every](const pretrain::VaeTrainProgress& p) {
        if (p.step % log_every == 0 || p.step == p.max_steps) {
          std::printf("[VAE] step %d/%d l1 %.5f kl %.4f %.1fs\n", p.step, p.max_steps, p.l1, p.kl,
                      p.seconds);
          std::fflush(stdout);
        }
        return !g_stop.load();
      });
  if (!result.ok()) {
    std::fprintf(stderr, "dbtool pretrain-vae: %s\n", result.status().ToString().c_str());
    return result.status().code() == absl::StatusCode::kCancelled ? 130 : 1;
  }
  std::printf("done: steps %d..%d, reconstruction PSNR %.2f dB, scaling_factor %.5f, model in %s\n",
              result->resumed_from, result->steps, result->psnr_db, result->scaling_factor,
              o.model_dir.c_str());
  return 0;
}

Runner DeclarePretrainVae(CLI::App& app) {
  auto o = std::make_shared<pretrain::VaeTrainOptions>();
  auto log_every = std::make_shared<int>(25);
  cli::AddString(app, "--model", &o->model_dir, "diffusers folder (its VAE is trained in place)")
      ->required();
  cli::AddString(app, "--image-dir", &o->image_dir, "training images")->required();
  cli::AddString(app, "--state-dir", &o->state_dir,
                 "resume state (default: <model>.vae-train beside the model)");
  cli::AddInt(app, "--max-images", &o->max_images, "images read from --image-dir");
  cli::AddInt(app, "--max-steps", &o->max_steps, "optimizer steps");
  cli::AddInt(app, "--batch-size", &o->batch_size, "crops per step");
  cli::AddInt(app, "--crop-size", &o->crop_size, "random crop size (0: whole images)");
  cli::AddDouble(app, "--learning-rate", &o->learning_rate, "AdamW learning rate");
  cli::AddInt(app, "--warmup-steps", &o->warmup_steps, "linear warmup steps");
  cli::AddDouble(app, "--kl-weight", &o->kl_weight, "KL weight per element");
  cli::AddInt(app, "--seed", &o->seed, "seed of crops and noise");
  cli::AddInt(app, "--checkpoint-every", &o->checkpoint_every, "steps between resume states");
  cli::AddString(app, "--device", &o->device, "cpu | cuda | cuda:N");
  cli::AddInt(app, "--threads", &o->num_threads, "CPU threads (0: LibTorch's default)");
  cli::AddInt(app, "--log-every", log_every.get(), "steps between progress lines");
  return [o, log_every] { return RunPretrainVae(*o, *log_every); };
}

}  // namespace

DB_REGISTER_COMMAND({"pretrain-vae",
                     "train a model folder's VAE from scratch on images (L1 + KL, random crops, "
                     "resumable) and measure its scaling factor",
                     DeclarePretrainVae});

}  // namespace dreambooth::dbtool
