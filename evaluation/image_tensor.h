// RGB8 images <-> the [-1, 1] float tensors the models read.
#ifndef DREAMBOOTH_EVALUATION_IMAGE_TENSOR_H_
#define DREAMBOOTH_EVALUATION_IMAGE_TENSOR_H_

#include <ATen/ATen.h>

#include "common/image/image.h"

namespace dreambooth::evaluation {

// [3, H, W] float32 in [-1, 1].
at::Tensor ImageToTensor(const image::Image& image);

}  // namespace dreambooth::evaluation

#endif  // DREAMBOOTH_EVALUATION_IMAGE_TENSOR_H_
