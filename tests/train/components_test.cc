// Unit tests of the training engine's building blocks: LR schedules, AdamW (against the
// fixture's reference step), gradient clipping, option validation, the image transforms and
// folder scanning, the resume-state format and the latent cache files.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/crypto.h"
#include "tests/train/test_util.h"
#include "worker/diffusion/io/safetensors.h"
#include "worker/train/adamw.h"
#include "worker/train/image_dataset.h"
#include "worker/train/latent_cache.h"
#include "worker/train/lr_schedule.h"
#include "worker/train/precision.h"
#include "worker/train/resume_state.h"
#include "worker/train/train_options.h"
#include "worker/train/training_data.h"

namespace dreambooth::train {
namespace {
namespace fs = std::filesystem;
using testing::TempDir;

LrSchedule MakeSchedule(LrScheduleType type, int warmup, int total, double cycles = 0.5) {
  LrSchedule::Options o;
  o.type = type;
  o.warmup_steps = warmup;
  o.total_steps = total;
  o.num_cycles = cycles;
  absl::StatusOr<LrSchedule> s = LrSchedule::Create(1e-4, o);
  EXPECT_TRUE(s.ok()) << s.status();
  return *s;
}

TEST(LrScheduleTest, ConstantIsFlat) {
  LrSchedule s = MakeSchedule(LrScheduleType::kConstant, 0, 100);
  for (int step : {0, 1, 50, 99, 150}) EXPECT_DOUBLE_EQ(s.LearningRate(step), 1e-4);
}

TEST(LrScheduleTest, WarmupRisesLinearlyThenHolds) {
  LrSchedule s = MakeSchedule(LrScheduleType::kConstantWithWarmup, 10, 100);
  EXPECT_DOUBLE_EQ(s.Multiplier(0), 0.0);
  EXPECT_DOUBLE_EQ(s.Multiplier(5), 0.5);
  EXPECT_DOUBLE_EQ(s.Multiplier(10), 1.0);
  EXPECT_DOUBLE_EQ(s.Multiplier(99), 1.0);
}

TEST(LrScheduleTest, LinearDecaysToZeroAtTheEnd) {
  LrSchedule s = MakeSchedule(LrScheduleType::kLinear, 10, 110);
  EXPECT_DOUBLE_EQ(s.Multiplier(10), 1.0);
  EXPECT_DOUBLE_EQ(s.Multiplier(60), 0.5);
  EXPECT_DOUBLE_EQ(s.Multiplier(110), 0.0);
  EXPECT_DOUBLE_EQ(s.Multiplier(200), 0.0);
}

TEST(LrScheduleTest, CosineFollowsHalfAWave) {
  LrSchedule s = MakeSchedule(LrScheduleType::kCosine, 0, 100);
  EXPECT_DOUBLE_EQ(s.Multiplier(0), 1.0);
  EXPECT_NEAR(s.Multiplier(50), 0.5, 1e-12);
  EXPECT_NEAR(s.Multiplier(100), 0.0, 1e-12);
  for (int step = 1; step <= 100; ++step) EXPECT_LE(s.Multiplier(step), s.Multiplier(step - 1));
}

TEST(LrScheduleTest, CosineWithRestartsRestartsEachCycle) {
  LrSchedule s = MakeSchedule(LrScheduleType::kCosineWithRestarts, 0, 100, 2.0);
  EXPECT_DOUBLE_EQ(s.Multiplier(0), 1.0);
  EXPECT_NEAR(s.Multiplier(25), 0.5, 1e-12);
  EXPECT_DOUBLE_EQ(s.Multiplier(50), 1.0);  // second cycle starts again at the peak
  EXPECT_DOUBLE_EQ(s.Multiplier(100), 0.0);
}

TEST(LrScheduleTest, PolynomialWithPowerOneEndsAtLrEnd) {
  LrSchedule::Options o;
  o.type = LrScheduleType::kPolynomial;
  o.total_steps = 100;
  o.power = 1.0;
  o.lr_end = 1e-7;
  absl::StatusOr<LrSchedule> s = LrSchedule::Create(1e-4, o);
  ASSERT_TRUE(s.ok());
  EXPECT_DOUBLE_EQ(s->LearningRate(0), 1e-4);
  EXPECT_NEAR(s->LearningRate(100), 1e-7, 1e-18);
  EXPECT_NEAR(s->LearningRate(50), (1e-4 + 1e-7) / 2, 1e-15);
}

TEST(LrScheduleTest, ParsesNamesAndRejectsUnknownOnes) {
  EXPECT_EQ(*ParseLrScheduleType("cosine"), LrScheduleType::kCosine);
  EXPECT_EQ(LrScheduleTypeName(LrScheduleType::kConstantWithWarmup), "constant_with_warmup");
  absl::StatusOr<LrScheduleType> bad = ParseLrScheduleType("exponential");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("constant_with_warmup"), std::string::npos);
}

// The fixture README's step 2: AdamW alone on the reference parameters and gradients.
TEST(AdamWTest, MatchesTorchAdamWOnTheFixtureStep) {
  absl::StatusOr<diffusion::TensorMap> golden =
      diffusion::ReadSafetensors(testing::GoldenPath("dreambooth_step"));
  ASSERT_TRUE(golden.ok()) << golden.status();
  AdamWOptions o;  // the golden's hyper-parameters: lr 1e-3, betas (0.9, 0.999), eps 1e-8, wd 1e-2
  EXPECT_FLOAT_EQ(golden->at("in.lr").item<float>(), 1e-3f);
  EXPECT_FLOAT_EQ(golden->at("in.weight_decay").item<float>(), 1e-2f);
  int checked = 0;
  for (const auto& [name, before] : *golden) {
    const std::string suffix = ".before";
    if (name.rfind("param.", 0) != 0 || name.size() < suffix.size() ||
        name.substr(name.size() - suffix.size()) != suffix) {
      continue;
    }
    const std::string base = name.substr(0, name.size() - suffix.size());
    at::Tensor p = before.clone();
    p.mutable_grad() = golden->at(base + ".grad").clone();
    AdamW opt({AdamWParamGroup{{{base, p}}, o}});
    opt.Step();
    const double err = (p - golden->at(base + ".after")).abs().max().item<double>();
    EXPECT_LE(err, 1e-6) << base;
    ++checked;
  }
  EXPECT_EQ(checked, 10);
}

TEST(AdamWTest, StateDictRoundTripContinuesBitwise) {
  at::manual_seed(7);
  at::Tensor a = at::randn({5, 3});
  at::Tensor b = a.clone();
  AdamWOptions o;
  AdamW opt_a({AdamWParamGroup{{{"w", a}}, o}});
  AdamW opt_b({AdamWParamGroup{{{"w", b}}, o}});
  at::Tensor g1 = at::randn({5, 3});
  at::Tensor g2 = at::randn({5, 3});
  a.mutable_grad() = g1.clone();
  opt_a.Step();
  b.mutable_grad() = g1.clone();
  opt_b.Step();
  // Restart b's optimizer from a's saved state, as resume does.
  AdamW opt_c({AdamWParamGroup{{{"w", b}}, o}});
  ASSERT_TRUE(opt_c.LoadStateDict(opt_a.StateDict()).ok());
  a.mutable_grad() = g2.clone();
  opt_a.Step();
  b.mutable_grad() = g2.clone();
  opt_c.Step();
  EXPECT_TRUE(at::equal(a, b));
  diffusion::TensorMap wrong = opt_a.StateDict();
  wrong["w.exp_avg"] = at::zeros({2});
  absl::Status st = opt_c.LoadStateDict(wrong);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("'w'"), std::string::npos);
}

TEST(ClipGradNormTest, ReturnsGlobalNormAndClipsToMaxNorm) {
  at::Tensor a = at::zeros({2});
  at::Tensor b = at::zeros({1});
  a.mutable_grad() = at::tensor({3.0f, 0.0f});
  b.mutable_grad() = at::tensor({4.0f});
  EXPECT_NEAR(ClipGradNorm({a, b}, 0.0), 5.0, 1e-6);  // no clipping
  EXPECT_NEAR(ClipGradNorm({a, b}, 1.0), 5.0, 1e-6);
  const double clipped =
      std::sqrt(a.grad().pow(2).sum().item<double>() + b.grad().pow(2).sum().item<double>());
  EXPECT_NEAR(clipped, 1.0, 1e-5);
  EXPECT_NEAR(ClipGradNorm({a, b}, 10.0), clipped, 1e-6);  // under the limit: unchanged
}

TEST(TrainOptionsTest, RejectsBadValuesNamingTheField) {
  TrainOptions o = testing::SmallRunOptions("/tmp/x", "/tmp/x/instances");
  ASSERT_TRUE(ValidateTrainOptions(o).ok());
  auto expect_invalid = [](TrainOptions bad, const std::string& field) {
    absl::Status st = ValidateTrainOptions(bad);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_NE(st.message().find(field), std::string::npos) << st.message();
  };
  TrainOptions bad = o;
  bad.resolution = 36;
  expect_invalid(bad, "resolution");
  bad = o;
  bad.max_train_steps = 0;
  expect_invalid(bad, "max_train_steps");
  bad.max_train_steps = -5;
  expect_invalid(bad, "max_train_steps");
  bad = o;
  bad.with_prior_preservation = true;
  expect_invalid(bad, "class_prompt");
  bad = o;
  bad.center_crop = false;
  bad.use_cached_latents = true;
  expect_invalid(bad, "use_cached_latents");
  bad = o;
  bad.instance_prompt = "";
  expect_invalid(bad, "instance_prompt");
  bad = o;
  bad.learning_rate = 0;
  expect_invalid(bad, "learning_rate");
  // Text-to-image: no instance prompt needed, and no prior loss.
  bad = o;
  bad.mode = TrainingMode::kTextToImage;
  bad.instance_prompt = "";
  EXPECT_TRUE(ValidateTrainOptions(bad).ok());
  bad.with_prior_preservation = true;
  bad.class_prompt = "a photo of a toy";
  expect_invalid(bad, "with_prior_preservation");
}

TEST(SampleStreamTest, CaptionDropoutDropsTheRequestedShareReproducibly) {
  SampleStream none(100, 0, false, 7);
  SampleStream some(100, 0, false, 7, 0.1);
  SampleStream again(100, 0, false, 7, 0.1);
  int dropped = 0;
  for (int64_t p = 0; p < 5000; ++p) {
    EXPECT_FALSE(none.At(p).drop_caption);
    const SampleStream::Draw d = some.At(p);
    dropped += d.drop_caption ? 1 : 0;
    EXPECT_EQ(d.drop_caption, again.At(p).drop_caption);
    EXPECT_EQ(d.instance, none.At(p).instance);  // dropout does not change what is drawn
  }
  // Binomial(5000, 0.1): mean 500, sd 21.
  EXPECT_NEAR(dropped, 500, 90);
}

TEST(TrainOptionsTest, ParsesTrainingModes) {
  EXPECT_EQ(*ParseTrainingMode("dreambooth"), TrainingMode::kDreamBooth);
  EXPECT_EQ(*ParseTrainingMode("text-to-image"), TrainingMode::kTextToImage);
  EXPECT_EQ(TrainingModeName(TrainingMode::kTextToImage), "text-to-image");
  EXPECT_EQ(ParseTrainingMode("t2i").status().code(), absl::StatusCode::kInvalidArgument);
}

at::Tensor Gradient(int h, int w) {
  // uint8 [H, W, 3]: R = x, G = y, B = constant.
  at::Tensor x = at::arange(w, at::kFloat).view({1, w}).expand({h, w});
  at::Tensor y = at::arange(h, at::kFloat).view({h, 1}).expand({h, w});
  return at::stack({x * 4, y * 4, at::full({h, w}, 100.0f)}, 2).to(at::kByte);
}

TEST(TransformImageTest, ScalesToMinusOneOneAndCropsTheCenter) {
  at::Tensor rgb = Gradient(32, 48);  // already at the short-side resolution: no resampling
  at::Tensor out = TransformImage(rgb, 32, CropSpec{}, false);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{3, 32, 32}));
  // Center crop of width 48 -> 32 starts at column 8.
  EXPECT_FLOAT_EQ(out[0][0][0].item<float>(), 8 * 4 / 127.5f - 1.0f);
  EXPECT_FLOAT_EQ(out[2][5][5].item<float>(), 100 / 127.5f - 1.0f);
  at::Tensor flipped = TransformImage(rgb, 32, CropSpec{}, true);
  EXPECT_TRUE(at::equal(flipped, out.flip({2})));
}

TEST(TransformImageTest, ResizesTheShortSideWithAntialiasing) {
  at::Tensor rgb = at::full({64, 96, 3}, 200, at::kByte);
  rgb.narrow(1, 0, 48).fill_(0);                                // left half black: a hard edge
  at::Tensor out = TransformImage(rgb, 32, CropSpec{}, false);  // -> 32 x 48, crop 8..40
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{3, 32, 32}));
  EXPECT_GE(out.min().item<float>(), -1.0f);
  EXPECT_LE(out.max().item<float>(), 1.0f);
  // A flat region stays exact; the edge at x = 24 of the resized image (column 16 of the crop)
  // is between the two values.
  EXPECT_FLOAT_EQ(out[0][10][0].item<float>(), -1.0f);
  EXPECT_FLOAT_EQ(out[0][10][31].item<float>(), 200 / 127.5f - 1.0f);
}

TEST(TransformImageTest, RandomCropIsReproducibleFromItsGenerator) {
  at::Tensor rgb = Gradient(32, 96);
  at::Generator g1 = at::detail::createCPUGenerator(5);
  at::Generator g2 = at::detail::createCPUGenerator(5);
  at::Tensor a = TransformImage(rgb, 32, CropSpec{false, &g1}, false);
  at::Tensor b = TransformImage(rgb, 32, CropSpec{false, &g2}, false);
  EXPECT_TRUE(at::equal(a, b));
}

TEST(ScanImageFolderTest, ReadsCaptionsAndReportsProblems) {
  TempDir tmp;
  const std::string dir = tmp.Join("instances");
  testing::WriteImageSet(dir, 3, 40, 32, 1);
  std::ofstream(dir + "/img-01.txt") << "  a photo of sks cat on a sofa \n";
  std::ofstream(dir + "/img-02.txt") << "   \n";
  std::ofstream(dir + "/notes.md") << "not an image";
  std::vector<std::string> warnings;
  absl::StatusOr<std::vector<ImageRecord>> recs =
      ScanImageFolder(dir, "a photo of sks cat", &warnings);
  ASSERT_TRUE(recs.ok()) << recs.status();
  ASSERT_EQ(recs->size(), 3u);
  EXPECT_EQ((*recs)[0].prompt, "a photo of sks cat");
  EXPECT_EQ((*recs)[1].prompt, "a photo of sks cat on a sofa");
  EXPECT_EQ((*recs)[2].prompt, "a photo of sks cat");
  EXPECT_EQ((*recs)[0].digest.size(), 64u);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("img-02.txt"), std::string::npos);

  fs::create_directories(tmp.Join("empty"));
  EXPECT_EQ(ScanImageFolder(tmp.Join("empty"), "p", nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ScanImageFolder(tmp.Join("missing"), "p", nullptr).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(ScanImageFolderTest, UsesDigestsTheCallerVerifiedInsteadOfHashingAgain) {
  TempDir tmp;
  const std::string dir = tmp.Join("instances");
  testing::WriteImageSet(dir, 2, 40, 32, 1);
  absl::StatusOr<std::vector<ImageRecord>> hashed = ScanImageFolder(dir, "p", nullptr);
  ASSERT_TRUE(hashed.ok()) << hashed.status();
  ASSERT_EQ(hashed->size(), 2u);
  // A verified digest is taken as given (a sentinel proves the file was not hashed); the other
  // file is still hashed.
  const std::string sentinel(64, 'a');
  absl::StatusOr<std::vector<ImageRecord>> recs =
      ScanImageFolder(dir, "p", nullptr, {{(*hashed)[0].path, sentinel}});
  ASSERT_TRUE(recs.ok()) << recs.status();
  EXPECT_EQ((*recs)[0].digest, sentinel);
  EXPECT_EQ((*recs)[1].digest, (*hashed)[1].digest);
  EXPECT_EQ((*hashed)[0].digest, *Sha256File((*hashed)[0].path));
}

TEST(LoadTrainingImageTest, UnreadableImageIsAnErrorNamingTheFile) {
  TempDir tmp;
  const std::string path = tmp.Join("broken.png");
  std::ofstream(path) << "definitely not a PNG";
  absl::StatusOr<at::Tensor> t = LoadTrainingImage(path, 32, CropSpec{}, false);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("broken.png"), std::string::npos);
}

TEST(ResumeStateTest, RoundTripsAndKeepsTheLastK) {
  TempDir tmp;
  const std::string root = tmp.Join("resume");
  for (int step : {10, 20, 30}) {
    ResumeState s;
    s.step = step;
    s.fingerprint = {{"seed", 1}};
    s.generator_state = at::detail::createCPUGenerator(step).get_state();
    s.unet = {{"w", at::full({2, 2}, static_cast<float>(step))}};
    s.optimizer = {{"unet.w.exp_avg", at::ones({2, 2})}};
    s.loss_scale = 1024.0;
    ASSERT_TRUE(SaveResumeState(root, s, 2).ok());
  }
  auto folders = ListStepFolders(root, "step-");
  ASSERT_EQ(folders.size(), 2u);
  EXPECT_EQ(folders[0].first, 20);
  fs::create_directories(root + "/step-00000040.tmp-123");  // an interrupted write is ignored
  absl::StatusOr<std::string> latest = LatestResumeState(root);
  ASSERT_TRUE(latest.ok());
  absl::StatusOr<ResumeState> loaded = LoadResumeState(*latest);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->step, 30);
  EXPECT_EQ(loaded->fingerprint, nlohmann::json({{"seed", 1}}));
  EXPECT_TRUE(at::equal(loaded->unet.at("w"), at::full({2, 2}, 30.0f)));
  EXPECT_TRUE(at::equal(loaded->generator_state, at::detail::createCPUGenerator(30).get_state()));
  EXPECT_DOUBLE_EQ(loaded->loss_scale, 1024.0);
  fs::remove(*latest + "/unet.safetensors");
  EXPECT_FALSE(LoadResumeState(*latest).ok());
}

TEST(LatentCacheTest, StoresLooksUpAndDetectsMismatchedEntries) {
  TempDir tmp;
  LatentCache cache(tmp.Join("latents"));
  LatentCacheKey key{"sha256:vae", "abc", 32, "center", false};
  EXPECT_EQ(cache.Lookup(key).status().code(), absl::StatusCode::kNotFound);
  CachedPosterior p{at::randn({4, 16, 16}), at::randn({4, 16, 16})};
  ASSERT_TRUE(cache.Store(key, p).ok());
  absl::StatusOr<CachedPosterior> hit = cache.Lookup(key);
  ASSERT_TRUE(hit.ok());
  EXPECT_TRUE(at::equal(hit->mean, p.mean));
  EXPECT_TRUE(at::equal(hit->logvar, p.logvar));
  LatentCacheKey flipped = key;
  flipped.flip = true;
  EXPECT_FALSE(cache.Lookup(flipped).ok());
  // An entry whose stored key differs (e.g. a file copied over another) is a miss.
  fs::create_directories(fs::path(cache.PathFor(flipped)).parent_path());
  fs::copy_file(cache.PathFor(key), cache.PathFor(flipped), fs::copy_options::overwrite_existing);
  EXPECT_EQ(cache.Lookup(flipped).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace dreambooth::train
