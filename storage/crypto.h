// Hashing and randomness helpers (OpenSSL): SHA-256 digests, HMAC, random ids and tokens.
// Thread-safe.
#ifndef DREAMBOOTH_STORAGE_CRYPTO_H_
#define DREAMBOOTH_STORAGE_CRYPTO_H_

#include <memory>
#include <string>
#include <string_view>

namespace dreambooth::storage {

// Incremental SHA-256. Not thread-safe (one hasher per stream).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(std::string_view data);
  // Lower-case hex digest (64 chars). The hasher must not be used afterwards.
  std::string HexDigest();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

// Hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);

// Raw (32-byte) HMAC-SHA256 of `data` under `key`.
std::string HmacSha256(std::string_view key, std::string_view data);

// `bytes` cryptographically random bytes, hex-encoded (2 * bytes chars).
std::string RandomHex(int bytes);

// True when `s` is 64 lower-case hex characters.
bool IsSha256Hex(std::string_view s);

}  // namespace dreambooth::storage

#endif  // DREAMBOOTH_STORAGE_CRYPTO_H_
