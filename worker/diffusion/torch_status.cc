#include "worker/diffusion/torch_status.h"

#include <c10/util/Exception.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace dreambooth {

absl::Status StatusFromException(const std::exception& e, const std::string& context) {
  const std::string what = e.what();
  // c10::Error messages carry a C++ backtrace after the first line; keep the first line only.
  const std::string first_line = what.substr(0, what.find('\n'));
  if (dynamic_cast<const c10::OutOfMemoryError*>(&e) != nullptr ||
      absl::StrContains(what, "out of memory") || absl::StrContains(what, "OutOfMemory") ||
      absl::StrContains(what, "DefaultCPUAllocator: can't allocate")) {
    return absl::ResourceExhaustedError(absl::StrCat(context, ": ", first_line));
  }
  return absl::InternalError(absl::StrCat(context, ": ", first_line));
}

}  // namespace dreambooth
