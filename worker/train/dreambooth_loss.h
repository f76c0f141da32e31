// The DreamBooth training objective: one UNet forward over [instance | class] latents, MSE
// against the scheduler's target, loss = instance + prior_loss_weight * class (NeMo's and
// diffusers' chunk-in-two formula), with optional min-SNR weighting; plus the random draws of a
// training step (posterior sample, noise with optional offset, timesteps).
#ifndef DREAMBOOTH_WORKER_TRAIN_DREAMBOOTH_LOSS_H_
#define DREAMBOOTH_WORKER_TRAIN_DREAMBOOTH_LOSS_H_

#include <ATen/ATen.h>

#include "absl/status/statusor.h"
#include "worker/diffusion/models/unet_2d_condition.h"
#include "worker/diffusion/schedulers/scheduler.h"

namespace dreambooth::train {

struct DreamBoothLossOptions {
  // When true the batch is [instance; class] in equal halves and the class half is weighted by
  // prior_loss_weight; when false every sample is an instance sample.
  bool with_prior_preservation = false;
  double prior_loss_weight = 1.0;
  // Min-SNR weighting (Hang et al. 2023) as diffusers' train_dreambooth.py applies it:
  // w = min(snr, gamma) / snr, plus 1 for v_prediction. 0 disables it. Unlike diffusers (which
  // weights only the instance half), the weights are applied per sample to both halves.
  double snr_gamma = 0.0;
};

// Inputs of one step; all on the UNet's device. latents are already multiplied by the VAE's
// scaling factor.
struct DreamBoothStepInputs {
  at::Tensor latents;                // [B, C, h, w]
  at::Tensor noise;                  // [B, C, h, w]
  at::Tensor timesteps;              // int64 [B]
  at::Tensor encoder_hidden_states;  // [B, 77, D]
};

struct DreamBoothLossOutput {
  at::Tensor noisy_latents;  // [B, C, h, w]
  at::Tensor target;         // [B, C, h, w]
  at::Tensor model_pred;     // [B, C, h, w], attached to the graph
  at::Tensor loss;           // float32 scalar, attached to the graph
  at::Tensor instance_loss;  // float32 scalar (detached)
  at::Tensor prior_loss;     // float32 scalar (detached); undefined without prior preservation
};

// Runs the forward pass and the loss. INVALID_ARGUMENT when shapes disagree, the batch is odd
// with prior preservation, or the prediction type is unsupported. Exceptions from LibTorch are
// returned as INTERNAL (or RESOURCE_EXHAUSTED for out-of-memory).
absl::StatusOr<DreamBoothLossOutput> ComputeDreamBoothLoss(
    diffusion::UNet2DConditionModel& unet, const diffusion::DdpmTrainingSchedule& schedule,
    const DreamBoothStepInputs& inputs, const DreamBoothLossOptions& options);

// Random draws of one step, all from `generator` (CPU) in this order: posterior noise (only when
// `posterior_std` is defined), noise, offset noise (only when offset_noise > 0), timesteps.
// Drawing on CPU makes a run reproducible across devices and lets resume restore one generator.
struct StepRandomness {
  at::Tensor latents;    // mean + std * eps when a posterior is given, else the input latents
  at::Tensor noise;      // N(0, I) [+ offset_noise * N(0, I) per (sample, channel)]
  at::Tensor timesteps;  // int64 [B] uniform in [0, num_train_timesteps)
};
StepRandomness DrawStepRandomness(const at::Tensor& posterior_mean, const at::Tensor& posterior_std,
                                  int64_t num_train_timesteps, double offset_noise,
                                  at::Generator& generator);

}  // namespace dreambooth::train

#endif  // DREAMBOOTH_WORKER_TRAIN_DREAMBOOTH_LOSS_H_
