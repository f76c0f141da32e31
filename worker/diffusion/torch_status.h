// The one conversion of LibTorch exceptions into absl::Status, used at the stage boundaries of
// the model code, the training engine and the tools.
#ifndef DREAMBOOTH_WORKER_DIFFUSION_TORCH_STATUS_H_
#define DREAMBOOTH_WORKER_DIFFUSION_TORCH_STATUS_H_

#include <exception>
#include <string>

#include "absl/status/status.h"

namespace dreambooth {

// Maps an exception thrown by LibTorch to a Status: out-of-memory errors (CUDA or CPU allocators)
// become RESOURCE_EXHAUSTED, anything else INTERNAL; the message is `context`: the exception's
// first line (no C++ backtrace).
absl::Status StatusFromException(const std::exception& e, const std::string& context);

// Runs `fn` (returning absl::Status or StatusOr), converting any exception it throws.
template <typename Fn>
auto GuardTorch(const std::string& context, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return StatusFromException(e, context);
  }
}

}  // namespace dreambooth

#endif  // DREAMBOOTH_WORKER_DIFFUSION_TORCH_STATUS_H_
