// Element types the CUDA launchers accept, named without CUDA or LibTorch headers so that both
// the nvcc-compiled .cu files and the g++-compiled ATen wrappers can use them. Every kind is
// computed with float32 accumulation.
#ifndef KERNELS_KERNEL_DTYPE_H_
#define KERNELS_KERNEL_DTYPE_H_

namespace dreambooth::kernels {

enum class KernelDType {
  kFloat32,   // float
  kFloat16,   // __half / at::Half
  kBFloat16,  // __nv_bfloat16 / at::BFloat16
};

}  // namespace dreambooth::kernels

#endif  // KERNELS_KERNEL_DTYPE_H_
