#include "tools/dbtool/bench_util.h"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "kernels/fused_kernels.h"

namespace dreambooth::dbtool {

void Sync(const BenchFlags& f) {
  if (f.device.is_cuda()) torch::cuda::synchronize(f.device.index());
}

void ApplyMemoryFormat(const BenchFlags& f, torch::nn::Module& module) {
  if (!f.channels_last) return;
  at::NoGradGuard no_grad;
  for (at::Tensor& p : module.parameters()) {
    if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
  }
}

at::Tensor InMemoryFormat(const BenchFlags& f, const at::Tensor& t) {
  return f.channels_last && t.dim() == 4 ? t.contiguous(at::MemoryFormat::ChannelsLast) : t;
}

bool Selected(const BenchFlags& f, const std::string& name) {
  return f.only.empty() || name.find(f.only) != std::string::npos;
}

double Measure(const BenchFlags& f, const std::string& name, const std::function<void()>& fn,
               double flops) {
  if (!Selected(f, name)) return 0;
  for (int64_t i = 0; i < f.warmup; ++i) fn();
  Sync(f);
  std::vector<double> ms;
  for (int64_t i = 0; i < f.repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    Sync(f);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count());
  }
  std::sort(ms.begin(), ms.end());
  const double median =
      ms.size() % 2 ? ms[ms.size() / 2] : 0.5 * (ms[ms.size() / 2 - 1] + ms[ms.size() / 2]);
  const kernels::FusedKernels fused = kernels::ActiveFusedKernels();
  const std::string fused_note = fused.group_norm_silu || fused.guided_ddim_step
                                     ? ", fused=" + kernels::FusedKernelsName(fused)
                                     : "";
  std::printf(
      "%-28s median %10.2f ms  min %10.2f  max %10.2f  (n=%lld, %s, %s, threads=%d, "
      "attention=%s%s%s%s)",
      name.c_str(), median, ms.front(), ms.back(), static_cast<long long>(ms.size()),
      f.device.str().c_str(), c10::toString(f.dtype), at::get_num_threads(),
      diffusion::AttentionBackendName(f.attention.backend),
      f.channels_last ? ", channels_last" : "", f.cuda_graphs ? ", cuda_graphs" : "",
      fused_note.c_str());
  if (flops > 0) {
    const double tflops = flops / (median * 1e-3) / 1e12;
    std::printf("  %.3f TFLOP/step, %.2f TFLOP/s", flops / 1e12, tflops);
    if (f.peak_tflops > 0) std::printf(", %.1f%% of peak", 100.0 * tflops / f.peak_tflops);
  }
  std::printf("\n");
  std::fflush(stdout);
  return median;
}

double CountFlops(const std::function<void()>& fn) {
  namespace prof = torch::autograd::profiler;
  using torch::profiler::impl::ActivityType;
  using torch::profiler::impl::ProfilerConfig;
  using torch::profiler::impl::ProfilerState;
  const ProfilerConfig config(ProfilerState::KINETO, /*report_input_shapes=*/true,
                              /*profile_memory=*/false, /*with_stack=*/false,
                              /*with_flops=*/true);
  const std::set<ActivityType> activities = {ActivityType::CPU};
  prof::prepareProfiler(config, activities);
  prof::enableProfiler(config, activities);
  fn();
  std::unique_ptr<prof::ProfilerResult> result = prof::disableProfiler();
  double flops = 0;
  for (const prof::KinetoEvent& e : result->events()) flops += static_cast<double>(e.flops());
  return flops;
}

}  // namespace dreambooth::dbtool
