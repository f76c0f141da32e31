// Conversion of LibTorch exceptions into absl::Status at the training engine's boundary.
#ifndef DREAMBOOTH_WORKER_TRAIN_TORCH_STATUS_H_
#define DREAMBOOTH_WORKER_TRAIN_TORCH_STATUS_H_

#include <exception>
#include <string>

#include "absl/status/status.h"

namespace dreambooth::train {

// Maps an exception thrown by LibTorch to a Status: out-of-memory errors become
// RESOURCE_EXHAUSTED, anything else INTERNAL; `context` prefixes the message.
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

}  // namespace dreambooth::train

#endif  // DREAMBOOTH_WORKER_TRAIN_TORCH_STATUS_H_
