#include "worker/diffusion/pipelines/pipeline.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/Exception.h>

#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/fused_kernels.h"
#include "kernels/guided_ddim_step.h"
#include "worker/diffusion/models/lora.h"
#include "worker/diffusion/pipelines/cuda_graph_unet.h"
#include "worker/diffusion/tokenizer/clip_tokenizer_batch.h"
#include "worker/diffusion/torch_status.h"

namespace dreambooth::diffusion {
namespace {

absl::Status ValidateOptions(const StableDiffusion& model, const Text2ImageOptions& o,
                             int64_t* num_prompts) {
  if (o.prompt_ids.defined()) {
    if (o.prompt_ids.dim() != 2) {
      return absl::InvalidArgumentError("prompt_ids must be [P, L] token ids");
    }
    *num_prompts = o.prompt_ids.size(0);
  } else {
    *num_prompts = static_cast<int64_t>(o.prompts.size());
  }
  if (*num_prompts == 0) return absl::InvalidArgumentError("no prompt given");
  if (o.steps < 1) return absl::InvalidArgumentError("steps must be >= 1");
  if (o.num_images_per_prompt < 1) {
    return absl::InvalidArgumentError("num_images_per_prompt must be >= 1");
  }
  const size_t negatives = o.negative_prompts.size();
  if (!o.negative_prompt_ids.defined() && negatives > 1 &&
      negatives != static_cast<size_t>(*num_prompts)) {
    return absl::InvalidArgumentError(absl::StrCat("got ", negatives, " negative prompts for ",
                                                   *num_prompts, " prompts (give 0, 1 or ",
                                                   *num_prompts, ")"));
  }
  const int64_t f = model.vae->downscale_factor();
  for (int64_t size : {o.width, o.height}) {
    if (size < 0 || size % f != 0) {
      return absl::InvalidArgumentError(absl::StrCat("width and height must be multiples of ", f,
                                                     " (0: the model's default size), got ", size));
    }
  }
  return absl::OkStatus();
}

// Encodes prompts (or the given ids) to [P * n, L, D] embeddings in the text encoder's dtype.
at::Tensor EncodeIds(StableDiffusion& model, const at::Tensor& ids, int64_t per_prompt,
                     int64_t clip_skip, const at::Device& device) {
  at::Tensor embeds = model.text_encoder->forward(ids.to(device), clip_skip).last_hidden_state;
  return embeds.repeat_interleave(per_prompt, 0);  // [P * n, L, D]
}

// Classifier-free guidance of a [uncond; cond] prediction, with diffusers' rescale_noise_cfg
// (match the std of the text-conditioned prediction) when guidance_rescale > 0.
at::Tensor GuidedPrediction(const at::Tensor& pred, const Text2ImageOptions& o) {
  std::vector<at::Tensor> parts = pred.chunk(2, 0);  // uncond, cond
  at::Tensor guided = parts[0] + o.guidance * (parts[1] - parts[0]);
  if (o.guidance_rescale > 0.0) {
    std::vector<int64_t> dims;
    for (int64_t d = 1; d < pred.dim(); ++d) dims.push_back(d);
    at::Tensor std_text = parts[1].std(dims, /*unbiased=*/true, /*keepdim=*/true);
    at::Tensor std_cfg = guided.std(dims, /*unbiased=*/true, /*keepdim=*/true);
    at::Tensor rescaled = guided * (std_text / std_cfg);
    guided = o.guidance_rescale * rescaled + (1.0 - o.guidance_rescale) * guided;
  }
  return guided;
}

absl::StatusOr<Text2ImageResult> Run(StableDiffusion& model, const Text2ImageOptions& o) {
  int64_t num_prompts = 0;
  RETURN_IF_ERROR(ValidateOptions(model, o, &num_prompts));
  SchedulerOptions scheduler_options;
  scheduler_options.eta = o.eta;
  ASSIGN_OR_RETURN(std::unique_ptr<Scheduler> scheduler,
                   CreateScheduler(o.scheduler, model.scheduler_config, scheduler_options));
  RETURN_IF_ERROR(scheduler->SetTimesteps(o.steps));

  const at::Tensor unet_param = model.unet->parameters().front();
  const at::Device device = unet_param.device();
  const at::ScalarType dtype = unet_param.scalar_type();
  const bool guided = o.guidance > 1.0;
  const int64_t n = o.num_images_per_prompt;
  const int64_t batch = num_prompts * n;
  const int64_t f = model.vae->downscale_factor();
  const int64_t height = o.height > 0 ? o.height : model.unet->config().sample_size * f;
  const int64_t width = o.width > 0 ? o.width : model.unet->config().sample_size * f;
  const int64_t channels = model.unet->config().in_channels;
  at::NoGradGuard no_grad;

  // Text conditioning.
  at::Tensor ids =
      o.prompt_ids.defined() ? o.prompt_ids : EncodeClipBatch(model.tokenizer, o.prompts);
  Text2ImageResult result;
  at::Tensor cond = EncodeIds(model, ids, n, o.clip_skip, device).to(dtype);
  at::Tensor context = cond;
  if (guided) {
    at::Tensor neg_ids;
    if (o.negative_prompt_ids.defined()) {
      neg_ids = o.negative_prompt_ids;
    } else {
      std::vector<std::string> negatives(num_prompts, "");
      if (o.negative_prompts.size() == 1) {
        negatives.assign(num_prompts, o.negative_prompts[0]);
      } else if (!o.negative_prompts.empty()) {
        negatives = o.negative_prompts;
      }
      neg_ids = EncodeClipBatch(model.tokenizer, negatives);
    }
    if (neg_ids.size(0) == 1 && num_prompts > 1) neg_ids = neg_ids.expand({num_prompts, -1});
    if (neg_ids.size(0) != num_prompts) {
      return absl::InvalidArgumentError("negative_prompt_ids must have one row per prompt");
    }
    at::Tensor uncond = EncodeIds(model, neg_ids, n, o.clip_skip, device).to(dtype);
    context = at::cat({uncond, cond}, 0);  // [2N, L, D]: unconditional first, like diffusers
    result.negative_prompt_embeds = uncond.to(at::kCPU, at::kFloat);
  }
  result.prompt_embeds = cond.to(at::kCPU, at::kFloat);

  // Initial noise, drawn like diffusers' randn_tensor with a CPU generator.
  const std::vector<int64_t> shape = {batch, channels, height / f, width / f};
  // One generator for the initial noise and the scheduler's noise, like diffusers.
  at::Generator gen = at::detail::createCPUGenerator(o.seed);
  at::Tensor latents;
  if (o.initial_latents.defined()) {
    if (o.initial_latents.sizes() != at::IntArrayRef(shape)) {
      return absl::InvalidArgumentError(absl::StrCat("initial_latents must have shape [", batch,
                                                     ", ", channels, ", ", height / f, ", ",
                                                     width / f, "]"));
    }
    latents = o.initial_latents.to(at::kFloat);
  } else {
    latents = at::randn(shape, gen, at::TensorOptions().dtype(at::kFloat));
  }
  latents = (latents * scheduler->init_noise_sigma()).to(device);  // float32 between steps

  const at::Tensor timesteps = scheduler->timesteps();
  result.timesteps = timesteps.clone();
  std::unique_ptr<CudaGraphUNet> graph_unet;
  // A graph replays the kernels it captured: with LoRA adapters active it runs eagerly instead.
  if (o.cuda_graphs && device.is_cuda() && ActiveLoraScope() == nullptr) {
    graph_unet = std::make_unique<CudaGraphUNet>(model.unet);
  }
  const bool fused_step =
      guided && o.guidance_rescale <= 0.0 && kernels::ActiveFusedKernels().guided_ddim_step;
  const int64_t total = timesteps.size(0);
  for (int64_t i = 0; i < total; ++i) {
    const at::Tensor t = timesteps[i];
    at::Tensor input = guided ? at::cat({latents, latents}, 0) : latents;
    ASSIGN_OR_RETURN(input, scheduler->ScaleModelInput(input, t));
    at::Tensor pred;
    if (graph_unet != nullptr) {
      ASSIGN_OR_RETURN(pred, graph_unet->Forward(input.to(dtype), t, context));
      pred = pred.to(at::kFloat);
    } else {
      pred = model.unet->forward(input.to(dtype), t, context).to(at::kFloat);
    }
    // The fused guidance + DDIM step where it is switched on and exact for this step.
    std::optional<Scheduler::DdimCoefficients> fused;
    if (fused_step) fused = scheduler->DeterministicDdimCoefficients(t);
    if (fused) {
      std::vector<at::Tensor> parts = pred.chunk(2, 0);  // uncond, cond
      latents = kernels::GuidedDdimStep(latents, parts[0].contiguous(), parts[1].contiguous(),
                                        o.guidance, fused->alpha_prod_t, fused->alpha_prod_prev,
                                        fused->v_prediction ? kernels::PredictionType::kVPrediction
                                                            : kernels::PredictionType::kEpsilon);
    } else {
      if (guided) pred = GuidedPrediction(pred, o);
      ASSIGN_OR_RETURN(SchedulerStepOutput step, scheduler->Step(pred, t, latents, &gen));
      latents = step.prev_sample;
    }
    if (o.on_step && !o.on_step(i, total, latents)) {
      return absl::CancelledError(absl::StrCat("sampling cancelled after step ", i + 1));
    }
  }

  result.latents = latents.to(at::kCPU);
  const double scale = model.vae->scaling_factor();
  at::Tensor z = latents / scale + model.vae->shift_factor();
  const at::ScalarType vae_dtype = model.vae->parameters().front().scalar_type();
  at::Tensor decoded = model.vae->Decode(z.to(vae_dtype)).to(at::kFloat);
  result.images_float = (decoded / 2 + 0.5).clamp(0.0, 1.0).to(at::kCPU);
  result.images = ImagesToUint8(result.images_float);
  return result;
}

}  // namespace

at::Tensor ImagesToUint8(const at::Tensor& images) {
  return (images.to(at::kFloat) * 255.0)
      .round()
      .clamp(0.0, 255.0)
      .to(at::kByte)
      .permute({0, 2, 3, 1})
      .contiguous();  // [N, H, W, 3]
}

absl::StatusOr<Text2ImageResult> Text2Image(StableDiffusion& model,
                                            const Text2ImageOptions& options) {
  return GuardTorch("text-to-image", [&] { return Run(model, options); });
}

}  // namespace dreambooth::diffusion
