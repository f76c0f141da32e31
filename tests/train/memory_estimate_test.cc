// Tests of the peak-memory estimate (worker/train/memory_estimate.h): parameter counts against the
// real modules, the direction of every knob, PlanMemory's policies, and the estimate against the
// peak RSS measured by `dbtool memory --measure` in a child process (docs/memory.md).
#include "worker/train/memory_estimate.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "worker/diffusion/io/model_loader.h"
#include "worker/diffusion/models/autoencoder_kl.h"
#include "worker/diffusion/models/clip_text_model.h"
#include "worker/diffusion/models/lora.h"
#include "worker/diffusion/models/sd15_config.h"
#include "worker/diffusion/models/tiny_model.h"
#include "worker/diffusion/models/unet_2d_condition.h"

namespace dreambooth::train {
namespace {

constexpr int64_t kGiB = int64_t{1} << 30;

ModelConfigs Mid() {
  absl::StatusOr<diffusion::UNet2DConditionConfig> unet =
      diffusion::UNet2DConditionConfig::FromFile(DB_TEST_DATA_DIR "/bench/mid/unet/config.json");
  EXPECT_TRUE(unet.ok()) << unet.status();
  return {*unet, diffusion::Sd15VaeConfig(), diffusion::Sd15TextConfig()};
}

ModelConfigs Sd15() {
  return {diffusion::Sd15UNetConfig(), diffusion::Sd15VaeConfig(), diffusion::Sd15TextConfig()};
}

ModelConfigs Configs(const std::string& name) {
  absl::StatusOr<ModelConfigs> c = ModelConfigs::Load(name);
  EXPECT_TRUE(c.ok()) << c.status();
  return *c;
}

int64_t Total(const TrainOptions& o, const ModelConfigs& c, DeviceKind kind = DeviceKind::kCpu) {
  absl::StatusOr<MemoryEstimate> e = EstimateTrainingMemory(o, c, kind);
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? e->total_bytes : 0;
}

TEST(MemoryEstimateTest, ParameterCountsMatchTheModules) {
  at::NoGradGuard no_grad;
  for (const ModelConfigs& c : {Configs("tiny"), Configs("toy"), Mid()}) {
    EXPECT_EQ(UNetParameterCount(c.unet),
              diffusion::CountParameters(*diffusion::UNet2DConditionModel(c.unet)));
    EXPECT_EQ(VaeParameterCount(c.vae),
              diffusion::CountParameters(*diffusion::AutoencoderKL(c.vae)));
    EXPECT_EQ(TextEncoderParameterCount(c.text_encoder),
              diffusion::CountParameters(*diffusion::CLIPTextModel(c.text_encoder)));
  }
  // SD 1.5's published counts (sd15_config.h), without building 1.1 B parameters.
  EXPECT_EQ(UNetParameterCount(diffusion::Sd15UNetConfig()), 859'520'964);
  EXPECT_EQ(VaeParameterCount(diffusion::Sd15VaeConfig()), 83'653'863);
  EXPECT_EQ(TextEncoderParameterCount(diffusion::Sd15TextConfig()), 123'060'480);
}

TEST(MemoryEstimateTest, LoraParameterCountMatchesTheAdapters) {
  for (const char* name : {"tiny", "toy"}) {
    const ModelConfigs c = Configs(name);
    diffusion::RandomModelSpec spec;
    spec.text_encoder_config = c.text_encoder;
    spec.unet_config = c.unet;
    spec.vae_config = c.vae;
    auto scheduler = diffusion::SchedulerConfig::FromJson(diffusion::TinySchedulerConfigJson());
    ASSERT_TRUE(scheduler.ok()) << scheduler.status();
    spec.scheduler_config = *scheduler;
    absl::StatusOr<diffusion::StableDiffusion> model = diffusion::CreateRandomModel(spec);
    ASSERT_TRUE(model.ok()) << model.status();
    const LoraTrainOptions lo;
    diffusion::LoraTargets targets{lo.unet_targets, lo.text_encoder_targets};
    auto adapters = diffusion::LoraAdapterSet::Create(*model, targets, 4, 4.0,
                                                      at::detail::createCPUGenerator(1));
    ASSERT_TRUE(adapters.ok()) << adapters.status();
    int64_t real = 0;
    for (const auto& [n, p] : adapters->NamedParameters()) real += p.numel();
    EXPECT_EQ(LoraParameterCount(c, 4, lo.unet_targets, lo.text_encoder_targets), real) << name;
  }
}

TEST(MemoryEstimateTest, EveryKnobMovesTheEstimateTheRightWay) {
  const ModelConfigs c = Mid();
  TrainOptions o;
  o.resolution = 256;
  o.use_cached_latents = true;
  const int64_t base = Total(o, c);
  TrainOptions bigger = o;
  bigger.resolution = 384;
  EXPECT_GT(Total(bigger, c), base);
  bigger = o;
  bigger.train_batch_size = 2;
  EXPECT_GT(Total(bigger, c), base);
  bigger = o;
  bigger.with_prior_preservation = true;
  EXPECT_GT(Total(bigger, c), base);
  bigger = o;
  bigger.train_text_encoder = true;
  EXPECT_GT(Total(bigger, c), base);
  bigger = o;
  bigger.use_ema = true;
  EXPECT_GT(Total(bigger, c), base);
  TrainOptions smaller = o;
  smaller.gradient_checkpointing = true;
  EXPECT_LT(Total(smaller, c), base);
  smaller = o;
  smaller.lora.enabled = true;
  EXPECT_LT(Total(smaller, c), base);
  // bf16 on a GPU (on the CPU the float32 masters of the frozen modules stay in RSS).
  smaller = o;
  smaller.mixed_precision = MixedPrecision::kBf16;
  EXPECT_LT(Total(smaller, c, DeviceKind::kCuda), Total(o, c, DeviceKind::kCuda));
  // A 512x512 SD 1.5 full fine-tune needs well over 12 GiB; LoRA + bf16 + checkpointing fits 8.
  TrainOptions sd = o;
  sd.resolution = 512;
  EXPECT_GT(Total(sd, Sd15(), DeviceKind::kCuda), 12 * kGiB);
  sd.lora.enabled = true;
  sd.mixed_precision = MixedPrecision::kBf16;
  sd.gradient_checkpointing = true;
  EXPECT_LT(Total(sd, Sd15(), DeviceKind::kCuda), 8 * kGiB);
}

TEST(MemoryEstimateTest, EstimateDescribesItselfAndRejectsBadResolutions) {
  TrainOptions o;
  o.resolution = 64;
  absl::StatusOr<MemoryEstimate> e = EstimateTrainingMemory(o, Configs("tiny"), DeviceKind::kCpu);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->total_bytes, e->runtime_bytes + e->weights_bytes + e->gradients_bytes +
                                e->optimizer_bytes + e->activations_bytes + e->overhead_bytes);
  EXPECT_EQ(e->peak_phase, "training");
  EXPECT_NE(e->Describe().find("estimated peak "), std::string::npos) << e->Describe();
  o.resolution = 63;
  EXPECT_EQ(EstimateTrainingMemory(o, Configs("tiny"), DeviceKind::kCpu).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<MemoryEstimate> s =
      EstimateSamplingMemory(Sd15(), 512, 4, 7.5, MixedPrecision::kNo, DeviceKind::kCuda);
  ASSERT_TRUE(s.ok()) << s.status();
  absl::StatusOr<MemoryEstimate> s1 =
      EstimateSamplingMemory(Sd15(), 512, 1, 7.5, MixedPrecision::kNo, DeviceKind::kCuda);
  EXPECT_GT(s->total_bytes, s1->total_bytes);
}

TEST(MemoryEstimateTest, RefuseNamesEstimateAndBudget) {
  TrainOptions o;
  o.resolution = 512;
  const int64_t need = Total(o, Sd15(), DeviceKind::kCuda);
  absl::StatusOr<MemoryPlan> plan =
      PlanMemory(o, Sd15(), DeviceKind::kCuda, need - 1, MemoryPolicy::kRefuse);
  ASSERT_EQ(plan.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(plan.status().message().find(FormatBytes(need)), std::string::npos) << plan.status();
  EXPECT_NE(plan.status().message().find(FormatBytes(need - 1)), std::string::npos);
  plan = PlanMemory(o, Sd15(), DeviceKind::kCuda, need, MemoryPolicy::kRefuse);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->notes.empty());
  EXPECT_EQ(plan->estimate.total_bytes, need);
}

TEST(MemoryEstimateTest, AdaptTurnsOnSaversInOrder) {
  TrainOptions o;
  o.resolution = 512;
  o.with_prior_preservation = true;
  o.num_images_per_prompt = 16;
  const ModelConfigs c = Sd15();
  TrainOptions ckpt = o;
  ckpt.gradient_checkpointing = true;
  const int64_t with_ckpt = Total(ckpt, c, DeviceKind::kCuda);
  ASSERT_LT(with_ckpt, Total(o, c, DeviceKind::kCuda));

  // A budget checkpointing alone meets: one note, nothing else changed.
  absl::StatusOr<MemoryPlan> plan =
      PlanMemory(o, c, DeviceKind::kCuda, with_ckpt, MemoryPolicy::kAdapt);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->options.gradient_checkpointing);
  EXPECT_EQ(plan->options.num_images_per_prompt, 16);
  ASSERT_EQ(plan->notes.size(), 1u);
  EXPECT_EQ(plan->notes[0].rfind("turned on gradient checkpointing: estimated peak ", 0), 0u)
      << plan->notes[0];

  // Just under what checkpointing gives: the class-generation batch is halved next, if that is
  // what holds the peak; otherwise the plan fails naming what it tried.
  absl::StatusOr<MemoryEstimate> e = EstimateTrainingMemory(ckpt, c, DeviceKind::kCuda);
  ASSERT_TRUE(e.ok());
  ASSERT_EQ(e->peak_phase, "class generation") << e->Describe();
  plan = PlanMemory(o, c, DeviceKind::kCuda, with_ckpt - 1, MemoryPolicy::kAdapt);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_GE(plan->notes.size(), 2u);
  EXPECT_NE(plan->notes[1].find("halved the class-generation batch"), std::string::npos);
  EXPECT_LT(plan->options.num_images_per_prompt, 16);
  EXPECT_LE(plan->estimate.total_bytes, with_ckpt - 1);
  // What is trained is unchanged.
  EXPECT_EQ(plan->options.mixed_precision, o.mixed_precision);
  EXPECT_EQ(plan->options.lora.enabled, o.lora.enabled);
  EXPECT_EQ(plan->options.train_batch_size, o.train_batch_size);

  plan = PlanMemory(o, c, DeviceKind::kCuda, kGiB, MemoryPolicy::kAdapt);
  ASSERT_EQ(plan.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(plan.status().message().find("gradient checkpointing"), std::string::npos)
      << plan.status();
  EXPECT_NE(plan.status().message().find("budget 1.0 GiB"), std::string::npos);
}

#ifdef DB_DBTOOL_PATH
// Runs `dbtool memory --measure ARGS` and returns its JSON line.
nlohmann::json RunMeasure(const std::string& args) {
  const std::string cmd =
      std::string(DB_DBTOOL_PATH) + " memory --measure --threads 2 " + args + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  EXPECT_NE(pipe, nullptr);
  std::string out;
  std::array<char, 4096> buf;
  while (pipe != nullptr && fgets(buf.data(), buf.size(), pipe) != nullptr) out += buf.data();
  const int rc = pipe != nullptr ? pclose(pipe) : -1;
  EXPECT_EQ(rc, 0) << cmd << "\n" << out;
  nlohmann::json line = nlohmann::json::parse(out.substr(0, out.find('\n')), nullptr, false);
  EXPECT_FALSE(line.is_discarded()) << out;
  return line;
}

// The "table is checked against measurement" part of docs/memory.md, on configurations that run
// in seconds: the estimate within +-20 % of the measured peak RSS of a separate process.
TEST(MemoryEstimateTest, EstimateWithinTwentyPercentOfMeasuredPeakRss) {
  for (const std::string& args :
       {std::string("--model tiny --resolution 64 --steps 2 --prior-preservation"),
        std::string("--model mid --resolution 128 --steps 1 --prior-preservation"),
        std::string("--model mid --resolution 128 --steps 1 --gradient-checkpointing")}) {
    const nlohmann::json line = RunMeasure(args);
    ASSERT_TRUE(line.is_object() && line.contains("ratio")) << args << ": " << line.dump();
    const double ratio = line["ratio"].get<double>();
    EXPECT_GE(ratio, 0.8) << args << ": " << line.dump();
    EXPECT_LE(ratio, 1.2) << args << ": " << line.dump();
  }
}
#endif

}  // namespace
}  // namespace dreambooth::train
