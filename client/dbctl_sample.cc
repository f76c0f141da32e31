// dbctl sample: renders images from a job's checkpoint through the Sample RPC and writes them
// as PNG files.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "client/dbctl.h"

namespace dreambooth::dbctl {

int Sample(client::Client& client, const Args& args, const Output& out) {
  if (args.positional.size() != 1) return UsageError("sample needs one JOB_ID");
  if (!args.Has("prompt")) return UsageError("sample needs --prompt");
  v1::SampleRequest request;
  request.set_job_id(args.positional[0]);
  request.set_checkpoint_id(args.Get("checkpoint"));
  request.set_prompt(args.Get("prompt"));
  request.mutable_sampler()->set_negative_prompt(args.Get("negative-prompt"));
  struct IntFlag {
    const char* flag;
    std::function<void(int64_t)> set;
  };
  for (const IntFlag& f : {
           IntFlag{"num-images", [&](int64_t v) { request.set_num_images(static_cast<int>(v)); }},
           IntFlag{"width", [&](int64_t v) { request.set_width(static_cast<int>(v)); }},
           IntFlag{"height", [&](int64_t v) { request.set_height(static_cast<int>(v)); }},
           IntFlag{"steps",
                   [&](int64_t v) {
                     request.mutable_sampler()->set_num_inference_steps(static_cast<int>(v));
                   }},
           IntFlag{"seed", [&](int64_t v) { request.set_seed(static_cast<uint64_t>(v)); }},
       }) {
    if (!args.Has(f.flag)) continue;
    int64_t v = 0;
    if (!absl::SimpleAtoi(args.Get(f.flag), &v) || v < 0) {
      return UsageError(absl::StrFormat("--%s must be a non-negative integer", f.flag));
    }
    f.set(v);
  }
  if (args.Has("guidance")) {
    double g = 0;
    if (!absl::SimpleAtod(args.Get("guidance"), &g)) return UsageError("--guidance: a number");
    request.mutable_sampler()->set_guidance_scale(static_cast<float>(g));
  }
  const std::string dir = args.Get("out", ".");
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

}  // namespace dreambooth::dbctl
