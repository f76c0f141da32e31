// Text-to-image sampling with classifier-free guidance (diffusers StableDiffusionPipeline).
#ifndef WORKER_DIFFUSION_PIPELINE_H_
#define WORKER_DIFFUSION_PIPELINE_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/diffusion/io/model_loader.h"

namespace dreambooth::diffusion {

struct Text2ImageOptions {
  // One image batch entry per prompt (times num_images_per_prompt).
  std::vector<std::string> prompts;
  // Empty (every negative prompt is ""), one entry (used for all prompts) or one per prompt.
  std::vector<std::string> negative_prompts;
  int64_t steps = 50;
  double guidance = 7.5;           // classifier-free guidance is on when > 1
  double guidance_rescale = 0.0;   // diffusers' guidance_rescale (phi), 0 = off
  std::string scheduler = "ddim";  // a CreateScheduler name
  double eta = 0.0;                // DDIM eta
  uint64_t seed = 0;
  int64_t width = 0;   // 0: unet sample_size * vae factor; must be a multiple of the vae factor
  int64_t height = 0;  // likewise
  int64_t num_images_per_prompt = 1;
  int64_t clip_skip = 0;  // see CLIPTextModel::forward
  // On CUDA, replay the UNet call as a CUDA graph (cuda_graph_unet.h); ignored on the CPU and
  // while LoRA adapters are active on the calling thread (models/lora.h).
  bool cuda_graphs = false;

  // Optional overrides for reproducing a reference run. Token ids [P, 77] replace the tokenizer
  // output for prompts / negative prompts (then `prompts` may be empty: P comes from the ids).
  at::Tensor prompt_ids;
  at::Tensor negative_prompt_ids;
  // Initial noise [N, C, h, w] (before the multiplication by init_noise_sigma); default:
  // torch.randn of that shape from a CPU generator seeded with `seed`, in float32, exactly as
  // diffusers' randn_tensor draws it.
  at::Tensor initial_latents;

  // Called after each step with (step index from 0, total steps, latents after the step);
  // returning false cancels the run (the result is then CANCELLED).
  std::function<bool(int64_t step, int64_t total, const at::Tensor& latents)> on_step;
};

struct Text2ImageResult {
  at::Tensor prompt_embeds;           // [N, 77, D] conditional embeddings (float32, CPU)
  at::Tensor negative_prompt_embeds;  // [N, 77, D] (undefined when guidance <= 1)
  at::Tensor timesteps;               // the scheduler's timesteps
  at::Tensor latents;                 // final latents [N, C, h, w] (float32, CPU)
  at::Tensor images_float;            // decoded images [N, 3, H, W] in [0, 1] (float32, CPU)
  at::Tensor images;                  // uint8 [N, H, W, 3] (round(x * 255)), CPU
};

// Runs text-to-image sampling on `model` (its modules' device and dtype). Latents are kept in
// float32 between steps; the UNet runs in the model dtype. INVALID_ARGUMENT for bad options
// (no prompts, steps < 1, sizes not multiples of the VAE factor, unknown scheduler, mismatched
// negative prompts), CANCELLED when on_step returns false, INTERNAL for LibTorch errors
// (RESOURCE_EXHAUSTED for out-of-memory). Not thread-safe with respect to `model` training.
absl::StatusOr<Text2ImageResult> Text2Image(StableDiffusion& model,
                                            const Text2ImageOptions& options);

// Converts images in [0, 1] [N, 3, H, W] to uint8 [N, H, W, 3] (diffusers' numpy_to_pil rounding).
at::Tensor ImagesToUint8(const at::Tensor& images);

}  // namespace dreambooth::diffusion

#endif  // WORKER_DIFFUSION_PIPELINE_H_
