// SHA-256 (FIPS 180-4) for content digests of model weights. worker/diffusion has no crypto
// dependency, so this small implementation lives here.
#ifndef DREAMBOOTH_WORKER_DIFFUSION_SHA256_H_
#define DREAMBOOTH_WORKER_DIFFUSION_SHA256_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dreambooth::diffusion {

// Incremental SHA-256. Not thread-safe; copyable.
class Sha256 {
 public:
  Sha256();
  void Update(const void* data, size_t size);
  void Update(std::string_view data) { Update(data.data(), data.size()); }
  // Finishes and returns the 64-character lower-case hex digest; the object must not be used
  // afterwards.
  std::string HexDigest();

 private:
  void Block(const uint8_t* block);

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_;
  size_t buffered_ = 0;
  uint64_t length_ = 0;
};

// Hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);

}  // namespace dreambooth::diffusion

#endif  // DREAMBOOTH_WORKER_DIFFUSION_SHA256_H_
