// The header of the safetensors format (huggingface/safetensors), without LibTorch: an 8-byte
// little-endian header length, then a JSON object describing every tensor (dtype, shape, byte
// range in the data area that follows) and an optional "__metadata__" map of strings.
#ifndef DREAMBOOTH_WORKER_DIFFUSION_IO_SAFETENSORS_HEADER_H_
#define DREAMBOOTH_WORKER_DIFFUSION_IO_SAFETENSORS_HEADER_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace dreambooth::diffusion {

// Largest JSON header accepted (the reference implementation's cap).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

// One tensor of a safetensors header.
struct SafetensorsEntry {
  std::string dtype;  // "F32", "F16", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // data offsets relative to the start of the data area
  uint64_t end = 0;
};

// Bytes per element of a supported dtype (F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL), or 0.
int64_t SafetensorsDtypeSize(std::string_view dtype);

// Parses and validates the header of a whole safetensors file held in `file`: header size cap,
// JSON syntax, known dtype, shape x dtype size equal to the byte length, offsets inside the data
// area, no overlap, no gaps, no bytes after the last tensor, no duplicate names. Returns the
// tensors by name; `*data_start` receives the file offset of the data area. When `metadata` is
// not null, the "__metadata__" entries are added to it. Errors name `origin` (e.g. the path):
// INVALID_ARGUMENT when malformed, UNIMPLEMENTED for a dtype of the format that this project
// cannot load (U16, U32, U64, F8_*, F6_*, F4, C64). Never reads outside `file`; thread-safe.
absl::StatusOr<std::map<std::string, SafetensorsEntry>> ParseSafetensorsHeader(
    std::string_view file, const std::string& origin, uint64_t* data_start,
    std::map<std::string, std::string>* metadata);

// The same checks for a file of `file_size` bytes of which `head` holds the beginning: at least
// the first 8 + header-length bytes (SafetensorsHeaderLength); the data area is not needed.
absl::StatusOr<std::map<std::string, SafetensorsEntry>> ParseSafetensorsHeader(
    std::string_view head, uint64_t file_size, const std::string& origin, uint64_t* data_start,
    std::map<std::string, std::string>* metadata);

// The JSON header's length, read from the first 8 bytes in `head`, checked against the cap and
// `file_size`; INVALID_ARGUMENT naming `origin` otherwise.
absl::StatusOr<uint64_t> SafetensorsHeaderLength(std::string_view head, uint64_t file_size,
                                                 const std::string& origin);

}  // namespace dreambooth::diffusion

#endif  // DREAMBOOTH_WORKER_DIFFUSION_IO_SAFETENSORS_HEADER_H_
