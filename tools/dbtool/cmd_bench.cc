// `dbtool bench`: the standard speed measurements of tests/data/bench/README.md (UNet forward
// and forward+backward on the mid-size UNet, 25-step guided DDIM sampling on tiny-a) plus VAE
// encode/decode, one line per measurement with the median over repeated runs after warm-up.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/cli_flags.h"
#include "kernels/fused_kernels.h"
#include "tools/dbtool/bench_util.h"
#include "tools/dbtool/command_registry.h"
#include "tools/dbtool/sample_args.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/diffusion/models/attention.h"
#include "worker/diffusion/models/tiny_model.h"
#include "worker/diffusion/models/unet_2d_condition.h"
#include "worker/diffusion/pipelines/pipeline.h"

namespace dreambooth::dbtool {
namespace {

// Whether --only selects any of `names`.
bool Wanted(const BenchFlags& f, std::initializer_list<const char*> names) {
  return std::any_of(names.begin(), names.end(),
                     [&](const char* name) { return Selected(f, name); });
}

absl::Status BenchMidUNet(const BenchFlags& f) {
  if (!Wanted(f, {"unet_mid_fwd_b1", "unet_mid_fwd_b4", "unet_mid_fwd_bwd_b2"})) {
    return absl::OkStatus();
  }
  absl::StatusOr<diffusion::UNet2DConditionConfig> config =
      diffusion::UNet2DConditionConfig::FromFile(f.mid_config);
  if (!config.ok()) return config.status();
  diffusion::UNet2DConditionModel unet(*config);
  diffusion::InitializeRandomWeights(*unet, 1);
  unet->to(f.device, f.dtype);
  ApplyMemoryFormat(f, *unet);
  unet->set_attention_options(f.attention);
  const int64_t latent = config->sample_size;
  const int64_t cross = config->CrossAttentionDim(0);
  at::manual_seed(0);
  const auto on = at::TensorOptions().device(f.device).dtype(f.dtype);
  const at::Tensor t = at::tensor({500}, at::kLong).to(f.device);
  for (int64_t batch : {1, 4}) {
    const at::Tensor x =
        InMemoryFormat(f, at::randn({batch, config->in_channels, latent, latent}, on));
    const at::Tensor ctx = at::randn({batch, 77, cross}, on);
    unet->eval();
    Measure(f, "unet_mid_fwd_b" + std::to_string(batch), [&] {
      at::NoGradGuard no_grad;
      unet->forward(x, t, ctx);
    });
  }
  const at::Tensor x = InMemoryFormat(f, at::randn({2, config->in_channels, latent, latent}, on));
  const at::Tensor ctx = at::randn({2, 77, cross}, on);
  const at::Tensor target = at::randn({2, config->out_channels, latent, latent}, on);
  unet->train();
  Measure(f, "unet_mid_fwd_bwd_b2", [&] {
    unet->zero_grad();
    at::mse_loss(unet->forward(x, t, ctx), target).backward();
  });
  return absl::OkStatus();
}

absl::Status BenchTinyA(const BenchFlags& f) {
  if (!Wanted(f, {"sample_tiny_ddim25_cfg_64px", "vae_tiny_encode_64px", "vae_tiny_decode_64px"})) {
    return absl::OkStatus();
  }
  diffusion::LoadOptions load;
  load.device = f.device;
  load.dtype = f.dtype;
  absl::StatusOr<diffusion::StableDiffusion> model = diffusion::LoadStableDiffusion(f.tiny_a, load);
  if (!model.ok()) return model.status();
  model->unet->set_attention_options(f.attention);
  diffusion::SetAttentionOptions(*model->vae, f.attention);
  diffusion::Text2ImageOptions options;
  options.prompts = {"a photo of a sks dog"};
  options.steps = 25;
  options.guidance = 7.5;
  options.scheduler = "ddim";
  options.width = 64;
  options.height = 64;
  options.cuda_graphs = f.cuda_graphs;
  // tiny-a's text encoder has a 1000-id vocabulary: use synthetic ids shaped like a prompt
  // (BOS 998, body, EOS/pad 999), as its goldens do.
  at::Tensor ids = at::full({1, 77}, 999, at::kLong);
  ids[0][0] = 998;
  for (int64_t i = 1; i <= 6; ++i) ids[0][i] = 10 * i;
  at::Tensor neg = at::full({1, 77}, 999, at::kLong);
  neg[0][0] = 998;
  options.prompt_ids = ids;
  options.negative_prompt_ids = neg;
  absl::Status failure;
  Measure(f, "sample_tiny_ddim25_cfg_64px", [&] {
    absl::StatusOr<diffusion::Text2ImageResult> r = diffusion::Text2Image(*model, options);
    if (!r.ok()) failure = r.status();
  });
  if (!failure.ok()) return failure;
  at::manual_seed(0);
  const at::Tensor image = (at::rand({1, 3, 64, 64}) * 2 - 1).to(f.device, f.dtype);
  const at::Tensor latents = at::randn({1, 4, 32, 32}).to(f.device, f.dtype);
  at::NoGradGuard no_grad;
  Measure(f, "vae_tiny_encode_64px", [&] { model->vae->Encode(image); });
  Measure(f, "vae_tiny_decode_64px", [&] { model->vae->Decode(latents); });
  return absl::OkStatus();
}

// Each attention backend alone on the shapes the UNets and VAEs attend over (batch 2 = CFG or
// instance + class, 8 heads): forward without grad (sampling) and forward + backward (training).
// Selected with --only attention; not part of the default run.
absl::Status BenchAttention(const BenchFlags& f) {
  if (f.only.empty() || std::string("attention").find(f.only) == std::string::npos) {
    return absl::OkStatus();
  }
  struct Shape {
    const char* what;
    int64_t n, d;
  };
  const Shape shapes[] = {{"tiny 32x32", 1024, 4},  {"mid 32x32", 1024, 16},
                          {"mid 16x16", 256, 32},   {"sd15 64x64", 4096, 40},
                          {"sd15 32x32", 1024, 80}, {"sd15 16x16", 256, 160}};
  const auto on = at::TensorOptions().device(f.device).dtype(f.dtype);
  for (const Shape& s : shapes) {
    at::manual_seed(0);
    const at::Tensor q = at::randn({2, 8, s.n, s.d}, on);
    const at::Tensor k = at::randn({2, 8, s.n, s.d}, on);
    const at::Tensor v = at::randn({2, 8, s.n, s.d}, on);
    const double scale = 1.0 / std::sqrt(static_cast<double>(s.d));
    for (diffusion::AttentionBackend b :
         {diffusion::AttentionBackend::kMath, diffusion::AttentionBackend::kChunked,
          diffusion::AttentionBackend::kSliced, diffusion::AttentionBackend::kSdpa,
          diffusion::AttentionBackend::kAuto}) {
      BenchFlags g = f;
      g.attention.backend = b;
      g.only.clear();
      const std::string tag = absl::StrCat("attn ", s.what, " N=", s.n, " D=", s.d);
      Measure(g, tag + " fwd", [&] {
        at::NoGradGuard no_grad;
        diffusion::ScaledDotProductAttention(q, k, v, scale, g.attention);
      });
      const at::Tensor qg = q.detach().requires_grad_(true);
      Measure(g, tag + " fwd+bwd", [&] {
        diffusion::ScaledDotProductAttention(qg, k, v, scale, g.attention).sum().backward();
        qg.mutable_grad() = at::Tensor();
      });
    }
  }
  return absl::OkStatus();
}

int RunBench(const BenchFlags& flags, const std::optional<kernels::FusedKernels>& fused) {
  if (fused) kernels::SetFusedKernels(*fused);
  if (flags.threads > 0) at::set_num_threads(static_cast<int>(flags.threads));
  for (const auto& bench : {BenchMidUNet, BenchTinyA, BenchAttention, BenchSd15}) {
    try {
      if (absl::Status st = bench(flags); !st.ok()) {
        std::fprintf(stderr, "dbtool bench: %s\n", std::string(st.message()).c_str());
        return 1;
      }
    } catch (const c10::Error& e) {
      std::fprintf(stderr, "dbtool bench: %s\n", e.what_without_backtrace());
      return 1;
    }
  }
  return 0;
}

Runner DeclareBench(CLI::App& app) {
  auto f = std::make_shared<BenchFlags>();
  auto fused = std::make_shared<std::optional<kernels::FusedKernels>>();
  AddDeviceOption(app, &f->device);
  AddDtypeOption(app, &f->dtype);
  AddThreadsOption(app, &f->threads);
  cli::AddInt(app, "--repeats", &f->repeats, "timed runs per measurement (the median is shown)",
              int64_t{1});
  cli::AddInt(app, "--warmup", &f->warmup, "untimed runs first", int64_t{0});
  cli::AddString(app, "--only", &f->only,
                 "measurements whose name contains this; 'attention' and 'sd15' select suites "
                 "that the default run skips");
  cli::AddDouble(app, "--peak-tflops", &f->peak_tflops,
                 "the device's peak for --dtype, to print the fraction reached (0: unknown)");
  cli::AddSwitch(app, "--channels-last", &f->channels_last, true,
                 "UNet weights and inputs in channels_last");
  AddAttentionOption(app, &f->attention.backend);
  cli::AddInt(app, "--chunk", &f->attention.query_chunk_size,
              "query rows per block of the chunked attention", int64_t{1});
  AddFusedKernelsOption(app, fused.get());
  cli::AddSwitch(app, "--cuda-graphs", &f->cuda_graphs, true,
                 "sampling replays the UNet as a CUDA graph (CUDA only)");
  cli::AddString(app, "--mid-config", &f->mid_config, "config.json of the mid-size UNet");
  cli::AddString(app, "--tiny-a", &f->tiny_a, "the tiny-a fixture folder");
  return [f, fused] { return RunBench(*f, *fused); };
}

DB_REGISTER_COMMAND({"bench", "Time UNet forward/backward, guided sampling and VAE encode/decode.",
                     DeclareBench});

}  // namespace
}  // namespace dreambooth::dbtool
