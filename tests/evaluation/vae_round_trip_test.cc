// VaeRoundTrip with the shipped toy VAE: without noise it reconstructs renders (the VAE's
// measured L1 error is 0.081 in [-1, 1] units, docs/quality.md), more latent noise moves the image
// further, the noise is a function of the generator, and a negative noise is refused.
#include "evaluation/vae_round_trip.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <vector>

#include "evaluation/image_tensor.h"
#include "world/dataset.h"
#include "world/render.h"
#include "world/scene.h"

namespace dreambooth::evaluation {
namespace {

at::Tensor Renders(int count) {
  std::vector<at::Tensor> images;
  for (int i = 0; i < count; ++i) {
    absl::StatusOr<world::Scene> scene = world::SampleScene(world::SceneSeed(11, i), {});
    EXPECT_TRUE(scene.ok()) << scene.status();
    images.push_back(ImageToTensor(world::Render(*scene)));
  }
  return at::stack(images);
}

double MeanAbs(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().mean().item<double>();
}

TEST(VaeRoundTripTest, ReconstructsWithoutNoiseAndDriftsWithIt) {
  const at::Tensor x = Renders(8);
  absl::StatusOr<VaeRoundTrip> clean = VaeRoundTrip::Load("toy", 0.0);
  ASSERT_TRUE(clean.ok()) << clean.status();
  at::Generator gen = at::detail::createCPUGenerator(1);
  const at::Tensor y0 = (*clean)(x, gen);
  ASSERT_EQ(y0.sizes(), x.sizes());
  EXPECT_LE(y0.max().item<float>(), 1.0f);
  EXPECT_GE(y0.min().item<float>(), -1.0f);
  EXPECT_LT(MeanAbs(y0, x), 0.12);

  absl::StatusOr<VaeRoundTrip> noisy = VaeRoundTrip::Load("toy", 0.6);
  ASSERT_TRUE(noisy.ok()) << noisy.status();
  at::Generator g1 = at::detail::createCPUGenerator(5);
  at::Generator g2 = at::detail::createCPUGenerator(5);
  const at::Tensor y1 = (*noisy)(x, g1);
  EXPECT_TRUE(at::equal(y1, (*noisy)(x, g2)));  // same generator state, same images
  EXPECT_GT(MeanAbs(y1, y0), 0.01);
  EXPECT_GT(MeanAbs(y1, x), MeanAbs(y0, x));
}

TEST(VaeRoundTripTest, NegativeNoiseIsRefused) {
  absl::StatusOr<VaeRoundTrip> r = VaeRoundTrip::Load("toy", -0.1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("latent noise"), std::string::npos) << r.status();
}

}  // namespace
}  // namespace dreambooth::evaluation
