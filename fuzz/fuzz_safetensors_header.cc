// Fuzzes ParseSafetensorsHeader (worker/diffusion/io/safetensors_header.h) with whole files: the
// 8-byte length, the JSON header and the data area. An accepted header must describe tensors that
// tile the data area exactly, each as large as its dtype and shape say.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "worker/diffusion/io/safetensors_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using dreambooth::diffusion::SafetensorsEntry;
  const std::string_view file(reinterpret_cast<const char*>(data), size);
  uint64_t data_start = 0;
  std::map<std::string, std::string> metadata;
  auto entries =
      dreambooth::diffusion::ParseSafetensorsHeader(file, "fuzz input", &data_start, &metadata);
  if (!entries.ok()) return 0;
  FUZZ_CHECK(data_start >= 8 && data_start <= size);
  uint64_t covered = 0;
  for (const auto& [name, entry] : *entries) {
    FUZZ_CHECK(name != "__metadata__");
    const int64_t dtype_size = dreambooth::diffusion::SafetensorsDtypeSize(entry.dtype);
    FUZZ_CHECK(dtype_size > 0);
    uint64_t bytes = static_cast<uint64_t>(dtype_size);
    for (int64_t dim : entry.shape) {
      FUZZ_CHECK(dim >= 0);
      bytes *= static_cast<uint64_t>(dim);
    }
    FUZZ_CHECK(entry.begin <= entry.end && entry.end <= size - data_start);
    FUZZ_CHECK(entry.end - entry.begin == bytes);
    covered += bytes;
  }
  FUZZ_CHECK(covered == size - data_start);
  return 0;
}
