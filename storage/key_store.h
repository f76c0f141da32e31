// API keys in SQLite: each key is a (tenant, role) identity; only the SHA-256 of its secret is
// stored. A key as handed to a user is "dbk_<id>_<secret>" (see ParseApiKey). Thread-safe.
#ifndef DREAMBOOTH_STORAGE_KEY_STORE_H_
#define DREAMBOOTH_STORAGE_KEY_STORE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "storage/database.h"

namespace dreambooth::storage {

// What a key may do: a tenant's key acts on its tenant's resources through the public API, an
// admin key on every tenant's, a worker key only calls the worker service.
enum class KeyRole { kTenant, kAdmin, kWorker };
absl::string_view KeyRoleName(KeyRole role);
// "tenant", "admin" or "worker"; INVALID_ARGUMENT otherwise.
absl::StatusOr<KeyRole> ParseKeyRole(absl::string_view name);

struct ApiKeyRecord {
  std::string id;  // 16 hex digits, public (listed, logged)
  std::string tenant;
  KeyRole role = KeyRole::kTenant;
  std::string description;
  int64_t create_time_ms = 0;
  int64_t revoke_time_ms = 0;  // 0 while the key is valid
  std::string secret_sha256;   // hex
};

// A key split into its id and secret; INVALID_ARGUMENT when `key` is not "dbk_<16 hex>_<64 hex>".
struct ParsedApiKey {
  std::string id;
  std::string secret;
};
absl::StatusOr<ParsedApiKey> ParseApiKey(absl::string_view key);

// A tenant name: 1-64 of [a-z0-9_-], starting with a letter or digit; INVALID_ARGUMENT otherwise.
absl::Status CheckTenantName(absl::string_view tenant);

class KeyStore {
 public:
  // `db` must outlive the store.
  explicit KeyStore(Database* db) : db_(db) {}

  struct CreatedKey {
    ApiKeyRecord record;
    std::string key;  // the full key; shown once, never stored
  };
  absl::StatusOr<CreatedKey> Create(const std::string& tenant, KeyRole role,
                                    const std::string& description, int64_t now_ms);
  // Every key, revoked ones included, oldest first.
  absl::StatusOr<std::vector<ApiKeyRecord>> List();
  // Revokes key `id` (NOT_FOUND when absent; revoking twice keeps the first time).
  absl::StatusOr<ApiKeyRecord> Revoke(const std::string& id, int64_t now_ms);
  // The valid (not revoked) key whose secret matches `key`; UNAUTHENTICATED otherwise, with the
  // same message whether the id is unknown, revoked or the secret wrong.
  absl::StatusOr<ApiKeyRecord> Verify(absl::string_view key);

 private:
  Database* const db_;
};

}  // namespace dreambooth::storage

#endif  // DREAMBOOTH_STORAGE_KEY_STORE_H_
