// Reading and writing the safetensors format (huggingface/safetensors): an 8-byte little-endian
// header length, a JSON header describing every tensor, then the raw little-endian data.
#ifndef DREAMBOOTH_WORKER_DIFFUSION_IO_SAFETENSORS_H_
#define DREAMBOOTH_WORKER_DIFFUSION_IO_SAFETENSORS_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/diffusion/io/safetensors_header.h"

namespace dreambooth::diffusion {

// Tensors by name, ordered by name (the order safetensors stores them in).
using TensorMap = std::map<std::string, at::Tensor>;

// Reads every tensor of the safetensors file at `path`. The file is memory-mapped and its header
// is validated before any tensor is created: header size cap, JSON syntax, known dtype, shape x
// dtype size equal to the byte length, offsets inside the data area, no overlap and no gaps,
// no duplicate names (ParseSafetensorsHeader). Supported dtypes: F32, F16, BF16, F64, I64, I32,
// I16, I8, U8, BOOL. The returned CPU tensors own their memory (the mapping is released before
// returning). When `metadata` is not null it receives the header's "__metadata__" map (empty if
// absent). Errors: NOT_FOUND (no file), INVALID_ARGUMENT/DATA_LOSS (malformed, with what is wrong
// and the path), UNIMPLEMENTED (a dtype LibTorch lacks, e.g. F8).
absl::StatusOr<TensorMap> ReadSafetensors(const std::string& path,
                                          std::map<std::string, std::string>* metadata = nullptr);

// Reads only the header (see ParseSafetensorsHeader): names with dtype names and shapes,
// validated like ReadSafetensors.
absl::StatusOr<std::map<std::string, SafetensorsEntry>> ReadSafetensorsHeader(
    const std::string& path, std::map<std::string, std::string>* metadata = nullptr);

// Writes `tensors` to `path` atomically: a temporary file in the same folder is written, fsynced,
// renamed over `path`, and the folder fsynced, so a crash leaves the old file or the new one.
// Tensors may live on any device and be non-contiguous; they are copied to CPU contiguous memory.
// Names must be non-empty and not "__metadata__"; dtypes must be among those listed above.
absl::Status WriteSafetensors(const std::string& path, const TensorMap& tensors,
                              const std::map<std::string, std::string>& metadata = {});

// Safetensors dtype name of a LibTorch scalar type, or an error for unsupported types.
absl::StatusOr<std::string> SafetensorsDtypeName(at::ScalarType type);

}  // namespace dreambooth::diffusion

#endif  // DREAMBOOTH_WORKER_DIFFUSION_IO_SAFETENSORS_H_
