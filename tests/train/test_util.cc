#include "tests/train/test_util.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/image/image.h"
#include "worker/train/file_util.h"
#include "worker/train/resume_state.h"

namespace dreambooth::train::testing {
namespace fs = std::filesystem;

std::string TinyAFixtureDir() { return DB_TEST_DATA_DIR "/fixtures/tiny-a"; }

std::string GoldenPath(const std::string& name) {
  return absl::StrCat(TinyAFixtureDir(), "/golden/", name, ".safetensors");
}

void WriteImageSet(const std::string& dir, int count, int width, int height, uint64_t seed) {
  fs::create_directories(dir);
  for (int k = 0; k < count; ++k) {
    std::mt19937_64 rng(seed * 1000 + k);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    const double cx = (0.3 + 0.4 * u(rng)) * width;
    const double cy = (0.3 + 0.4 * u(rng)) * height;
    const double radius = (0.15 + 0.1 * u(rng)) * std::min(width, height);
    const int disc[3] = {static_cast<int>(255 * u(rng)), static_cast<int>(255 * u(rng)),
                         static_cast<int>(255 * u(rng))};
    image::Image img;
    img.width = width;
    img.height = height;
    img.rgb.resize(static_cast<size_t>(width) * height * 3);
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        uint8_t* px = &img.rgb[(static_cast<size_t>(y) * width + x) * 3];
        const bool inside = std::hypot(x - cx, y - cy) < radius;
        px[0] = inside ? disc[0] : static_cast<uint8_t>(255 * x / std::max(1, width - 1));
        px[1] = inside ? disc[1] : static_cast<uint8_t>(255 * y / std::max(1, height - 1));
        px[2] = inside ? disc[2] : static_cast<uint8_t>(128 + 64 * ((seed + k) % 2));
      }
    }
    absl::StatusOr<std::string> png = image::EncodePng(img);
    ASSERT_TRUE(png.ok()) << png.status();
    ASSERT_TRUE(
        WriteFileAtomic((fs::path(dir) / absl::StrFormat("img-%02d.png", k)).string(), *png).ok());
  }
}

diffusion::StableDiffusion LoadTinyA() {
  absl::StatusOr<diffusion::StableDiffusion> model =
      diffusion::LoadStableDiffusion(TinyAFixtureDir());
  if (!model.ok()) {
    ADD_FAILURE() << model.status();
    std::abort();
  }
  return std::move(*model);
}

diffusion::StableDiffusion LoadTiny() {
  absl::StatusOr<diffusion::StableDiffusion> model = diffusion::LoadStableDiffusion("tiny");
  if (!model.ok()) {
    ADD_FAILURE() << model.status();
    std::abort();
  }
  return std::move(*model);
}

TrainOptions SmallRunOptions(const std::string& root, const std::string& instance_dir) {
  TrainOptions o;
  o.base_model = "tiny";
  o.instance_dir = instance_dir;
  o.instance_prompt = "a photo of sks dog";
  o.output_dir = (fs::path(root) / "out").string();
  o.resolution = 32;
  o.max_train_steps = 10;
  o.learning_rate = 1e-3;
  o.adam_weight_decay = 1e-2;
  o.checkpointing_steps = 0;
  o.num_threads = 1;
  o.seed = 1234;
  o.class_sampler.num_inference_steps = 2;
  o.validation_sampler.num_inference_steps = 2;
  return o;
}

ResumeRuns TrainInterruptedAndResumed(const TrainOptions& o, const std::string& full_output_dir,
                                      int64_t stop_step) {
  ResumeRuns runs;
  TrainOptions full_opts = o;
  full_opts.output_dir = full_output_dir;
  auto full = DreamBoothTrainer::Create(full_opts);
  EXPECT_TRUE(full.ok()) << full.status();
  if (!full.ok()) return runs;
  absl::StatusOr<TrainResult> full_result = (*full)->Train();
  EXPECT_TRUE(full_result.ok()) << full_result.status();
  if (!full_result.ok()) return runs;

  std::atomic<bool> cancel{false};
  TrainCallbacks cb;
  cb.cancel = &cancel;
  cb.on_progress = [&](const TrainProgress& p) {
    if (p.stage == TrainStage::kTraining && p.step == stop_step) cancel = true;
  };
  auto first = DreamBoothTrainer::Create(o, cb);
  EXPECT_TRUE(first.ok()) << first.status();
  if (!first.ok()) return runs;
  EXPECT_EQ((*first)->Train().status().code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(LatestResumeState(o.ResumeRoot()).ok());

  TrainOptions resume_opts = o;
  resume_opts.resume_from = "latest";
  auto second = DreamBoothTrainer::Create(resume_opts);
  EXPECT_TRUE(second.ok()) << second.status();
  if (!second.ok()) return runs;
  absl::StatusOr<TrainResult> resumed = (*second)->Train();
  EXPECT_TRUE(resumed.ok()) << resumed.status();
  if (!resumed.ok()) return runs;
  runs.full = std::move(*full);
  runs.resumed = std::move(*second);
  runs.full_result = std::move(*full_result);
  runs.resumed_result = std::move(*resumed);
  return runs;
}

}  // namespace dreambooth::train::testing
