// Text-to-image pipeline: full guided sampling runs on the tiny-a fixture reproduce diffusers'
// latents and image; option handling on the built-in tiny model.
#include "worker/diffusion/pipelines/pipeline.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "tests/diffusion/fixture_util.h"
#include "worker/diffusion/schedulers/scheduler.h"

namespace dreambooth::diffusion {
namespace {

using testing::MaxAbsDiff;
using testing::ReadOrDie;
using testing::TinyFixture;
using testing::TinyFixtureDir;

class PipelineGoldenTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<StableDiffusion> model = LoadStableDiffusion(TinyFixtureDir());
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = new StableDiffusion(*std::move(model));
    golden_ = new TensorMap(ReadOrDie(TinyFixture("golden/pipeline.safetensors")));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete golden_;
  }
  static StableDiffusion* model_;
  static TensorMap* golden_;
};
StableDiffusion* PipelineGoldenTest::model_ = nullptr;
TensorMap* PipelineGoldenTest::golden_ = nullptr;

// Golden settings (golden/manifest.json): guidance 7.5, 10 steps, eta 0, 32x48 pixels.
TEST_P(PipelineGoldenTest, GuidedRunReproducesDiffusers) {
  const std::string scheduler = GetParam();
  const TensorMap& g = *golden_;
  Text2ImageOptions options;
  options.prompt_ids = g.at("in.prompt_ids");
  options.negative_prompt_ids = g.at("in.negative_prompt_ids");
  options.initial_latents = g.at("in.latents");
  options.scheduler = scheduler;
  options.steps = 10;
  options.guidance = 7.5;
  options.height = 32;
  options.width = 48;
  std::vector<at::Tensor> per_step;
  options.on_step = [&](int64_t, int64_t, const at::Tensor& x) {
    per_step.push_back(x.clone());
    return true;
  };
  absl::StatusOr<Text2ImageResult> result = Text2Image(*model_, options);
  ASSERT_TRUE(result.ok()) << result.status();
  // Tolerances of the fixture README.
  EXPECT_LT(MaxAbsDiff(result->prompt_embeds, g.at("out.prompt_embeds")), 2e-3);
  EXPECT_LT(MaxAbsDiff(result->negative_prompt_embeds, g.at("out.negative_prompt_embeds")), 2e-3);
  EXPECT_TRUE(at::equal(result->timesteps, g.at(scheduler + ".timesteps")));
  EXPECT_LT(MaxAbsDiff(at::stack(per_step), g.at(scheduler + ".latents_per_step")), 1e-2);
  EXPECT_LT(MaxAbsDiff(result->latents, g.at(scheduler + ".final_latents")), 1e-2);
  EXPECT_LT(MaxAbsDiff(result->images_float, g.at(scheduler + ".image")), 5e-4);
}

INSTANTIATE_TEST_SUITE_P(Schedulers, PipelineGoldenTest, ::testing::Values("ddim", "euler"));

class TinyPipelineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<StableDiffusion> model = LoadStableDiffusion("tiny");
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = new StableDiffusion(*std::move(model));
  }
  static void TearDownTestSuite() { delete model_; }
  static Text2ImageOptions Options() {
    Text2ImageOptions o;
    o.prompts = {"a photo of a dog"};
    o.steps = 3;
    o.width = 32;
    o.height = 48;
    o.seed = 42;
    return o;
  }
  static StableDiffusion* model_;
};
StableDiffusion* TinyPipelineTest::model_ = nullptr;

TEST_F(TinyPipelineTest, ProducesOneImagePerPromptAndRepeat) {
  Text2ImageOptions o = Options();
  o.prompts = {"a photo of a dog", "a photo of a cat"};
  o.negative_prompts = {"blurry"};
  o.num_images_per_prompt = 2;
  absl::StatusOr<Text2ImageResult> r = Text2Image(*model_, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->images.sizes(), (std::vector<int64_t>{4, 48, 32, 3}));
  EXPECT_EQ(r->images.scalar_type(), at::kByte);
  EXPECT_EQ(r->latents.sizes(), (std::vector<int64_t>{4, 4, 24, 16}));
}

TEST_F(TinyPipelineTest, SameSeedSameImagesOtherSeedOtherImages) {
  absl::StatusOr<Text2ImageResult> a = Text2Image(*model_, Options());
  absl::StatusOr<Text2ImageResult> b = Text2Image(*model_, Options());
  Text2ImageOptions other = Options();
  other.seed = 43;
  absl::StatusOr<Text2ImageResult> c = Text2Image(*model_, other);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_TRUE(at::equal(a->latents, b->latents));
  EXPECT_FALSE(at::equal(a->latents, c->latents));
}

// The initial noise is torch.randn(shape, generator=torch.Generator().manual_seed(seed)):
// with one step of DDIM from it the first latents are a deterministic function of that noise.
TEST_F(TinyPipelineTest, DefaultNoiseEqualsSeededRandn) {
  Text2ImageOptions seeded = Options();
  Text2ImageOptions explicit_noise = Options();
  at::Generator gen = at::detail::createCPUGenerator(seeded.seed);
  explicit_noise.initial_latents = at::randn({1, 4, 24, 16}, gen);
  absl::StatusOr<Text2ImageResult> a = Text2Image(*model_, seeded);
  absl::StatusOr<Text2ImageResult> b = Text2Image(*model_, explicit_noise);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(at::equal(a->latents, b->latents));
}

// Every scheduler runs a whole guided sampling; PNDM makes one UNet call more than its steps.
TEST_F(TinyPipelineTest, EverySchedulerSamples) {
  for (const std::string& name : SchedulerNames()) {
    Text2ImageOptions o = Options();
    o.scheduler = name;
    int64_t calls = 0;
    o.on_step = [&](int64_t, int64_t, const at::Tensor&) {
      ++calls;
      return true;
    };
    absl::StatusOr<Text2ImageResult> r = Text2Image(*model_, o);
    ASSERT_TRUE(r.ok()) << name << ": " << r.status();
    EXPECT_EQ(calls, name == "pndm" ? o.steps + 1 : o.steps) << name;
    EXPECT_TRUE(at::isfinite(r->latents).all().item<bool>()) << name;
  }
}

TEST_F(TinyPipelineTest, RejectsBadOptions) {
  Text2ImageOptions o = Options();
  o.width = 33;  // not a multiple of the VAE factor (2)
  EXPECT_EQ(Text2Image(*model_, o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Options();
  o.prompts = {"a", "b", "c"};
  o.negative_prompts = {"x", "y"};
  EXPECT_EQ(Text2Image(*model_, o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Options();
  o.scheduler = "nope";
  EXPECT_EQ(Text2Image(*model_, o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Options();
  o.prompts.clear();
  EXPECT_EQ(Text2Image(*model_, o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(TinyPipelineTest, StepCallbackCanCancel) {
  Text2ImageOptions o = Options();
  int calls = 0;
  o.on_step = [&](int64_t step, int64_t total, const at::Tensor&) {
    ++calls;
    EXPECT_EQ(total, 3);
    return step < 1;
  };
  EXPECT_EQ(Text2Image(*model_, o).status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(calls, 2);
}

TEST(ImagesToUint8Test, RoundsAndTransposes) {
  at::Tensor x = at::zeros({1, 3, 1, 2});
  x[0][0][0][1] = 1.0;
  x[0][1][0][0] = 0.5;  // 127.5 rounds half to even -> 128 (torch.round)
  const at::Tensor u = ImagesToUint8(x);
  EXPECT_EQ(u.sizes(), (std::vector<int64_t>{1, 1, 2, 3}));
  EXPECT_EQ(u[0][0][1][0].item<uint8_t>(), 255);
  EXPECT_EQ(u[0][0][0][1].item<uint8_t>(), 128);
}

}  // namespace
}  // namespace dreambooth::diffusion
