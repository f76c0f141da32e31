// The documented defaults of a DreamBooth job (proto/dreambooth/v1/job_spec.proto): the one list,
// used by the spec rules (spec/job_spec_rules.h) to resolve a submitted JobSpec and by the
// training engine (worker/train/train_options.h) for its own defaults when used without a server
// (dbtool train). Header-only and free of protobuf so the engine can build with LibTorch alone.
// Values follow NeMo's DreamBooth where it has the option, otherwise diffusers' train_dreambooth.
#ifndef DREAMBOOTH_SPEC_JOB_SPEC_DEFAULTS_H_
#define DREAMBOOTH_SPEC_JOB_SPEC_DEFAULTS_H_

#include <array>
#include <string_view>

namespace dreambooth::spec {

// ---- Prior preservation ----
inline constexpr double kPriorLossWeight = 0.5;  // NeMo (diffusers: 1.0)
inline constexpr int kNumRegImages = 10;         // NeMo
inline constexpr int kNumImagesPerPrompt = 4;
// ---- Samplers (class images and validation images) ----
inline constexpr int kNumInferenceSteps = 50;
inline constexpr double kGuidanceScale = 7.5;
// ---- Data pipeline ----
inline constexpr int kResolution = 512;
inline constexpr bool kCenterCrop = true;
// use_cached_latents defaults to center_crop's value (a random crop cannot be cached).
// ---- Optimisation ----
inline constexpr double kLearningRate = 1e-6;
inline constexpr int kMaxTrainSteps = 400;
inline constexpr int kLrWarmupSteps = 0;
inline constexpr int kLrNumCycles = 1;
inline constexpr double kLrPower = 1.0;
inline constexpr int kTrainBatchSize = 1;
inline constexpr int kGradientAccumulationSteps = 1;
inline constexpr double kMaxGradNorm = 1.0;
inline constexpr double kAdamBeta1 = 0.9;
inline constexpr double kAdamBeta2 = 0.999;
inline constexpr double kAdamWeightDecay = 0.0;  // NeMo (diffusers: 1e-2)
inline constexpr double kAdamEpsilon = 1e-8;
// ---- LoRA (diffusers' train_dreambooth_lora.py: rank 4, alpha = rank) ----
inline constexpr int kLoraRank = 4;
inline constexpr double kLoraLearningRate = 1e-4;
inline constexpr int kLoraMaxRank = 256;
inline constexpr int kLoraMaxTargets = 16;
// The layers that can carry an adapter (peft target names; worker/diffusion/models/lora.h).
inline constexpr std::array<std::string_view, 12> kLoraUNetTargets = {
    "to_q",    "to_k",     "to_v",  "to_out.0", "ff.net.0.proj", "ff.net.2",
    "proj_in", "proj_out", "conv1", "conv2",    "conv_shortcut", "time_emb_proj"};
inline constexpr std::array<std::string_view, 6> kLoraTextEncoderTargets = {
    "q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"};
inline constexpr std::array<std::string_view, 4> kLoraDefaultUNetTargets = {"to_q", "to_k", "to_v",
                                                                            "to_out.0"};
inline constexpr std::array<std::string_view, 4> kLoraDefaultTextEncoderTargets = {
    "q_proj", "k_proj", "v_proj", "out_proj"};
inline constexpr double kMaxLoraScale = 4.0;  // |SampleRequest.lora_scale|
// ---- Checkpoints and validation ----
inline constexpr int kCheckpointingSteps = 200;
inline constexpr int kCheckpointsTotalLimit = 10;
inline constexpr int kResumeCheckpointsToKeep = 1;
inline constexpr int kValidationSteps = 100;
inline constexpr int kNumValidationImages = 1;
// ---- Retries ----
inline constexpr int kMaxAttempts = 3;
inline constexpr int kMaxInfraAttempts = 10;

// ---- Devices, scheduling and memory ----
inline constexpr int kNumDevices = 1;
inline constexpr int kMaxNumDevices = 64;
inline constexpr int kNumNodes = 1;
inline constexpr int kMaxNumNodes = 64;
inline constexpr int kMaxPriority = 1000;  // |JobSpec.priority|

}  // namespace dreambooth::spec

#endif  // DREAMBOOTH_SPEC_JOB_SPEC_DEFAULTS_H_
