// The project's one SHA-256 (OpenSSL), with HMAC and random tokens: content digests of blobs,
// images, model weights and cache keys. Functions are thread-safe; a Sha256 hasher is not.
#ifndef DREAMBOOTH_COMMON_CRYPTO_H_
#define DREAMBOOTH_COMMON_CRYPTO_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace dreambooth {

// Incremental SHA-256. Not thread-safe (one hasher per stream).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(std::string_view data);
  void Update(const void* data, size_t size);
  // Lower-case hex digest (64 chars). The hasher must not be used afterwards.
  std::string HexDigest();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

// Hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);
// Hex SHA-256 of the file's contents, read in 1 MiB chunks. NOT_FOUND / INTERNAL name the path.
absl::StatusOr<std::string> Sha256File(const std::string& path);

// Raw (32-byte) HMAC-SHA256 of `data` under `key`.
std::string HmacSha256(std::string_view key, std::string_view data);

// `bytes` cryptographically random bytes, hex-encoded (2 * bytes chars).
std::string RandomHex(int bytes);

// True when `s` is 64 lower-case hex characters.
bool IsSha256Hex(std::string_view s);

// a == b, in a time that depends only on the lengths (for comparing secrets and their digests).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace dreambooth

#endif  // DREAMBOOTH_COMMON_CRYPTO_H_
