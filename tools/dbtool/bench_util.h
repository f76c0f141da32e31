// Shared pieces of `dbtool bench`: its flags, timing with device synchronisation, and FLOP
// counting through LibTorch's profiler.
#ifndef DREAMBOOTH_TOOLS_DBTOOL_BENCH_UTIL_H_
#define DREAMBOOTH_TOOLS_DBTOOL_BENCH_UTIL_H_

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "worker/diffusion/models/attention.h"

namespace dreambooth::dbtool {

struct BenchFlags {
  int64_t threads = 0;
  int64_t repeats = 5;
  int64_t warmup = 1;
  std::string only;
  diffusion::AttentionOptions attention;
  std::string mid_config = "tests/data/bench/mid/unet/config.json";
  std::string tiny_a = "tests/data/fixtures/tiny-a";
  c10::Device device = c10::kCPU;
  c10::ScalarType dtype = c10::kFloat;  // of the models' weights and inputs
  double peak_tflops = 0;               // the device's peak for --dtype; 0 = unknown
  bool channels_last = false;           // UNet weights and inputs in channels_last
  bool cuda_graphs = false;             // sampling replays the UNet as a CUDA graph (CUDA only)
};

// With --channels-last: `module`'s 4-D parameters in channels_last memory format.
void ApplyMemoryFormat(const BenchFlags& f, torch::nn::Module& module);
// `t` in channels_last when --channels-last and `t` is 4-D, else `t`.
at::Tensor InMemoryFormat(const BenchFlags& f, const at::Tensor& t);

// Waits for the device's queued work, so that wall time measures it.
void Sync(const BenchFlags& f);

// Runs `fn` warmup + repeats times and prints the median / min / max wall time (unless --only
// excludes `name`); returns the median in ms (0 when excluded). With `flops` > 0 the line also
// gives TFLOP/s and, with --peak-tflops, the fraction of the device's peak.
double Measure(const BenchFlags& f, const std::string& name, const std::function<void()>& fn,
               double flops = 0);

// Floating-point operations of one call of `fn` as LibTorch's profiler counts them (matrix
// products and convolutions from their input shapes; forward ops only).
double CountFlops(const std::function<void()>& fn);

// Whether --only selects `name` (an empty --only selects everything).
bool Selected(const BenchFlags& f, const std::string& name);

// The SD 1.5-size suite (`--only sd15`, never in the default run): the SD 1.5 UNet with random
// weights at 512x512 (64x64 latents): forward b1 and b4, forward+backward b2, one DreamBooth step
// 1+1 (float32 master weights, autocast to --dtype), and 50 guided DDIM steps; each with its
// FLOPs, TFLOP/s and peak memory.
absl::Status BenchSd15(const BenchFlags& f);

}  // namespace dreambooth::dbtool

#endif  // DREAMBOOTH_TOOLS_DBTOOL_BENCH_UTIL_H_
