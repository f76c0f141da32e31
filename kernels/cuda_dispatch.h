// ATen-side helpers shared by the ops' dispatchers: which dtypes the CUDA kernels take, and the
// error a CUDA tensor gets when this build of db_kernels has no CUDA kernels. Thread-safe.
#ifndef KERNELS_CUDA_DISPATCH_H_
#define KERNELS_CUDA_DISPATCH_H_

#include <ATen/ATen.h>

#include <optional>

#include "kernels/kernel_dtype.h"

namespace dreambooth::kernels {

// True when db_kernels was built with nvcc (DB_HAVE_CUDA_KERNELS).
bool HaveCudaKernels();

// The launcher dtype for `type`, or nullopt for a type the CUDA kernels do not take (float64,
// integers): the dispatchers then run the reference on the tensor's device.
std::optional<KernelDType> KernelDTypeOf(at::ScalarType type);

// Throws c10::Error naming `op` when HaveCudaKernels() is false: called before a CUDA tensor
// would reach a kernel this build does not have.
void CheckCudaKernelsBuilt(const char* op);

}  // namespace dreambooth::kernels

#endif  // KERNELS_CUDA_DISPATCH_H_
