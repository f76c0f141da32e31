#include "worker/diffusion/pipelines/cuda_graph_unet.h"

#include <ATen/core/grad_mode.h>

#include <utility>

#include "absl/strings/str_cat.h"

#if DB_TORCH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace dreambooth::diffusion {

#if DB_TORCH_CUDA
struct CudaGraphUNet::Captured {
  at::cuda::CUDAGraph graph;
  at::Tensor sample, timestep, context, out;  // the graph's fixed input and output buffers

  bool Fits(const at::Tensor& s, const at::Tensor& t, const at::Tensor& c) const {
    return s.sizes() == sample.sizes() && s.scalar_type() == sample.scalar_type() &&
           s.device() == sample.device() && t.numel() == timestep.numel() &&
           c.sizes() == context.sizes() && c.scalar_type() == context.scalar_type();
  }
};
#else
struct CudaGraphUNet::Captured {};
#endif

CudaGraphUNet::CudaGraphUNet(UNet2DConditionModel unet) : unet_(std::move(unet)) {}
CudaGraphUNet::~CudaGraphUNet() = default;

absl::StatusOr<at::Tensor> CudaGraphUNet::Forward(const at::Tensor& sample,
                                                  const at::Tensor& timestep,
                                                  const at::Tensor& context) {
  if (!sample.is_cuda()) {
    return absl::FailedPreconditionError(
        absl::StrCat("CUDA graphs need CUDA tensors, got a sample on ", sample.device().str()));
  }
#if DB_TORCH_CUDA
  at::NoGradGuard no_grad;
  // Timesteps live on the device as a 1-D tensor, so the captured forward copies nothing from
  // the host.
  const at::Tensor t = timestep.reshape({-1}).to(sample.device());
  if (captured_ == nullptr || !captured_->Fits(sample, t, context)) {
    captured_.reset();
    auto c = std::make_unique<Captured>();
    c->sample = sample.clone();
    c->timestep = t.clone();
    c->context = context.clone();
    // Capture on a side stream after one eager warm-up run there (lazy initialisations such as
    // cuBLAS workspaces must not happen during capture).
    c10::cuda::CUDAStream current = c10::cuda::getCurrentCUDAStream(sample.device().index());
    c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(false, sample.device().index());
    current.synchronize();
    {
      c10::cuda::CUDAStreamGuard guard(side);
      c->out = unet_->forward(c->sample, c->timestep, c->context);
      side.synchronize();
      c->graph.capture_begin();
      c->out = unet_->forward(c->sample, c->timestep, c->context);
      c->graph.capture_end();
    }
    side.synchronize();
    captured_ = std::move(c);
  } else {
    captured_->sample.copy_(sample);
    captured_->timestep.copy_(t);
    captured_->context.copy_(context);
  }
  captured_->graph.replay();
  return captured_->out.clone();  // the buffer is overwritten by the next replay
#else
  return absl::FailedPreconditionError("CUDA graphs: this build has no CUDA support");
#endif
}

}  // namespace dreambooth::diffusion
