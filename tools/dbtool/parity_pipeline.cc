// Golden check "pipeline": full guided text-to-image runs (one per scheduler group in the
// golden, e.g. "ddim.*" and "euler.*") from the golden's prompt ids and initial noise, comparing
// the prompt embeddings, timesteps, latents after every step, final latents and the image.
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "tools/dbtool/parity_registry.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/diffusion/pipelines/pipeline.h"

namespace dreambooth::dbtool {
namespace {

// A number "key=<value>" in the manifest's description of golden/pipeline.safetensors.
double DescribedValue(const ParityContext& ctx, const std::string& key, double fallback) {
  if (ctx.manifest == nullptr) return fallback;
  const nlohmann::json& files = ctx.manifest->value("files", nlohmann::json::object());
  auto it = files.find("golden/" + ctx.golden_name + ".safetensors");
  if (it == files.end() || !it->contains("description")) return fallback;
  const std::string description = it->at("description").get<std::string>();
  std::smatch m;
  if (std::regex_search(description, m, std::regex(key + "=([0-9.eE+-]+)"))) {
    return std::stod(m[1].str());
  }
  return fallback;
}

void RunPipeline(const ParityContext& ctx, ParityReporter& r) {
  absl::StatusOr<diffusion::StableDiffusion*> model = ctx.model();
  if (!model.ok()) return r.Fail("pipeline", std::string(model.status().message()));
  const at::Tensor* prompt_ids = ctx.Get("in.prompt_ids", r);
  const at::Tensor* negative_ids = ctx.Get("in.negative_prompt_ids", r);
  const at::Tensor* latents = ctx.Get("in.latents", r);
  if (prompt_ids == nullptr || negative_ids == nullptr || latents == nullptr) return;

  std::set<std::string> schedulers;
  for (const auto& [name, tensor] : *ctx.golden) {
    const std::string suffix = ".final_latents";
    if (name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      schedulers.insert(name.substr(0, name.size() - suffix.size()));
    }
  }
  if (schedulers.empty()) return r.Fail("pipeline", "no <scheduler>.final_latents in the golden");
  const int64_t factor = (*model)->vae->downscale_factor();
  bool embeds_checked = false;
  for (const std::string& scheduler : schedulers) {
    const at::Tensor* timesteps = ctx.Get(scheduler + ".timesteps", r);
    if (timesteps == nullptr) continue;
    diffusion::Text2ImageOptions options;
    options.prompt_ids = *prompt_ids;
    options.negative_prompt_ids = *negative_ids;
    options.initial_latents = *latents;
    options.cuda_graphs = ctx.cuda_graphs;
    options.scheduler = scheduler;
    // diffusers lists N + 1 timesteps for N PNDM steps: the description's num_inference_steps
    // is the step count when it is there.
    options.steps = static_cast<int64_t>(
        DescribedValue(ctx, "num_inference_steps", static_cast<double>(timesteps->numel())));
    options.guidance = DescribedValue(ctx, "guidance_scale", 7.5);
    options.eta = DescribedValue(ctx, "eta", 0.0);
    options.height = latents->size(2) * factor;
    options.width = latents->size(3) * factor;
    std::vector<at::Tensor> per_step;
    options.on_step = [&](int64_t, int64_t, const at::Tensor& x) {
      per_step.push_back(x.to(at::kCPU).clone());
      return true;
    };
    absl::StatusOr<diffusion::Text2ImageResult> result = diffusion::Text2Image(**model, options);
    if (!result.ok()) {
      r.Fail("pipeline/" + scheduler, std::string(result.status().message()));
      continue;
    }
    auto compare = [&](const std::string& name, const at::Tensor& actual) {
      if (const at::Tensor* expected = ctx.Get(name, r)) {
        r.Compare("pipeline/" + name, actual, *expected, ctx.ModelToleranceFor(name));
      }
    };
    if (!embeds_checked) {
      compare("out.prompt_embeds", result->prompt_embeds);
      compare("out.negative_prompt_embeds", result->negative_prompt_embeds);
      embeds_checked = true;
    }
    if (const at::Tensor* expected = ctx.Get(scheduler + ".timesteps", r)) {
      r.Compare("pipeline/" + scheduler + ".timesteps", result->timesteps, *expected,
                ctx.ToleranceFor(scheduler + ".timesteps"));  // a schedule: float32 in every mode
    }
    compare(scheduler + ".latents_per_step", at::stack(per_step));
    compare(scheduler + ".final_latents", result->latents);
    compare(scheduler + ".image", result->images_float);
  }
}

DB_REGISTER_PARITY_CHECK({"pipeline", "guided text-to-image runs (DDIM, Euler) end to end",
                          RunPipeline});

}  // namespace
}  // namespace dreambooth::dbtool
