// `dbtool sample MODEL --prompt ...`: text-to-image sampling to PNG files.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/cli_flags.h"
#include "common/image/image.h"
#include "tools/dbtool/command_registry.h"
#include "tools/dbtool/sample_args.h"
#include "worker/diffusion/io/lora_file.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/diffusion/io/safetensors.h"
#include "worker/diffusion/models/lora.h"
#include "worker/diffusion/pipelines/pipeline.h"

namespace dreambooth::dbtool {
namespace {

struct SampleFlags {
  std::string model;
  diffusion::Text2ImageOptions options;
  std::string out_dir = ".";
  std::string save_latents;
  int64_t threads = 0;
  diffusion::LoadOptions load;
  diffusion::AttentionOptions attention;
  std::string lora;  // a LoRA file (diffusers, peft or kohya layout)
  double lora_scale = 1.0;
};

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

int RunSample(SampleFlags& flags) {
  if (flags.threads > 0) at::set_num_threads(static_cast<int>(flags.threads));
  const auto t0 = std::chrono::steady_clock::now();
  absl::StatusOr<diffusion::StableDiffusion> model =
      diffusion::LoadStableDiffusion(flags.model, flags.load);
  if (!model.ok()) {
    std::fprintf(stderr, "dbtool sample: %s\n", std::string(model.status().message()).c_str());
    return 1;
  }
  std::optional<diffusion::LoraAdapterSet> adapters;
  if (!flags.lora.empty()) {
    absl::StatusOr<diffusion::LoraFile> file = diffusion::ReadLoraFile(flags.lora, *model);
    absl::StatusOr<diffusion::LoraAdapterSet> bound =
        file.ok() ? diffusion::LoraAdapterSet::Bind(*model, file->adapters, flags.load.dtype)
                  : absl::StatusOr<diffusion::LoraAdapterSet>(file.status());
    if (!bound.ok()) {
      std::fprintf(stderr, "dbtool sample: --lora: %s\n",
                   std::string(bound.status().message()).c_str());
      return 1;
    }
    adapters = *std::move(bound);
    std::fprintf(stderr, "LoRA %s: %s layout, %zu adapters, rank %lld, scale %g\n",
                 flags.lora.c_str(), diffusion::LoraFileFormatName(file->format),
                 adapters->weights().size(), static_cast<long long>(adapters->rank()),
                 flags.lora_scale);
  }
  diffusion::ScopedLora lora({adapters ? &*adapters : nullptr, flags.lora_scale});
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

Runner DeclareSample(CLI::App& app) {
  auto f = std::make_shared<SampleFlags>();
  diffusion::Text2ImageOptions& o = f->options;
  o.steps = 30;
  app.add_option("MODEL", f->model, "tiny, a diffusers folder or a .safetensors file")->required();
  cli::AddRepeated(app, "--prompt", &o.prompts, "a prompt (repeatable: one image batch each)")
      ->required();
  cli::AddRepeated(app, "--negative-prompt", &o.negative_prompts,
                   "one for all prompts, or one per prompt (repeatable)");
  cli::AddInt(app, "--steps", &o.steps, "denoising steps", int64_t{1});
  cli::AddDouble(app, "--guidance", &o.guidance, "classifier-free guidance scale");
  cli::AddString(app, "--scheduler", &o.scheduler, "ddim|pndm|euler|euler_ancestral|dpmpp_2m|ddpm");
  cli::AddInt(app, "--seed", &o.seed, "seed of the initial noise");
  cli::AddInt(app, "--width", &o.width, "pixels (0: the model's native size)", int64_t{0});
  cli::AddInt(app, "--height", &o.height, "pixels (0: the model's native size)", int64_t{0});
  cli::AddInt(app, "--num-images", &o.num_images_per_prompt, "images per prompt", int64_t{1});
  cli::AddInt(app, "--clip-skip", &o.clip_skip, "text-encoder layers to skip from the end",
              int64_t{0});
  cli::AddString(app, "--out", &f->out_dir, "folder for sample_NNN.png");
  cli::AddString(app, "--save-latents", &f->save_latents, "also write the final latents here");
  cli::AddString(app, "--lora", &f->lora,
                 "a LoRA .safetensors file to apply (diffusers, peft or kohya/A1111 layout)");
  cli::AddDouble(app, "--lora-scale", &f->lora_scale, "multiplier of the LoRA's effect");
  AddThreadsOption(app, &f->threads);
  AddDeviceOption(app, &f->load.device);
  AddDtypeOption(app, &f->load.dtype);
  AddAttentionOption(app, &f->attention.backend);
  return [f] { return RunSample(*f); };
}

DB_REGISTER_COMMAND({"sample", "Generate images from text prompts (PNG files).", DeclareSample});

}  // namespace
}  // namespace dreambooth::dbtool
