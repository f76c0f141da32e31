// dbctl sample: renders images from a job's checkpoint through the Sample RPC and writes them
// as PNG files.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <memory>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/dbctl.h"
#include "common/cli_flags.h"
#include "spec/job_spec_defaults.h"

namespace dreambooth::dbctl {

namespace {

// What `dbctl sample` reads. Only the options given are sent; the values here are the server's
// defaults, shown by --help. Integers need only fit the request's fields and be non-negative: the
// server owns the bounds.
struct SampleArgs {
  std::string job_id;
  std::string checkpoint;
  std::string prompt;
  std::string negative_prompt;
  int32_t num_images = 1;
  int32_t width = 0;
  int32_t height = 0;
  int32_t steps = spec::kNumInferenceSteps;
  double guidance = spec::kGuidanceScale;
  uint64_t seed = 0;
  double lora_scale = 1.0;
  v1::SchedulerKind scheduler = v1::SCHEDULER_KIND_UNSPECIFIED;
  std::string out = ".";
};

// "euler-ancestral" for SCHEDULER_KIND_EULER_ANCESTRAL.
std::string SchedulerFlagName(v1::SchedulerKind kind) {
  std::string name = absl::AsciiStrToLower(
      v1::SchedulerKind_Name(kind).substr(std::string("SCHEDULER_KIND_").size()));
  for (char& c : name) c = c == '_' ? '-' : c;
  return name;
}

// Every scheduler's flag name, "ddim|pndm|...".
std::string SchedulerChoices() {
  std::string names;
  for (int i = v1::SchedulerKind_MIN; i <= v1::SchedulerKind_MAX; ++i) {
    if (!v1::SchedulerKind_IsValid(i) || i == v1::SCHEDULER_KIND_UNSPECIFIED) continue;
    absl::StrAppend(&names, names.empty() ? "" : "|",
                    SchedulerFlagName(static_cast<v1::SchedulerKind>(i)));
  }
  return names;
}

absl::StatusOr<v1::SchedulerKind> ParseScheduler(const std::string& text) {
  for (int i = v1::SchedulerKind_MIN; i <= v1::SchedulerKind_MAX; ++i) {
    const auto kind = static_cast<v1::SchedulerKind>(i);
    if (v1::SchedulerKind_IsValid(i) && i != v1::SCHEDULER_KIND_UNSPECIFIED &&
        SchedulerFlagName(kind) == text) {
      return kind;
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown scheduler '", text, "'; expected ", SchedulerChoices()));
}

int Sample(client::Client& client, const CLI::App& command, const SampleArgs& args,
           const Output& out) {
  const auto given = [&command](const char* flag) { return command.count(flag) > 0; };
  v1::SampleRequest request;
  request.set_job_id(args.job_id);
  request.set_checkpoint_id(args.checkpoint);
  request.set_prompt(args.prompt);
  request.mutable_sampler()->set_negative_prompt(args.negative_prompt);
  if (given("--num-images")) request.set_num_images(args.num_images);
  if (given("--width")) request.set_width(args.width);
  if (given("--height")) request.set_height(args.height);
  if (given("--steps")) request.mutable_sampler()->set_num_inference_steps(args.steps);
  if (given("--seed")) request.set_seed(args.seed);
  if (given("--lora-scale")) request.set_lora_scale(static_cast<float>(args.lora_scale));
  if (given("--scheduler")) request.mutable_sampler()->set_scheduler(args.scheduler);
  if (given("--guidance")) {
    request.mutable_sampler()->set_guidance_scale(static_cast<float>(args.guidance));
  }
  const std::string& dir = args.out;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  int written = 0;
  std::string write_error;
  absl::Status status = client.Sample(request, [&](const v1::SampleResponse& r) {
    if (r.has_progress()) {
      if (out.format != Format::kTable) return;
      if (out.tty) {
        std::fprintf(stdout, "\r  %-24s %3d/%-3d", r.progress().message().c_str(),
                     r.progress().step(), r.progress().total());
        std::fflush(stdout);
      }
      return;
    }
    const v1::SampleImage& image = r.image();
    const std::string path =
        (std::filesystem::path(dir) / absl::StrFormat("sample-%02d.png", image.index())).string();
    if (!WriteFile(path, image.png())) {
      write_error = "cannot write " + path;
      return;
    }
    ++written;
    if (out.json()) {
      std::printf("{\"index\":%d,\"path\":\"%s\",\"width\":%d,\"height\":%d,\"seed\":%llu}\n",
                  image.index(), path.c_str(), image.width(), image.height(),
                  static_cast<unsigned long long>(image.seed()));
    } else if (out.name()) {
      std::printf("%s\n", path.c_str());
    } else {
      std::printf("%s%s  %dx%d  seed %llu\n", out.tty ? "\r" : "", path.c_str(), image.width(),
                  image.height(), static_cast<unsigned long long>(image.seed()));
    }
  });
  if (!status.ok()) return Fail(status);
  if (!write_error.empty()) return LocalFailure(write_error);
  if (out.format == Format::kTable) {
    std::printf("%d image(s) written to %s\n", written, dir.c_str());
  }
  return kExitOk;
}

}  // namespace

Command AddSample(CLI::App& parent) {
  CLI::App* cmd = parent.add_subcommand(
      "sample",
      "Render images from a job's checkpoint into PNG files (sample-NN.png); -o name prints "
      "each file's path");
  auto a = std::make_shared<SampleArgs>();
  constexpr int32_t kMax = std::numeric_limits<int32_t>::max();
  cmd->add_option("JOB_ID", a->job_id, "the job")->required();
  cli::AddString(*cmd, "--prompt", &a->prompt, "what to render")->required();
  cli::AddString(*cmd, "--checkpoint", &a->checkpoint,
                 "checkpoint id (default: the job's newest sampleable one)");
  cli::AddString(*cmd, "--negative-prompt", &a->negative_prompt, "the unconditional prompt");
  cli::AddInt(*cmd, "--num-images", &a->num_images, "images to render", 0, kMax);
  cli::AddInt(*cmd, "--width", &a->width, "pixels (default: the job's resolution)", 0, kMax)
      ->default_str("");
  cli::AddInt(*cmd, "--height", &a->height, "pixels (default: the job's resolution)", 0, kMax)
      ->default_str("");
  cli::AddInt(*cmd, "--steps", &a->steps, "denoising steps", 0, kMax);
  cli::AddDouble(*cmd, "--guidance", &a->guidance, "classifier-free guidance scale");
  cli::AddInt(*cmd, "--seed", &a->seed, "seed (default: random, reported per image)")
      ->default_str("");
  cli::AddDouble(*cmd, "--lora-scale", &a->lora_scale,
                 "strength of a LoRA checkpoint's adapter (LoRA checkpoints only)");
  cli::AddParsed(*cmd, "--scheduler", &a->scheduler, ParseScheduler,
                 "the noise scheduler: " + SchedulerChoices() + " (default: ddim)", "SCHEDULER");
  cli::AddString(*cmd, "--out", &a->out, "folder for the PNG files");
  return {cmd, [cmd, a](client::Client& client, const Output& out) {
            return Sample(client, *cmd, *a, out);
          }};
}

}  // namespace dreambooth::dbctl
