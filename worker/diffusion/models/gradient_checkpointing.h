// Activation (gradient) checkpointing: run a block without keeping its intermediate
// activations and recompute them during backward.
#ifndef WORKER_DIFFUSION_GRADIENT_CHECKPOINTING_H_
#define WORKER_DIFFUSION_GRADIENT_CHECKPOINTING_H_

#include <ATen/core/Tensor.h>

#include <functional>

namespace dreambooth::diffusion {

// A block's forward over two tensor inputs (the second may be undefined).
using CheckpointedFn = std::function<at::Tensor(const at::Tensor&, const at::Tensor&)>;

// Returns fn(a, b). When grad mode is on and `a` or `b` requires grad, the result is produced
// by a custom autograd Function that saves only a and b; its backward re-runs fn with grad
// enabled and back-propagates through the recomputed graph, accumulating the gradients of the
// parameters fn uses into their .grad (like PyTorch's reentrant torch.utils.checkpoint). So
// parameter gradients are delivered by Tensor::backward(), not by torch::autograd::grad().
// fn must be deterministic (no dropout with p > 0 in the recomputed region). The calling
// thread's LoRA scope (lora.h) is active in the recomputation too. When no input
// requires grad, fn runs normally (no checkpointing), so frozen-input cases stay correct.
at::Tensor Checkpoint(const CheckpointedFn& fn, const at::Tensor& a, const at::Tensor& b);

}  // namespace dreambooth::diffusion

#endif  // WORKER_DIFFUSION_GRADIENT_CHECKPOINTING_H_
