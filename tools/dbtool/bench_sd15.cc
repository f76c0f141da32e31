// `dbtool bench --only sd15`: the SD 1.5-size UNet (random weights) at 512x512, the GPU
// benchmark of the service: forward b1/b4, forward+backward b2, a DreamBooth step 1+1 and 50
// guided DDIM steps, each with FLOPs per step, TFLOP/s and peak memory.
#include <ATen/ATen.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tools/dbtool/bench_util.h"
#include "worker/diffusion/device.h"
#include "worker/diffusion/models/sd15_config.h"
#include "worker/diffusion/models/tiny_model.h"
#include "worker/diffusion/models/unet_2d_condition.h"
#include "worker/diffusion/pipelines/cuda_graph_unet.h"
#include "worker/diffusion/schedulers/scheduler.h"
#include "worker/train/adamw.h"
#include "worker/train/dreambooth_loss.h"
#include "worker/train/precision.h"

namespace dreambooth::dbtool {
namespace {

constexpr int64_t kLatent = 64;  // 512x512 images
constexpr int64_t kTokens = 77;
constexpr int64_t kCross = 768;

void PrintPeak(const BenchFlags& f, const std::string& name) {
  std::printf("%-28s peak memory %.2f GiB (%s)\n", name.c_str(),
              diffusion::PeakMemoryBytes(f.device) / (1024.0 * 1024.0 * 1024.0),
              f.device.is_cuda() ? "CUDA allocator" : "process peak RSS");
}

// FLOPs of one forward of `unet` on batch `b`, counted with the math attention path (the
// profiler counts its matrix products; fused kernels have no FLOP formula).
double ForwardFlops(diffusion::UNet2DConditionModel& unet, const BenchFlags& f, int64_t b) {
  const auto on = at::TensorOptions().device(f.device).dtype(f.dtype);
  const at::Tensor x = at::randn({b, 4, kLatent, kLatent}, on);
  const at::Tensor ctx = at::randn({b, kTokens, kCross}, on);
  const at::Tensor t = at::full({b}, 500, at::TensorOptions().dtype(at::kLong).device(f.device));
  diffusion::AttentionOptions math;
  math.backend = diffusion::AttentionBackend::kMath;
  unet->set_attention_options(math);
  at::NoGradGuard no_grad;
  const double flops = CountFlops([&] { unet->forward(x, t, ctx); });
  unet->set_attention_options(f.attention);
  return flops;
}

absl::Status BenchInference(const BenchFlags& f, const diffusion::UNet2DConditionConfig& config) {
  diffusion::UNet2DConditionModel unet(config);
  diffusion::InitializeRandomWeights(*unet, 1);
  unet->to(f.device, f.dtype);
  ApplyMemoryFormat(f, *unet);
  unet->eval();
  unet->set_attention_options(f.attention);
  const auto on = at::TensorOptions().device(f.device).dtype(f.dtype);
  const at::Tensor t = at::full({1}, 500, at::TensorOptions().dtype(at::kLong).device(f.device));
  for (int64_t b : {1, 4}) {
    const std::string name = absl::StrCat("sd15_unet_fwd_b", b);
    if (!Selected(f, name)) continue;
    const at::Tensor x = InMemoryFormat(f, at::randn({b, 4, kLatent, kLatent}, on));
    const at::Tensor ctx = at::randn({b, kTokens, kCross}, on);
    const double flops = ForwardFlops(unet, f, b);
    diffusion::ResetPeakMemory(f.device);
    Measure(
        f, name,
        [&] {
          at::NoGradGuard no_grad;
          unet->forward(x, t.expand({b}), ctx);
        },
        flops);
    PrintPeak(f, name);
  }
  if (Selected(f, "sd15_sample_ddim50_cfg")) {
    // 50 DDIM steps with classifier-free guidance 7.5 on a batch of 1 (UNet batch 2); text
    // encoding and VAE decoding are not included.
    diffusion::SchedulerConfig sc;
    sc.beta_schedule = "scaled_linear";
    sc.beta_start = 0.00085;
    sc.beta_end = 0.012;
    sc.steps_offset = 1;
    const at::Tensor ctx = at::randn({2, kTokens, kCross}, on);
    const double flops = 50 * ForwardFlops(unet, f, 2);
    absl::Status failure;
    diffusion::ResetPeakMemory(f.device);
    Measure(
        f, "sd15_sample_ddim50_cfg",
        [&] {
          at::NoGradGuard no_grad;
          absl::StatusOr<std::unique_ptr<diffusion::Scheduler>> s =
              diffusion::CreateScheduler("ddim", sc);
          if (!s.ok() || !(*s)->SetTimesteps(50).ok()) {
            failure = absl::InternalError("cannot set up the DDIM scheduler");
            return;
          }
          at::Tensor latents = at::randn({1, 4, kLatent, kLatent}).to(f.device);
          std::unique_ptr<diffusion::CudaGraphUNet> graph;
          if (f.cuda_graphs) graph = std::make_unique<diffusion::CudaGraphUNet>(unet);
          const at::Tensor timesteps = (*s)->timesteps();
          for (int64_t i = 0; i < timesteps.size(0); ++i) {
            const at::Tensor step_t = timesteps[i];
            at::Tensor in = at::cat({latents, latents}).to(f.dtype);
            at::Tensor eps;
            if (graph != nullptr) {
              absl::StatusOr<at::Tensor> out = graph->Forward(in, step_t.expand({2}), ctx);
              if (!out.ok()) {
                failure = out.status();
                return;
              }
              eps = out->to(at::kFloat);
            } else {
              eps = unet->forward(in, step_t.to(f.device).expand({2}), ctx).to(at::kFloat);
            }
            const std::vector<at::Tensor> parts = eps.chunk(2);
            const at::Tensor guided = parts[0] + 7.5 * (parts[1] - parts[0]);
            absl::StatusOr<diffusion::SchedulerStepOutput> out =
                (*s)->Step(guided, step_t, latents);
            if (!out.ok()) {
              failure = out.status();
              return;
            }
            latents = out->prev_sample;
          }
        },
        flops);
    if (!failure.ok()) return failure;
    PrintPeak(f, "sd15_sample_ddim50_cfg");
  }
  return absl::OkStatus();
}

absl::Status BenchTraining(const BenchFlags& f, const diffusion::UNet2DConditionConfig& config) {
  if (!Selected(f, "sd15_unet_fwd_bwd_b2") && !Selected(f, "sd15_dreambooth_step")) {
    return absl::OkStatus();
  }
  // Float32 master weights; --dtype other than float32 runs the forward under autocast, as
  // mixed-precision training does.
  diffusion::UNet2DConditionModel unet(config);
  diffusion::InitializeRandomWeights(*unet, 1);
  unet->to(f.device);
  ApplyMemoryFormat(f, *unet);
  unet->set_attention_options(f.attention);
  const bool autocast = f.dtype != at::kFloat;
  const auto on = at::TensorOptions().device(f.device).dtype(at::kFloat);
  // Backward costs about twice the forward: 3x the forward's FLOPs per step.
  double flops = 0;
  {
    BenchFlags fp32 = f;
    fp32.dtype = at::kFloat;
    unet->eval();
    flops = 3 * ForwardFlops(unet, fp32, 2);
  }
  unet->train();
  const at::Tensor x = InMemoryFormat(f, at::randn({2, 4, kLatent, kLatent}, on));
  const at::Tensor ctx = at::randn({2, kTokens, kCross}, on);
  const at::Tensor target = at::randn({2, 4, kLatent, kLatent}, on);
  const at::Tensor t = at::full({2}, 500, at::TensorOptions().dtype(at::kLong).device(f.device));
  diffusion::ResetPeakMemory(f.device);
  Measure(
      f, "sd15_unet_fwd_bwd_b2",
      [&] {
        unet->zero_grad();
        at::Tensor loss;
        {
          train::AutocastScope scope(autocast, f.device.type(), f.dtype);
          loss = at::mse_loss(unet->forward(x, t, ctx).to(at::kFloat), target);
        }
        loss.backward();
      },
      flops);
  PrintPeak(f, "sd15_unet_fwd_bwd_b2");

  absl::StatusOr<diffusion::DdpmTrainingSchedule> schedule =
      diffusion::DdpmTrainingSchedule::Create(diffusion::SchedulerConfig{});
  if (!schedule.ok()) return schedule.status();
  std::vector<std::pair<std::string, at::Tensor>> params;
  for (const auto& item : unet->named_parameters()) params.emplace_back(item.key(), item.value());
  train::AdamW opt({train::AdamWParamGroup{params, train::AdamWOptions{}}});
  train::DreamBoothLossOptions lo;
  lo.with_prior_preservation = true;
  absl::Status failure;
  diffusion::ResetPeakMemory(f.device);
  const double ms = Measure(
      f, "sd15_dreambooth_step",
      [&] {
        train::DreamBoothStepInputs in;
        in.latents = at::randn({2, 4, kLatent, kLatent}, on);
        in.noise = at::randn({2, 4, kLatent, kLatent}, on);
        in.timesteps =
            at::randint(0, 1000, {2}, at::TensorOptions().dtype(at::kLong).device(f.device));
        in.encoder_hidden_states = ctx;
        absl::StatusOr<train::DreamBoothLossOutput> out;
        {
          train::AutocastScope scope(autocast, f.device.type(), f.dtype);
          out = train::ComputeDreamBoothLoss(unet, *schedule, in, lo);
        }
        if (!out.ok()) {
          failure = out.status();
          return;
        }
        out->loss.backward();
        opt.Step();
        opt.ZeroGrad();
      },
      flops);
  if (!failure.ok()) return failure;
  if (ms > 0) std::printf("%-28s %.3f steps/s\n", "sd15_dreambooth_step", 1000.0 / ms);
  PrintPeak(f, "sd15_dreambooth_step");
  return absl::OkStatus();
}

}  // namespace

absl::Status BenchSd15(const BenchFlags& f) {
  if (f.only.rfind("sd15", 0) != 0) return absl::OkStatus();  // only on request: slow on CPU
  const diffusion::UNet2DConditionConfig config = diffusion::Sd15UNetConfig();
  if (absl::Status st = BenchInference(f, config); !st.ok()) return st;
  return BenchTraining(f, config);
}

}  // namespace dreambooth::dbtool
