// Helpers shared by the worker/train tests: temporary folders, synthetic image sets, the
// fixture model and small training options.
#ifndef DREAMBOOTH_TESTS_TRAIN_TEST_UTIL_H_
#define DREAMBOOTH_TESTS_TRAIN_TEST_UTIL_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "tests/testing/temp_dir.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/train/dreambooth_trainer.h"
#include "worker/train/train_options.h"

namespace dreambooth::train::testing {

// The fixture folder tests/data/fixtures/tiny-a.
std::string TinyAFixtureDir();
// Path of a golden file of tiny-a, e.g. "dreambooth_step".
std::string GoldenPath(const std::string& name);

using ::dreambooth::testing::TempDir;  // tests/testing/temp_dir.h

// Writes `count` PNG images (width x height) into `dir` (created), named img-<k>.png, with
// smooth colour gradients and a disc whose position/colour depend on (seed, k).
void WriteImageSet(const std::string& dir, int count, int width, int height, uint64_t seed);

// Loads the tiny-a fixture model on CPU in float32 (aborts the test on error). Its text
// encoder has 1000 ids (not the tokenizer's 49408), so it only takes synthetic ids: training
// runs with prompts use the built-in "tiny" model.
diffusion::StableDiffusion LoadTinyA();
// Loads the built-in "tiny" model (real tokenizer and vocabulary size).
diffusion::StableDiffusion LoadTiny();

// Options for a short run on the built-in tiny model at resolution 32 (latents 16x16) with one
// instance image per step, lr 1e-3, no checkpoints, no validation, everything under `root`.
TrainOptions SmallRunOptions(const std::string& root, const std::string& instance_dir);

// One run of `o` without interruption (into `full_output_dir`) and one cancelled after step
// `stop_step` and resumed from its latest resume state by a fresh trainer (into o.output_dir).
// `o` must checkpoint at `stop_step`. Failures are reported through gtest; check ok().
struct ResumeRuns {
  std::unique_ptr<DreamBoothTrainer> full;
  std::unique_ptr<DreamBoothTrainer> resumed;
  TrainResult full_result;
  TrainResult resumed_result;
  bool ok() const { return full != nullptr && resumed != nullptr; }
};
ResumeRuns TrainInterruptedAndResumed(const TrainOptions& o, const std::string& full_output_dir,
                                      int64_t stop_step);

}  // namespace dreambooth::train::testing

#endif  // DREAMBOOTH_TESTS_TRAIN_TEST_UTIL_H_
