// The SD 1.5 architecture built with random weights (nothing is downloaded): parameter counts
// equal the published ones. (The full-size save / reload / convert round trip is
// sd15_roundtrip_slow_test.cc.)
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "worker/diffusion/io/model_loader.h"
#include "worker/diffusion/models/autoencoder_kl.h"
#include "worker/diffusion/models/clip_text_model.h"
#include "worker/diffusion/models/sd15_config.h"
#include "worker/diffusion/models/unet_2d_condition.h"

namespace dreambooth::diffusion {
namespace {

TEST(Sd15ParamCountTest, UNetMatchesPublishedCount) {
  UNet2DConditionModel unet(Sd15UNetConfig());
  EXPECT_EQ(CountParameters(*unet), 859520964);
}

TEST(Sd15ParamCountTest, VaeMatchesPublishedCount) {
  AutoencoderKL vae(Sd15VaeConfig());
  EXPECT_EQ(CountParameters(*vae), 83653863);
}

TEST(Sd15ParamCountTest, TextEncoderMatchesPublishedCount) {
  CLIPTextModel text(Sd15TextConfig());
  EXPECT_EQ(CountParameters(*text), 123060480);
}

}  // namespace
}  // namespace dreambooth::diffusion
