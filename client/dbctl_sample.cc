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
  std::string out = ".";
};

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
      if (out.json) return;
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
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    file.write(image.png().data(), static_cast<std::streamsize>(image.png().size()));
    if (!file) {
      write_error = "cannot write " + path;
      return;
    }
    ++written;
    if (out.json) {
      std::printf("{\"index\":%d,\"path\":\"%s\",\"width\":%d,\"height\":%d,\"seed\":%llu}\n",
                  image.index(), path.c_str(), image.width(), image.height(),
                  static_cast<unsigned long long>(image.seed()));
    } else {
      std::printf("%s%s  %dx%d  seed %llu\n", out.tty ? "\r" : "", path.c_str(), image.width(),
                  image.height(), static_cast<unsigned long long>(image.seed()));
    }
  });
  if (!status.ok()) {
    std::fprintf(stderr, "dbctl: sample failed: %s\n", status.ToString().c_str());
    return 1;
  }
  if (!write_error.empty()) {
    std::fprintf(stderr, "dbctl: %s\n", write_error.c_str());
    return 1;
  }
  if (!out.json) std::printf("%d image(s) written to %s\n", written, dir.c_str());
  return 0;
}

}  // namespace

Command AddSample(CLI::App& parent) {
  CLI::App* cmd = parent.add_subcommand(
      "sample", "Render images from a job's checkpoint into PNG files (sample-NN.png)");
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
  cli::AddString(*cmd, "--out", &a->out, "folder for the PNG files");
  return {cmd, [cmd, a](client::Client& client, const Output& out) {
            return Sample(client, *cmd, *a, out);
          }};
}

}  // namespace dreambooth::dbctl
