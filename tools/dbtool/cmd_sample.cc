// `dbtool sample MODEL --prompt ...`: text-to-image sampling to PNG files.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/image/image.h"
#include "tools/dbtool/command_registry.h"
#include "tools/dbtool/sample_args.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/diffusion/io/safetensors.h"
#include "worker/diffusion/pipelines/pipeline.h"

namespace dreambooth::dbtool {
namespace {

constexpr char kUsage[] =
    "sample MODEL --prompt TEXT [--prompt TEXT ...] [--negative-prompt TEXT] [--steps N=30] "
    "[--guidance G=7.5] [--scheduler ddim|pndm|euler|euler_ancestral|dpmpp_2m|ddpm] [--seed S=0] "
    "[--width W] [--height H] [--num-images N=1] [--out DIR=.] [--save-latents FILE] "
    "[--clip-skip K] [--threads T] [--device cpu|cuda] [--dtype fp32|fp16|bf16] "
    "[--attention auto|sdpa|math|chunked|sliced]";

struct SampleFlags {
  std::string model;
  diffusion::Text2ImageOptions options;
  std::string out_dir = ".";
  std::string save_latents;
  int64_t threads = 0;
  diffusion::LoadOptions load;
  diffusion::AttentionOptions attention;
};

absl::Status ParseFlags(const std::vector<std::string>& args, SampleFlags* f) {
  f->options.steps = 30;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0) {
      if (!f->model.empty()) return absl::InvalidArgumentError("unexpected argument " + a);
      f->model = a;
      continue;
    }
    if (i + 1 >= args.size()) return absl::InvalidArgumentError(a + " needs a value");
    const std::string& v = args[++i];
    auto set_int = [&](int64_t* out) -> absl::Status {
      absl::StatusOr<int64_t> x = ParseIntFlag(a, v);
      if (!x.ok()) return x.status();
      *out = *x;
      return absl::OkStatus();
    };
    absl::Status st;
    if (a == "--prompt") {
      f->options.prompts.push_back(v);
    } else if (a == "--negative-prompt") {
      f->options.negative_prompts.push_back(v);
    } else if (a == "--steps") {
      st = set_int(&f->options.steps);
    } else if (a == "--guidance") {
      absl::StatusOr<double> x = ParseDoubleFlag(a, v);
      if (!x.ok()) return x.status();
      f->options.guidance = *x;
    } else if (a == "--scheduler") {
      f->options.scheduler = v;
    } else if (a == "--seed") {
      int64_t seed = 0;
      st = set_int(&seed);
      f->options.seed = static_cast<uint64_t>(seed);
    } else if (a == "--width") {
      st = set_int(&f->options.width);
    } else if (a == "--height") {
      st = set_int(&f->options.height);
    } else if (a == "--num-images") {
      st = set_int(&f->options.num_images_per_prompt);
    } else if (a == "--clip-skip") {
      st = set_int(&f->options.clip_skip);
    } else if (a == "--out") {
      f->out_dir = v;
    } else if (a == "--save-latents") {
      f->save_latents = v;
    } else if (a == "--threads") {
      st = set_int(&f->threads);
    } else if (a == "--device") {
      absl::StatusOr<at::Device> d = ParseDeviceFlag(v);
      if (!d.ok()) return d.status();
      f->load.device = *d;
    } else if (a == "--dtype") {
      absl::StatusOr<at::ScalarType> t = ParseDtypeFlag(v);
      if (!t.ok()) return t.status();
      f->load.dtype = *t;
    } else if (a == "--attention") {
      std::optional<diffusion::AttentionBackend> b = diffusion::ParseAttentionBackend(v);
      if (!b) return absl::InvalidArgumentError("unknown --attention " + v);
      f->attention.backend = *b;
    } else {
      return absl::InvalidArgumentError("unknown flag " + a);
    }
    if (!st.ok()) return st;
  }
  if (f->model.empty()) return absl::InvalidArgumentError("MODEL is required");
  if (f->options.prompts.empty()) return absl::InvalidArgumentError("--prompt is required");
  return absl::OkStatus();
}

absl::Status WritePngs(const at::Tensor& images, const std::string& dir,
                       std::vector<std::string>* written) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  for (int64_t i = 0; i < images.size(0); ++i) {
    const at::Tensor img = images[i].contiguous();  // [H, W, 3] uint8
    image::Image out;
    out.height = static_cast<int>(img.size(0));
    out.width = static_cast<int>(img.size(1));
    out.rgb.assign(img.data_ptr<uint8_t>(), img.data_ptr<uint8_t>() + img.numel());
    absl::StatusOr<std::string> png = image::EncodePng(out);
    if (!png.ok()) return png.status();
    const std::string path = absl::StrFormat("%s/sample_%03d.png", dir, i);
    std::ofstream file(path, std::ios::binary);
    file.write(png->data(), static_cast<std::streamsize>(png->size()));
    if (!file) return absl::InternalError("cannot write " + path);
    written->push_back(path);
  }
  return absl::OkStatus();
}

int RunSample(const std::vector<std::string>& args) {
  SampleFlags flags;
  if (absl::Status st = ParseFlags(args, &flags); !st.ok()) {
    std::fprintf(stderr, "dbtool sample: %s\nusage: dbtool %s\n", std::string(st.message()).c_str(),
                 kUsage);
    return 2;
  }
  if (flags.threads > 0) at::set_num_threads(static_cast<int>(flags.threads));
  const auto t0 = std::chrono::steady_clock::now();
  absl::StatusOr<diffusion::StableDiffusion> model =
      diffusion::LoadStableDiffusion(flags.model, flags.load);
  if (!model.ok()) {
    std::fprintf(stderr, "dbtool sample: %s\n", std::string(model.status().message()).c_str());
    return 1;
  }
  model->unet->set_attention_options(flags.attention);
  diffusion::SetAttentionOptions(*model->vae, flags.attention);
  const auto t1 = std::chrono::steady_clock::now();
  flags.options.on_step = [](int64_t step, int64_t total, const at::Tensor&) {
    std::fprintf(stderr, "\rstep %lld/%lld", static_cast<long long>(step + 1),
                 static_cast<long long>(total));
    return true;
  };
  absl::StatusOr<diffusion::Text2ImageResult> result = diffusion::Text2Image(*model, flags.options);
  std::fprintf(stderr, "\n");
  if (!result.ok()) {
    std::fprintf(stderr, "dbtool sample: %s\n", std::string(result.status().message()).c_str());
    return 1;
  }
  const auto t2 = std::chrono::steady_clock::now();
  std::vector<std::string> written;
  if (absl::Status st = WritePngs(result->images, flags.out_dir, &written); !st.ok()) {
    std::fprintf(stderr, "dbtool sample: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  if (!flags.save_latents.empty()) {
    absl::Status st =
        diffusion::WriteSafetensors(flags.save_latents, {{"latents", result->latents.contiguous()}},
                                    {{"model", flags.model},
                                     {"digest", model->digest},
                                     {"scheduler", flags.options.scheduler}});
    if (!st.ok()) {
      std::fprintf(stderr, "dbtool sample: %s\n", std::string(st.message()).c_str());
      return 1;
    }
  }
  using Seconds = std::chrono::duration<double>;
  for (const std::string& path : written) std::printf("%s\n", path.c_str());
  std::printf("loaded in %.2f s, sampled %lld image(s) of %lldx%lld in %.2f s (%lld steps)\n",
              Seconds(t1 - t0).count(), static_cast<long long>(result->images.size(0)),
              static_cast<long long>(result->images.size(2)),
              static_cast<long long>(result->images.size(1)), Seconds(t2 - t1).count(),
              static_cast<long long>(flags.options.steps));
  return 0;
}

DB_REGISTER_COMMAND({"sample", kUsage, "Generate images from text prompts (PNG files).",
                     RunSample});

}  // namespace
}  // namespace dreambooth::dbtool
