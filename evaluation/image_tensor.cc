#include "evaluation/image_tensor.h"

namespace dreambooth::evaluation {

at::Tensor ImageToTensor(const image::Image& image) {
  at::Tensor hwc = at::from_blob(const_cast<uint8_t*>(image.rgb.data()),
                                 {image.height, image.width, 3}, at::kByte);
  return hwc.permute({2, 0, 1}).to(at::kFloat).div(127.5).sub(1.0).contiguous();
}

}  // namespace dreambooth::evaluation
