// Throughput of the toy world on one core: Render at 64x64 (images/s), scene sampling plus
// captioning, and PNG encoding of a render. Results: docs/benchmarks.md.
//
//   build/tests/world/world_bench [--benchmark_repetitions=3]
#include <benchmark/benchmark.h>

#include <cstdint>

#include "common/image/image.h"
#include "world/caption.h"
#include "world/dataset.h"
#include "world/render.h"
#include "world/scene.h"

namespace dreambooth::world {
namespace {

// A different sampled scene per iteration (all shapes, patterns and backgrounds).
void BM_Render(benchmark::State& state) {
  const int size = static_cast<int>(state.range(0));
  int64_t i = 0;
  for (auto _ : state) {
    const Scene scene = *SampleScene(SceneSeed(1, i++), {});
    benchmark::DoNotOptimize(Render(scene, size));
  }
  state.counters["images/s"] =
      benchmark::Counter(static_cast<double>(i), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Render)->Arg(64)->Arg(128);

void BM_SampleSceneAndCaption(benchmark::State& state) {
  int64_t i = 0;
  for (auto _ : state) {
    const uint64_t seed = SceneSeed(1, i++);
    const Scene scene = *SampleScene(seed, {});
    benchmark::DoNotOptimize(Caption(scene, CaptionSeed(seed)));
  }
  state.counters["scenes/s"] =
      benchmark::Counter(static_cast<double>(i), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SampleSceneAndCaption);

void BM_EncodePng64(benchmark::State& state) {
  const image::Image image = Render(*SampleScene(1, {}));
  for (auto _ : state) benchmark::DoNotOptimize(image::EncodePng(image));
}
BENCHMARK(BM_EncodePng64);

}  // namespace
}  // namespace dreambooth::world

BENCHMARK_MAIN();
