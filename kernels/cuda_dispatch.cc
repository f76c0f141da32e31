// See cuda_dispatch.h.
#include "kernels/cuda_dispatch.h"

namespace dreambooth::kernels {

bool HaveCudaKernels() {
#ifdef DB_HAVE_CUDA_KERNELS
  return true;
#else
  return false;
#endif
}

std::optional<KernelDType> KernelDTypeOf(at::ScalarType type) {
  switch (type) {
    case at::kFloat:
      return KernelDType::kFloat32;
    case at::kHalf:
      return KernelDType::kFloat16;
    case at::kBFloat16:
      return KernelDType::kBFloat16;
    default:
      return std::nullopt;
  }
}

void CheckCudaKernelsBuilt(const char* op) {
  TORCH_CHECK(HaveCudaKernels(), op,
              ": the input is a CUDA tensor but db_kernels was built without nvcc, so it has no "
              "CUDA kernels; reconfigure with the CUDA toolkit on PATH (or -DCMAKE_CUDA_COMPILER)");
}

}  // namespace dreambooth::kernels
