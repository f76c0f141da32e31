// `dbtool train-classifier`: trains the toy world's attribute classifier on fresh renders
// (evaluation/attribute_classifier.h) and reports its held-out accuracy.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>

#include "common/cli_flags.h"
#include "common/status_macros.h"
#include "evaluation/attribute_classifier.h"
#include "evaluation/vae_round_trip.h"
#include "tools/dbtool/command_registry.h"
#include "worker/diffusion/io/builtin_models.h"

namespace dreambooth::dbtool {
namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop.store(true); }

void PrintAccuracy(const char* what, const evaluation::Accuracy& a) {
  std::printf("%s on %d renders: shape %.4f colour %.4f pattern %.4f background %.4f all %.4f\n",
              what, a.count, a.shape, a.colour, a.pattern, a.background, a.all);
}

// Held-out accuracy of the weights in `path` on renders passed through the VAE round trip.
absl::StatusOr<evaluation::Accuracy> RoundTripAccuracy(
    const std::string& path, const evaluation::ClassifierTrainOptions& o) {
  ASSIGN_OR_RETURN(evaluation::AttributeClassifier model,
                   evaluation::LoadAttributeClassifier(path));
  ASSIGN_OR_RETURN(evaluation::VaeRoundTrip round_trip,
                   evaluation::VaeRoundTrip::Load(o.round_trip_model, o.round_trip_max_noise));
  return evaluation::HeldOutAccuracy(model, o.held_out_count, &round_trip);
}

int PrintRoundTripAccuracy(const char* what, const std::string& path,
                           const evaluation::ClassifierTrainOptions& o) {
  absl::StatusOr<evaluation::Accuracy> acc = RoundTripAccuracy(path, o);
  if (!acc.ok()) {
    std::fprintf(stderr, "dbtool train-classifier: %s\n", acc.status().ToString().c_str());
    return 1;
  }
  PrintAccuracy(what, *acc);
  return 0;
}

int RunTrainClassifier(const evaluation::ClassifierTrainOptions& o, int log_every) {
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  if (!o.init_path.empty() && !o.round_trip_model.empty() &&
      PrintRoundTripAccuracy("before: held-out accuracy through the VAE round trip", o.init_path,
                             o) != 0) {
    return 1;
  }
  absl::StatusOr<evaluation::Accuracy> acc = evaluation::TrainAttributeClassifier(
      o, [log_every](const evaluation::ClassifierTrainProgress& p) {
        if (p.step % log_every == 0 || p.step == p.steps) {
          std::printf("[CLASSIFIER] step %d/%d loss %.4f batch all-right %.3f %.1fs\n", p.step,
                      p.steps, p.loss, p.batch_all, p.seconds);
          std::fflush(stdout);
        }
        return !g_stop.load();
      });
  if (!acc.ok()) {
    std::fprintf(stderr, "dbtool train-classifier: %s\n", acc.status().ToString().c_str());
    return acc.status().code() == absl::StatusCode::kCancelled ? 130 : 1;
  }
  PrintAccuracy("held-out accuracy", *acc);
  if (!o.round_trip_model.empty() &&
      PrintRoundTripAccuracy("held-out accuracy through the VAE round trip", o.out_path, o) != 0) {
    return 1;
  }
  std::printf("weights in %s\n", o.out_path.c_str());
  return 0;
}

Runner DeclareTrainClassifier(CLI::App& app) {
  auto o = std::make_shared<evaluation::ClassifierTrainOptions>();
  auto log_every = std::make_shared<int>(50);
  o->out_path = diffusion::ToyClassifierPath();
  cli::AddString(app, "--out", &o->out_path, "weights file to write");
  cli::AddString(app, "--init", &o->init_path, "continue from these weights (default: random)");
  cli::AddInt(app, "--steps", &o->steps, "optimizer steps");
  cli::AddInt(app, "--batch-size", &o->batch_size, "renders per step");
  cli::AddDouble(app, "--learning-rate", &o->learning_rate, "peak AdamW learning rate");
  cli::AddInt(app, "--seed", &o->seed, "seed of the weights and the training renders");
  cli::AddInt(app, "--held-out", &o->held_out_count, "held-out renders to measure accuracy on");
  cli::AddInt(app, "--threads", &o->num_threads, "CPU threads (0: LibTorch's default)");
  cli::AddInt(app, "--log-every", log_every.get(), "steps between progress lines");
  cli::AddString(app, "--round-trip-model", &o->round_trip_model,
                 "also train on renders passed through this model's VAE with latent noise "
                 "(e.g. toy), and report the held-out accuracy on such images");
  cli::AddInt(app, "--round-trip-per-batch", &o->round_trip_per_batch,
              "images of each batch that take the VAE round trip");
  cli::AddDouble(app, "--round-trip-noise", &o->round_trip_max_noise,
                 "largest latent noise std of the round trip (scaled latent units)");
  return [o, log_every] { return RunTrainClassifier(*o, *log_every); };
}

}  // namespace

DB_REGISTER_COMMAND({"train-classifier",
                     "train the toy world's attribute classifier (the evaluator of dbtool eval) "
                     "on fresh renders",
                     DeclareTrainClassifier});

}  // namespace dreambooth::dbtool
