// The sampling loop's UNet call replayed as a CUDA graph: the first call with a given input
// shape captures the whole forward pass once, later calls copy their inputs into the captured
// buffers and replay it, so a step costs one graph launch instead of hundreds of kernel launches.
// A switch (Text2ImageOptions::cuda_graphs, dbtool --cuda-graphs), off by default until a GPU
// measurement shows it faster (scripts/gpu_check.sh measures it).
#ifndef DREAMBOOTH_WORKER_DIFFUSION_PIPELINES_CUDA_GRAPH_UNET_H_
#define DREAMBOOTH_WORKER_DIFFUSION_PIPELINES_CUDA_GRAPH_UNET_H_

#include <ATen/ATen.h>

#include <memory>

#include "absl/status/statusor.h"
#include "worker/diffusion/models/unet_2d_condition.h"

namespace dreambooth::diffusion {

// Not thread-safe; one per sampling run. The UNet must stay in eval mode and keep its weights
// while the object lives (the graph holds their addresses).
class CudaGraphUNet {
 public:
  explicit CudaGraphUNet(UNet2DConditionModel unet);
  ~CudaGraphUNet();
  CudaGraphUNet(const CudaGraphUNet&) = delete;
  CudaGraphUNet& operator=(const CudaGraphUNet&) = delete;

  // unet(sample, timestep, context) without autograd. A new result tensor per call. Inputs must be
  // on the UNet's CUDA device; a different shape or dtype from the captured one captures anew.
  // FAILED_PRECONDITION on a CPU tensor or in a build without CUDA.
  absl::StatusOr<at::Tensor> Forward(const at::Tensor& sample, const at::Tensor& timestep,
                                     const at::Tensor& context);

 private:
  struct Captured;
  UNet2DConditionModel unet_;
  std::unique_ptr<Captured> captured_;
};

}  // namespace dreambooth::diffusion

#endif  // DREAMBOOTH_WORKER_DIFFUSION_PIPELINES_CUDA_GRAPH_UNET_H_
