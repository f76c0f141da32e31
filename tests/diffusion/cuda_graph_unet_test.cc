// CudaGraphUNet: refuses CPU tensors; on a GPU, replays give the eager forward's values for
// changing inputs and a new shape captures anew (skipped without a GPU; scripts/gpu_check.sh
// runs it on one).
#include "worker/diffusion/pipelines/cuda_graph_unet.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include "worker/diffusion/models/tiny_model.h"

namespace dreambooth::diffusion {
namespace {

UNet2DConditionModel TinyUNet() {
  UNet2DConditionModel unet(TinyUNetConfig());
  InitializeRandomWeights(*unet, 5);
  unet->eval();
  return unet;
}

TEST(CudaGraphUNetTest, RefusesCpuTensors) {
  UNet2DConditionModel unet = TinyUNet();
  CudaGraphUNet graph(unet);
  const UNet2DConditionConfig config = TinyUNetConfig();
  absl::StatusOr<at::Tensor> out =
      graph.Forward(at::randn({1, config.in_channels, 8, 8}), at::tensor({10}, at::kLong),
                    at::randn({1, 77, config.CrossAttentionDim(0)}));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(CudaGraphUNetTest, ReplaysMatchTheEagerForward) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const at::Device cuda(at::kCUDA, 0);
  UNet2DConditionModel unet = TinyUNet();
  unet->to(cuda);
  CudaGraphUNet graph(unet);
  const UNet2DConditionConfig config = TinyUNetConfig();
  at::NoGradGuard no_grad;
  for (int64_t size : {8, 16}) {  // the second size captures a new graph
    const at::Tensor context = at::randn({2, 77, config.CrossAttentionDim(0)}).to(cuda);
    for (int64_t t : {999, 500, 1}) {
      const at::Tensor x = at::randn({2, config.in_channels, size, size}).to(cuda);
      const at::Tensor step = at::tensor({t}, at::kLong);
      absl::StatusOr<at::Tensor> replayed = graph.Forward(x, step, context);
      ASSERT_TRUE(replayed.ok()) << replayed.status();
      const at::Tensor eager = unet->forward(x, step.to(cuda), context);
      EXPECT_LE((*replayed - eager).abs().max().item<double>(), 1e-5) << size << " t=" << t;
    }
  }
}

}  // namespace
}  // namespace dreambooth::diffusion
