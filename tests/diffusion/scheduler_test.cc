// Schedulers: the fixture goldens (timesteps, sigmas, single steps) and properties that tie the
// schedulers without goldens (DPM-Solver, Euler ancestral, DDPM sampling) to the checked ones.
#include "worker/diffusion/schedulers/scheduler.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <optional>

#include "kernels/guided_ddim_step.h"
#include "tests/diffusion/test_util.h"
#include "worker/diffusion/io/file_util.h"
#include "worker/diffusion/io/safetensors.h"

namespace dreambooth::diffusion {
namespace {

SchedulerConfig FixtureConfig() {
  absl::StatusOr<SchedulerConfig> config =
      SchedulerConfig::FromFile(testing::FixturesDir() + "/tiny-a/scheduler/scheduler_config.json");
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : SchedulerConfig();
}

TensorMap Golden(const std::string& name) {
  absl::StatusOr<TensorMap> golden =
      ReadSafetensors(testing::FixturesDir() + "/tiny-a/golden/" + name + ".safetensors");
  EXPECT_TRUE(golden.ok()) << golden.status();
  return golden.ok() ? *golden : TensorMap();
}

std::unique_ptr<Scheduler> Make(const std::string& name, const SchedulerConfig& config,
                                int64_t steps, SchedulerOptions options = {}) {
  absl::StatusOr<std::unique_ptr<Scheduler>> s = CreateScheduler(name, config, options);
  EXPECT_TRUE(s.ok()) << s.status();
  if (!s.ok()) return nullptr;
  EXPECT_TRUE((*s)->SetTimesteps(steps).ok());
  return std::move(*s);
}

double MaxAbs(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

TEST(SchedulerConfigTest, ParsesTheFixtureConfigAndRoundTrips) {
  SchedulerConfig config = FixtureConfig();
  EXPECT_EQ(config.class_name, "DDPMScheduler");
  EXPECT_EQ(config.beta_schedule, "scaled_linear");
  EXPECT_EQ(config.steps_offset, 1);
  EXPECT_FALSE(config.set_alpha_to_one);
  EXPECT_EQ(config.SpacingOr("linspace"), "leading");
  absl::StatusOr<SchedulerConfig> again = SchedulerConfig::FromJson(config.ToJson());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->ToJson(), config.ToJson());
}

TEST(SchedulerConfigTest, RefusesWrongTypes) {
  absl::StatusOr<SchedulerConfig> config =
      SchedulerConfig::FromJson({{"num_train_timesteps", "many"}});
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("num_train_timesteps"), std::string::npos);
  EXPECT_FALSE(SchedulerConfig::FromJson({{"beta_schedule", "cubic"}}).ok() &&
               ComputeBetas(*SchedulerConfig::FromJson({{"beta_schedule", "cubic"}})).ok());
}

TEST(DdpmTrainingScheduleTest, MatchesTheGolden) {
  TensorMap g = Golden("ddpm");
  absl::StatusOr<DdpmTrainingSchedule> s = DdpmTrainingSchedule::Create(FixtureConfig());
  ASSERT_TRUE(s.ok());
  // The golden was made with torch 1.13, whose float32 linspace rounds differently from torch
  // 2.x's: torch 2.15's own `linspace(...) ** 2` differs from it by up to 3.3e-7 relative (about
  // 3 ulp) at 233 of 1000 betas, and its cumprod by up to 2.4e-7. Equal within 4 ulp.
  EXPECT_TRUE(at::allclose(s->betas(), g.at("out.betas"), /*rtol=*/4.8e-7, /*atol=*/0));
  EXPECT_TRUE(
      at::allclose(s->alphas_cumprod(), g.at("out.alphas_cumprod"), /*rtol=*/4.8e-7, /*atol=*/0));
  const at::Tensor& x0 = g.at("in.original_samples");
  const at::Tensor& noise = g.at("in.noise");
  const at::Tensor& t = g.at("in.timesteps");
  EXPECT_LE(MaxAbs(s->AddNoise(x0, noise, t), g.at("out.noisy_samples")), 5e-5);
  EXPECT_LE(MaxAbs(s->GetVelocity(x0, noise, t), g.at("out.velocity")), 5e-5);
  // SNR = a / (1 - a) of the golden alphas_cumprod.
  at::Tensor a = g.at("out.alphas_cumprod").index({t}).to(at::kDouble);
  EXPECT_LE(((s->Snr(t).to(at::kDouble) - a / (1 - a)) / (a / (1 - a))).abs().max().item<double>(),
            1e-5);
  absl::StatusOr<at::Tensor> target = s->Target(x0, noise, t);
  ASSERT_TRUE(target.ok());
  EXPECT_TRUE(at::equal(*target, noise));
}

TEST(DdimSchedulerTest, MatchesTheGolden) {
  TensorMap g = Golden("ddim");
  SchedulerConfig config = FixtureConfig();
  EXPECT_TRUE(at::equal(Make("ddim", config, 10)->timesteps(), g.at("out.timesteps_10")));
  EXPECT_TRUE(at::equal(Make("ddim", config, 25)->timesteps(), g.at("out.timesteps_25")));
  for (int k : {0, 5, 9}) {
    auto s = Make("ddim", config, 10);
    const std::string p = "step" + std::to_string(k) + ".";
    at::Tensor t = s->timesteps()[k];
    EXPECT_EQ(t.item<int64_t>(), g.at(p + "timestep").item<int64_t>());
    auto out = s->Step(g.at("in.model_output"), t, g.at("in.sample"));
    ASSERT_TRUE(out.ok());
    EXPECT_LE(MaxAbs(out->prev_sample, g.at(p + "prev_sample")), 1e-4) << k;
    EXPECT_LE(MaxAbs(out->pred_original_sample, g.at(p + "pred_original_sample")), 5e-4) << k;
  }
}

TEST(EulerSchedulerTest, MatchesTheGolden) {
  TensorMap g = Golden("euler");
  SchedulerConfig config = FixtureConfig();
  for (int n : {10, 25}) {
    auto s = Make("euler", config, n);
    const std::string suffix = "_" + std::to_string(n);
    EXPECT_TRUE(at::equal(s->timesteps(), g.at("out.timesteps" + suffix)));
    EXPECT_LE(MaxAbs(s->sigmas(), g.at("out.sigmas" + suffix)), 1e-5);
    EXPECT_NEAR(s->init_noise_sigma(), g.at("out.init_noise_sigma" + suffix).item<double>(), 1e-5);
  }
  for (int k : {0, 5, 9}) {
    auto s = Make("euler", config, 10);
    const std::string p = "step" + std::to_string(k) + ".";
    at::Tensor t = s->timesteps()[k];
    EXPECT_EQ(t.item<float>(), g.at(p + "timestep").item<float>());
    absl::StatusOr<at::Tensor> scaled = s->ScaleModelInput(g.at("in.sample"), t);
    ASSERT_TRUE(scaled.ok()) << scaled.status();
    EXPECT_LE(MaxAbs(*scaled, g.at(p + "scaled_sample")), 1e-4);
    auto out = s->Step(g.at("in.model_output"), t, g.at("in.sample"));
    ASSERT_TRUE(out.ok());
    EXPECT_LE(MaxAbs(out->prev_sample, g.at(p + "prev_sample")), 2e-4) << k;
    EXPECT_LE(MaxAbs(out->pred_original_sample, g.at(p + "pred_original_sample")), 5e-4) << k;
  }
}

TEST(SchedulesTest, EveryGoldenSpacingMatches) {
  absl::StatusOr<nlohmann::json> json =
      ReadJsonFile(testing::FixturesDir() + "/tiny-a/golden/schedules.json");
  ASSERT_TRUE(json.ok());
  int checked = 0;
  for (const auto& [key, entry] : (*json)["schedules"].items()) {
    SchedulerConfig config = FixtureConfig();
    const size_t a = key.find('/');
    const size_t b = key.rfind('/');
    config.timestep_spacing = key.substr(a + 1, b - a - 1);
    const std::string name = key.substr(0, a) == "DDIMScheduler" ? "ddim" : "euler";
    auto s = Make(name, config, std::stoi(key.substr(b + 1)));
    std::vector<double> expected = entry["timesteps"].get<std::vector<double>>();
    at::Tensor actual = s->timesteps().to(at::kDouble);
    ASSERT_EQ(actual.numel(), static_cast<int64_t>(expected.size())) << key;
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ(actual[i].item<double>(), expected[i]) << key << " @" << i;
    }
    if (entry.contains("sigmas")) {
      at::Tensor sigmas = at::tensor(entry["sigmas"].get<std::vector<double>>(), at::kDouble);
      EXPECT_LE(MaxAbs(s->sigmas(), sigmas), 1e-5) << key;
      EXPECT_NEAR(s->init_noise_sigma(), entry["init_noise_sigma"].get<double>(), 1e-5) << key;
    }
    ++checked;
  }
  EXPECT_EQ(checked, 12);
}

TEST(SchedulerFactoryTest, RefusesUnknownNamesAndBadStepCounts) {
  absl::StatusOr<std::unique_ptr<Scheduler>> unknown = CreateScheduler("plms", FixtureConfig());
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("euler_ancestral"), std::string::npos);
  for (const std::string& name : SchedulerNames()) {
    absl::StatusOr<std::unique_ptr<Scheduler>> s = CreateScheduler(name, FixtureConfig());
    ASSERT_TRUE(s.ok()) << name;
    EXPECT_EQ((*s)->name(), name);
    EXPECT_FALSE((*s)->SetTimesteps(0).ok()) << name;
    EXPECT_FALSE((*s)->SetTimesteps(1001).ok()) << name;
  }
}

TEST(EulerSchedulerTest, OffScheduleTimestepIsAnError) {
  auto s = Make("euler", FixtureConfig(), 10);
  absl::StatusOr<at::Tensor> scaled = s->ScaleModelInput(at::zeros({1, 4, 8, 8}), at::tensor(3.5));
  ASSERT_FALSE(scaled.ok());
  EXPECT_EQ(scaled.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(scaled.status().message().find("not in the schedule"), std::string::npos);
}

// PNDM (PLMS): the leading schedule with its second timestep repeated.
TEST(PndmSchedulerTest, RepeatsTheSecondTimestep) {
  auto s = Make("pndm", FixtureConfig(), 50);
  ASSERT_EQ(s->timesteps().size(0), 51);
  const std::vector<int64_t> head = {981, 961, 961, 941};
  for (size_t i = 0; i < head.size(); ++i) {
    EXPECT_EQ(s->timesteps()[i].item<int64_t>(), head[i]) << i;
  }
  EXPECT_EQ(s->timesteps()[50].item<int64_t>(), 1);
  EXPECT_EQ(Make("pndm", FixtureConfig(), 1)->timesteps().size(0), 1);
}

// Each PLMS step is the DDIM (eta 0) step taken with the Adams-Bashforth combination of the last
// model outputs: e, then (e1 + e0) / 2 from the first sample again, (3 e2 - e0) / 2,
// (23 e3 - 16 e2 + 5 e0) / 12, (55 e4 - 59 e3 + 37 e2 - 9 e0) / 24 (the repeated call's output
// is only used in the average).
TEST(PndmSchedulerTest, StepsAreDdimStepsOfTheCombinedOutputs) {
  SchedulerConfig config = FixtureConfig();
  config.clip_sample = false;
  auto pndm = Make("pndm", config, 20);
  at::manual_seed(3);
  std::vector<at::Tensor> e;
  for (int i = 0; i < 6; ++i) e.push_back(at::randn({1, 4, 8, 8}));
  const at::Tensor x0 = at::randn({1, 4, 8, 8});
  const std::vector<at::Tensor> combined = {e[0], (e[1] + e[0]) / 2, (3 * e[2] - e[0]) / 2,
                                            (23 * e[3] - 16 * e[2] + 5 * e[0]) / 12,
                                            (55 * e[4] - 59 * e[3] + 37 * e[2] - 9 * e[0]) / 24};
  at::Tensor x = x0;
  at::Tensor expected_x = x0;
  for (int i = 0; i < 5; ++i) {
    auto out = pndm->Step(e[i], pndm->timesteps()[i], x);
    ASSERT_TRUE(out.ok()) << out.status();
    // DDIM from the same starting point: step 1 redoes step 0 (981 -> 961) from x0.
    auto ddim = Make("ddim", config, 20);
    const int ddim_index = i == 0 ? 0 : i - 1;
    const at::Tensor start = i <= 1 ? x0 : expected_x;
    auto ref = ddim->Step(combined[i], ddim->timesteps()[ddim_index], start);
    ASSERT_TRUE(ref.ok());
    EXPECT_LE(MaxAbs(out->prev_sample, ref->prev_sample), 2e-5) << i;
    x = out->prev_sample;
    expected_x = ref->prev_sample;
  }
}

TEST(PndmSchedulerTest, VPredictionStepEqualsDdim) {
  SchedulerConfig config = FixtureConfig();
  config.clip_sample = false;
  config.prediction_type = "v_prediction";
  at::manual_seed(4);
  at::Tensor v = at::randn({1, 4, 8, 8});
  at::Tensor x = at::randn({1, 4, 8, 8});
  auto pndm = Make("pndm", config, 10);
  auto ddim = Make("ddim", config, 10);
  auto a = pndm->Step(v, pndm->timesteps()[0], x);
  auto b = ddim->Step(v, ddim->timesteps()[0], x);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_LE(MaxAbs(a->prev_sample, b->prev_sample), 2e-5);
}

TEST(PndmSchedulerTest, RefusesTheRungeKuttaWarmUp) {
  SchedulerConfig config = FixtureConfig();
  config.class_name = "PNDMScheduler";
  config.skip_prk_steps = false;
  absl::StatusOr<std::unique_ptr<Scheduler>> s = CreateScheduler("pndm", config);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("skip_prk_steps"), std::string::npos);
}

// DPM-Solver++ of order 1 is DDIM (eta 0): x_next = sqrt(a_next) x0 + sqrt(1 - a_next) eps.
TEST(DpmSolverTest, FirstOrderEqualsDdimOnTheSameSchedule) {
  SchedulerConfig config = FixtureConfig();
  config.solver_order = 1;
  config.timestep_spacing = "leading";
  auto dpm = Make("dpmpp_2m", config, 10);
  at::manual_seed(0);
  at::Tensor sample = at::randn({1, 4, 8, 8});
  at::Tensor eps = at::randn({1, 4, 8, 8});
  at::Tensor t = dpm->timesteps()[3];
  auto a = dpm->Step(eps, t, sample);
  ASSERT_TRUE(a.ok());
  const int64_t t_next = dpm->timesteps()[4].item<int64_t>();
  absl::StatusOr<DdpmTrainingSchedule> schedule = DdpmTrainingSchedule::Create(config);
  at::Tensor ac = schedule->alphas_cumprod().to(at::kDouble);
  const double at_ = ac[t.item<int64_t>()].item<double>();
  const double an = ac[t_next].item<double>();
  at::Tensor x0 =
      (sample.to(at::kDouble) - std::sqrt(1 - at_) * eps.to(at::kDouble)) / std::sqrt(at_);
  at::Tensor expected = std::sqrt(an) * x0 + std::sqrt(1 - an) * eps.to(at::kDouble);
  EXPECT_LE(MaxAbs(a->prev_sample, expected), 2e-5);
}

TEST(DpmSolverTest, SecondOrderRunIsFiniteAndUsesLowerOrderAtTheEnd) {
  auto s = Make("dpmpp_2m", FixtureConfig(), 10);
  EXPECT_EQ(s->timesteps().size(0), 10);
  EXPECT_EQ(s->sigmas().size(0), 11);
  at::manual_seed(1);
  at::Tensor x = at::randn({1, 4, 8, 8});
  for (int64_t i = 0; i < s->timesteps().size(0); ++i) {
    auto out = s->Step(at::randn({1, 4, 8, 8}) * 0.1, s->timesteps()[i], x);
    ASSERT_TRUE(out.ok());
    x = out->prev_sample;
    ASSERT_TRUE(at::isfinite(x).all().item<bool>()) << i;
  }
  EXPECT_FALSE(s->Step(x, s->timesteps()[0], x).ok());  // schedule exhausted
}

// With the next sigma 0 the ancestral step adds no noise and equals the Euler step.
TEST(EulerAncestralTest, LastStepEqualsEulerAndNoiseIsSeeded) {
  SchedulerConfig config = FixtureConfig();
  auto euler = Make("euler", config, 10);
  auto ancestral = Make("euler_ancestral", config, 10);
  EXPECT_TRUE(at::equal(euler->timesteps(), ancestral->timesteps()));
  at::manual_seed(2);
  at::Tensor x = at::randn({1, 4, 8, 8});
  at::Tensor eps = at::randn({1, 4, 8, 8});
  at::Tensor last = euler->timesteps()[9];
  auto e = euler->Step(eps, last, x);
  auto a = ancestral->Step(eps, last, x);
  ASSERT_TRUE(e.ok() && a.ok());
  EXPECT_LE(MaxAbs(e->prev_sample, a->prev_sample), 1e-6);

  auto run = [&](uint64_t seed) {
    auto s = Make("euler_ancestral", config, 10);
    at::Generator gen = at::detail::createCPUGenerator(seed);
    auto out = s->Step(eps, s->timesteps()[0], x, &gen);
    return out->prev_sample;
  };
  EXPECT_TRUE(at::equal(run(7), run(7)));
  EXPECT_FALSE(at::equal(run(7), run(8)));
}

// DDIM with eta = 1 is DDPM's ancestral step (fixed_small variance), given the same noise.
TEST(DdpmSchedulerTest, EqualsDdimWithEtaOne) {
  SchedulerConfig config = FixtureConfig();
  auto ddpm = Make("ddpm", config, 10);
  auto ddim = Make("ddim", config, 10, SchedulerOptions{1.0});
  EXPECT_TRUE(at::equal(ddpm->timesteps(), ddim->timesteps()));
  at::manual_seed(3);
  at::Tensor x = at::randn({2, 4, 8, 8});
  at::Tensor eps = at::randn({2, 4, 8, 8});
  at::Tensor t = ddpm->timesteps()[4];
  at::Generator g1 = at::detail::createCPUGenerator(11);
  at::Generator g2 = at::detail::createCPUGenerator(11);
  auto a = ddpm->Step(eps, t, x, &g1);
  auto b = ddim->Step(eps, t, x, &g2);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_LE(MaxAbs(a->prev_sample, b->prev_sample), 1e-4);
  EXPECT_LE(MaxAbs(a->pred_original_sample, b->pred_original_sample), 1e-6);
}

// A v-prediction model that outputs the true velocity recovers x0 exactly.
TEST(VPredictionTest, TrueVelocityRecoversTheCleanSample) {
  SchedulerConfig config = FixtureConfig();
  config.prediction_type = "v_prediction";
  absl::StatusOr<DdpmTrainingSchedule> train = DdpmTrainingSchedule::Create(config);
  ASSERT_TRUE(train.ok());
  at::manual_seed(4);
  at::Tensor x0 = at::randn({1, 4, 8, 8});
  at::Tensor noise = at::randn({1, 4, 8, 8});
  for (std::string name : {"ddim", "euler", "dpmpp_2m"}) {
    auto s = Make(name, config, 10);
    at::Tensor t = s->timesteps()[2];  // integer-valued for every scheduler with "leading"
    at::Tensor t_int = t.to(at::kLong).reshape({1});
    at::Tensor xt = train->AddNoise(x0, noise, t_int);
    absl::StatusOr<at::Tensor> v = train->Target(x0, noise, t_int);
    ASSERT_TRUE(v.ok());
    at::Tensor sample = xt;
    if (name == "euler") {
      // Euler works on x0 + sigma * noise = x_t * sqrt(sigma^2 + 1).
      const double sigma = s->sigmas()[2].item<double>();
      sample = xt * std::sqrt(sigma * sigma + 1);
    }
    auto out = s->Step(*v, t, sample);
    ASSERT_TRUE(out.ok()) << name;
    EXPECT_LE(MaxAbs(out->pred_original_sample, x0), 1e-4) << name;
  }
}

// The fused guided DDIM step (kernels/guided_ddim_step.h) is offered exactly where DDIM's Step is
// its formula, and then gives Step's result for the guided output.
TEST(SchedulerTest, DeterministicDdimCoefficientsMatchStep) {
  SchedulerConfig config = FixtureConfig();
  std::unique_ptr<Scheduler> ddim = Make("ddim", config, 10);
  ASSERT_NE(ddim, nullptr);
  at::manual_seed(3);
  const at::Tensor x = at::randn({1, 4, 8, 8});
  const at::Tensor uncond = at::randn({1, 4, 8, 8});
  const at::Tensor text = at::randn({1, 4, 8, 8});
  for (int64_t i = 0; i < ddim->timesteps().size(0); ++i) {
    const at::Tensor t = ddim->timesteps()[i];
    std::optional<Scheduler::DdimCoefficients> c = ddim->DeterministicDdimCoefficients(t);
    ASSERT_TRUE(c.has_value()) << "step " << i;
    EXPECT_FALSE(c->v_prediction);
    const at::Tensor guided = uncond + 7.5 * (text - uncond);
    absl::StatusOr<SchedulerStepOutput> step = ddim->Step(guided, t, x);
    ASSERT_TRUE(step.ok()) << step.status();
    const at::Tensor fused =
        kernels::GuidedDdimStep(x, uncond, text, 7.5, c->alpha_prod_t, c->alpha_prod_prev,
                                kernels::PredictionType::kEpsilon);
    EXPECT_LE(MaxAbs(fused, step->prev_sample), 1e-5) << "step " << i;
  }
  // Not offered where Step differs: noise (eta > 0), clipping, or another scheduler.
  SchedulerOptions noisy;
  noisy.eta = 1.0;
  const at::Tensor t = ddim->timesteps()[0];
  EXPECT_FALSE(Make("ddim", config, 10, noisy)->DeterministicDdimCoefficients(t).has_value());
  SchedulerConfig clipped = config;
  clipped.clip_sample = true;
  EXPECT_FALSE(Make("ddim", clipped, 10)->DeterministicDdimCoefficients(t).has_value());
  EXPECT_FALSE(Make("euler", config, 10)->DeterministicDdimCoefficients(t).has_value());
}

}  // namespace
}  // namespace dreambooth::diffusion
