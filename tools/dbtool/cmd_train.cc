// `dbtool train`: a DreamBooth fine-tune from local folders, without the server. Every option of
// the job spec (proto/dreambooth/v1/job_spec.proto) has a flag; progress is printed one line per
// event.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tools/dbtool/command_registry.h"
#include "worker/train/dreambooth_trainer.h"

namespace dreambooth::dbtool {
namespace {

using train::TrainOptions;

std::atomic<bool> g_cancel{false};

void OnSignal(int) { g_cancel.store(true); }

struct Flag {
  bool takes_value;
  std::string help;
  std::function<absl::Status(TrainOptions&, const std::string&)> set;
};

template <typename T>
absl::Status ParseNumber(const std::string& flag, const std::string& text, T* out) {
  bool ok = false;
  if constexpr (std::is_same_v<T, double>) {
    ok = absl::SimpleAtod(text, out);
  } else if constexpr (std::is_same_v<T, uint64_t>) {
    ok = absl::SimpleAtoi(text, out);
  } else {
    ok = absl::SimpleAtoi(text, out);
  }
  if (!ok) return absl::InvalidArgumentError(absl::StrCat(flag, ": not a number: '", text, "'"));
  return absl::OkStatus();
}

// Flag table: --name -> how it sets TrainOptions.
std::map<std::string, Flag> Flags() {
  std::map<std::string, Flag> f;
  auto str = [&](const std::string& name, std::string TrainOptions::*field, std::string help) {
    f[name] = {true, std::move(help), [field](TrainOptions& o, const std::string& v) {
                 o.*field = v;
                 return absl::OkStatus();
               }};
  };
  auto num = [&](const std::string& name, auto TrainOptions::*field, std::string help) {
    f[name] = {true, std::move(help), [name, field](TrainOptions& o, const std::string& v) {
                 return ParseNumber(name, v, &(o.*field));
               }};
  };
  auto on = [&](const std::string& name, bool TrainOptions::*field, bool value, std::string help) {
    f[name] = {false, std::move(help), [field, value](TrainOptions& o, const std::string&) {
                 o.*field = value;
                 return absl::OkStatus();
               }};
  };
  auto sampler = [&](const std::string& prefix, train::SamplerOptions TrainOptions::*s) {
    f["--" + prefix + "-scheduler"] = {true,
                                       "sampler: ddim|pndm|euler|euler_ancestral|dpmpp_2m|ddpm",
                                       [s](TrainOptions& o, const std::string& v) {
                                         (o.*s).scheduler = v;
                                         return absl::OkStatus();
                                       }};
    f["--" + prefix + "-inference-steps"] = {
        true, "denoising steps", [s, prefix](TrainOptions& o, const std::string& v) {
          return ParseNumber("--" + prefix + "-inference-steps", v, &(o.*s).num_inference_steps);
        }};
    f["--" + prefix + "-guidance-scale"] = {
        true, "classifier-free guidance", [s, prefix](TrainOptions& o, const std::string& v) {
          return ParseNumber("--" + prefix + "-guidance-scale", v, &(o.*s).guidance_scale);
        }};
    f["--" + prefix + "-negative-prompt"] = {true, "negative prompt",
                                             [s](TrainOptions& o, const std::string& v) {
                                               (o.*s).negative_prompt = v;
                                               return absl::OkStatus();
                                             }};
    f["--" + prefix + "-eta"] = {true, "DDIM eta",
                                 [s, prefix](TrainOptions& o, const std::string& v) {
                                   return ParseNumber("--" + prefix + "-eta", v, &(o.*s).eta);
                                 }};
  };
  str("--base-model", &TrainOptions::base_model, "tiny | diffusers folder | .safetensors file");
  str("--variant", &TrainOptions::base_model_variant, "weight variant to prefer, e.g. fp16");
  str("--instance-dir", &TrainOptions::instance_dir, "folder of instance images (+ .txt captions)");
  str("--instance-prompt", &TrainOptions::instance_prompt, "e.g. \"a photo of sks dog\"");
  on("--with-prior-preservation", &TrainOptions::with_prior_preservation, true,
     "add the class-prior preservation loss");
  num("--prior-loss-weight", &TrainOptions::prior_loss_weight, "weight of the prior loss (0.5)");
  str("--class-prompt", &TrainOptions::class_prompt, "e.g. \"a photo of a dog\"");
  str("--class-dir", &TrainOptions::class_dir, "user-supplied class images (optional)");
  num("--num-class-images", &TrainOptions::num_class_images, "class images to train with (10)");
  num("--num-images-per-prompt", &TrainOptions::num_images_per_prompt,
      "class-generation batch (4)");
  sampler("class", &TrainOptions::class_sampler);
  str("--class-cache-dir", &TrainOptions::class_cache_dir, "generated class-image store");
  num("--resolution", &TrainOptions::resolution, "square resolution, multiple of 8 (512)");
  on("--center-crop", &TrainOptions::center_crop, true, "center crop (default)");
  on("--random-crop", &TrainOptions::center_crop, false, "random crop (needs --no-cached-latents)");
  on("--random-flip", &TrainOptions::random_flip, true, "random horizontal flip");
  on("--use-cached-latents", &TrainOptions::use_cached_latents, true, "latent cache (default)");
  on("--no-cached-latents", &TrainOptions::use_cached_latents, false, "encode every step");
  str("--latent-cache-dir", &TrainOptions::latent_cache_dir, "latent cache folder");
  on("--train-text-encoder", &TrainOptions::train_text_encoder, true, "fine-tune CLIP too");
  num("--text-encoder-learning-rate", &TrainOptions::text_encoder_learning_rate,
      "text-encoder LR (default: --learning-rate)");
  on("--no-precompute-text-embeddings", &TrainOptions::precompute_text_embeddings, false,
     "run the frozen text encoder every step");
  num("--max-train-steps", &TrainOptions::max_train_steps, "optimizer steps (400)");
  num("--learning-rate", &TrainOptions::learning_rate, "peak learning rate (1e-6)");
  f["--lr-scheduler"] = {true,
                         "constant|constant_with_warmup|linear|cosine|cosine_with_restarts|"
                         "polynomial",
                         [](TrainOptions& o, const std::string& v) -> absl::Status {
                           absl::StatusOr<train::LrScheduleType> t = train::ParseLrScheduleType(v);
                           if (!t.ok()) return t.status();
                           o.lr_scheduler = *t;
                           return absl::OkStatus();
                         }};
  num("--lr-warmup-steps", &TrainOptions::lr_warmup_steps, "linear warmup steps (0)");
  num("--lr-num-cycles", &TrainOptions::lr_num_cycles, "cosine_with_restarts cycles (1)");
  num("--lr-power", &TrainOptions::lr_power, "polynomial power (1)");
  num("--train-batch-size", &TrainOptions::train_batch_size, "instance images per step (1)");
  num("--gradient-accumulation-steps", &TrainOptions::gradient_accumulation_steps,
      "micro-batches per step (1)");
  num("--max-grad-norm", &TrainOptions::max_grad_norm, "clip norm, 0 = off (1.0)");
  num("--adam-beta1", &TrainOptions::adam_beta1, "(0.9)");
  num("--adam-beta2", &TrainOptions::adam_beta2, "(0.999)");
  num("--adam-weight-decay", &TrainOptions::adam_weight_decay, "(0)");
  num("--adam-epsilon", &TrainOptions::adam_epsilon, "(1e-8)");
  num("--seed", &TrainOptions::seed, "seed of noise, timesteps, crops, class images (0)");
  f["--mixed-precision"] = {
      true, "no|fp16|bf16", [](TrainOptions& o, const std::string& v) -> absl::Status {
        absl::StatusOr<train::MixedPrecision> m = train::ParseMixedPrecision(v);
        if (!m.ok()) return m.status();
        o.mixed_precision = *m;
        return absl::OkStatus();
      }};
  on("--gradient-checkpointing", &TrainOptions::gradient_checkpointing, true,
     "recompute UNet blocks in backward");
  num("--snr-gamma", &TrainOptions::snr_gamma, "min-SNR gamma, 0 = off");
  num("--offset-noise", &TrainOptions::offset_noise, "offset-noise scale, 0 = off");
  on("--use-ema", &TrainOptions::use_ema, true, "EMA of the UNet weights (exported)");
  num("--ema-decay", &TrainOptions::ema_decay, "(0.9999)");
  str("--output", &TrainOptions::output_dir, "output folder");
  num("--checkpointing-steps", &TrainOptions::checkpointing_steps,
      "checkpoint + resume state every N steps (200)");
  num("--checkpoints-total-limit", &TrainOptions::checkpoints_total_limit,
      "sampleable checkpoints kept, 0 = all");
  num("--resume-states-to-keep", &TrainOptions::resume_states_to_keep, "resume states kept (2)");
  f["--resume"] = {false, "continue from the newest resume state in --output",
                   [](TrainOptions& o, const std::string&) {
                     o.resume_from = "latest";
                     return absl::OkStatus();
                   }};
  str("--resume-from", &TrainOptions::resume_from, "continue from this resume-state folder");
  f["--validation-prompt"] = {true, "validation prompt (repeatable)",
                              [](TrainOptions& o, const std::string& v) {
                                o.validation_prompts.push_back(v);
                                return absl::OkStatus();
                              }};
  num("--validation-steps", &TrainOptions::validation_steps, "validate every N steps (100)");
  num("--num-validation-images", &TrainOptions::num_validation_images, "per prompt (1)");
  sampler("validation", &TrainOptions::validation_sampler);
  str("--device", &TrainOptions::device, "cpu | cuda | cuda:N");
  num("--threads", &TrainOptions::num_threads, "CPU threads (0 = LibTorch default)");
  return f;
}

void PrintHelp(const std::map<std::string, Flag>& flags) {
  std::printf(
      "usage: dbtool train --base-model M --instance-dir DIR --instance-prompt P --output DIR "
      "[options]\n\n");
  for (const auto& [name, flag] : flags) {
    std::printf("  %-36s %s\n", (name + (flag.takes_value ? " V" : "")).c_str(), flag.help.c_str());
  }
}

int RunTrain(const std::vector<std::string>& args) {
  const std::map<std::string, Flag> flags = Flags();
  TrainOptions options;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string name = args[i];
    if (name == "--help" || name == "-h") {
      PrintHelp(flags);
      return 0;
    }
    std::string value;
    bool has_inline = false;
    if (const size_t eq = name.find('='); eq != std::string::npos && name.rfind("--", 0) == 0) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_inline = true;
    }
    auto it = flags.find(name);
    if (it == flags.end()) {
      std::fprintf(stderr, "dbtool train: unknown option '%s' (see --help)\n", name.c_str());
      return 2;
    }
    if (it->second.takes_value && !has_inline) {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "dbtool train: %s needs a value\n", name.c_str());
        return 2;
      }
      value = args[++i];
    }
    if (absl::Status st = it->second.set(options, value); !st.ok()) {
      std::fprintf(stderr, "dbtool train: %s\n", std::string(st.message()).c_str());
      return 2;
    }
  }

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
    const char* kind = e.kind == train::CheckpointEvent::Kind::kFinal         ? "final model"
                       : e.kind == train::CheckpointEvent::Kind::kResumeState ? "resume state"
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

}  // namespace

DB_REGISTER_COMMAND({"train",
                     "train --base-model M --instance-dir DIR --instance-prompt P --output DIR ...",
                     "DreamBooth fine-tune (prior preservation, class images, cached latents, "
                     "checkpoints, resume); --help lists every option",
                     RunTrain});

}  // namespace dreambooth::dbtool
