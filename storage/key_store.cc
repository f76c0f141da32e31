#include "storage/key_store.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/status_macros.h"

namespace dreambooth::storage {
namespace {

constexpr absl::string_view kKeyPrefix = "dbk_";
constexpr int kIdBytes = 8;
constexpr int kSecretBytes = 32;
constexpr char kColumns[] =
    "id, tenant, role, description, create_time_ms, revoke_time_ms, secret_sha256";

bool IsLowerHex(absl::string_view s, size_t size) {
  if (s.size() != size) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(c) && (c < 'a' || c > 'f')) return false;
  }
  return true;
}

absl::StatusOr<ApiKeyRecord> ReadRow(const Statement& s) {
  ApiKeyRecord r;
  r.id = s.ColumnText(0);
  r.tenant = s.ColumnText(1);
  ASSIGN_OR_RETURN(r.role, ParseKeyRole(s.ColumnText(2)));
  r.description = s.ColumnText(3);
  r.create_time_ms = s.ColumnInt(4);
  r.revoke_time_ms = s.ColumnInt(5);
  r.secret_sha256 = s.ColumnText(6);
  return r;
}

absl::StatusOr<ApiKeyRecord> LoadKey(Connection& c, const std::string& id) {
  ASSIGN_OR_RETURN(Statement s,
                   c.Prepare(absl::StrCat("SELECT ", kColumns, " FROM api_keys WHERE id = ?")));
  s.Bind(1, id);
  ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("API key '", id, "' not found"));
  return ReadRow(s);
}

}  // namespace

absl::string_view KeyRoleName(KeyRole role) {
  switch (role) {
    case KeyRole::kTenant:
      return "tenant";
    case KeyRole::kAdmin:
      return "admin";
    case KeyRole::kWorker:
      return "worker";
  }
  return "tenant";
}

absl::StatusOr<KeyRole> ParseKeyRole(absl::string_view name) {
  if (name == "tenant") return KeyRole::kTenant;
  if (name == "admin") return KeyRole::kAdmin;
  if (name == "worker") return KeyRole::kWorker;
  return absl::InvalidArgumentError(
      absl::StrCat("role must be tenant, admin or worker, got '", name, "'"));
}

absl::StatusOr<ParsedApiKey> ParseApiKey(absl::string_view key) {
  const absl::Status malformed = absl::InvalidArgumentError(
      "an API key has the form dbk_<16 hex digits>_<64 hex digits> (see dreamboothd keys)");
  if (key.substr(0, kKeyPrefix.size()) != kKeyPrefix) return malformed;
  key.remove_prefix(kKeyPrefix.size());
  const size_t underscore = key.find('_');
  if (underscore == absl::string_view::npos) return malformed;
  ParsedApiKey parsed{std::string(key.substr(0, underscore)),
                      std::string(key.substr(underscore + 1))};
  if (!IsLowerHex(parsed.id, 2 * kIdBytes) || !IsLowerHex(parsed.secret, 2 * kSecretBytes)) {
    return malformed;
  }
  return parsed;
}

absl::Status CheckTenantName(absl::string_view tenant) {
  bool ok = !tenant.empty() && tenant.size() <= 64 && absl::ascii_isalnum(tenant[0]);
  for (char c : tenant) {
    ok &= absl::ascii_isdigit(c) || (c >= 'a' && c <= 'z') || c == '_' || c == '-';
  }
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "tenant must be 1-64 of [a-z0-9_-] starting with a letter or digit, got '", tenant, "'"));
}

absl::StatusOr<KeyStore::CreatedKey> KeyStore::Create(const std::string& tenant, KeyRole role,
                                                      const std::string& description,
                                                      int64_t now_ms) {
  RETURN_IF_ERROR(CheckTenantName(tenant));
  CreatedKey created;
  created.record.id = RandomHex(kIdBytes);
  const std::string secret = RandomHex(kSecretBytes);
  created.key = absl::StrCat(kKeyPrefix, created.record.id, "_", secret);
  created.record.tenant = tenant;
  created.record.role = role;
  created.record.description = description;
  created.record.create_time_ms = now_ms;
  created.record.secret_sha256 = Sha256Hex(secret);
  RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(Statement s, c.Prepare("INSERT INTO api_keys (id, tenant, role, description, "
                                            "create_time_ms, secret_sha256) VALUES (?,?,?,?,?,?)"));
    s.Bind(1, created.record.id)
        .Bind(2, tenant)
        .Bind(3, std::string(KeyRoleName(role)))
        .Bind(4, description)
        .Bind(5, now_ms)
        .Bind(6, created.record.secret_sha256);
    return s.Run();
  }));
  return created;
}

absl::StatusOr<std::vector<ApiKeyRecord>> KeyStore::List() {
  std::vector<ApiKeyRecord> keys;
  RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(Statement s, c.Prepare(absl::StrCat("SELECT ", kColumns,
                                                         " FROM api_keys ORDER BY "
                                                         "create_time_ms, id")));
    while (true) {
      ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      ASSIGN_OR_RETURN(ApiKeyRecord r, ReadRow(s));
      keys.push_back(std::move(r));
    }
    return absl::OkStatus();
  }));
  return keys;
}

absl::StatusOr<ApiKeyRecord> KeyStore::Revoke(const std::string& id, int64_t now_ms) {
  ApiKeyRecord revoked;
  RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(Statement s, c.Prepare("UPDATE api_keys SET revoke_time_ms = ? WHERE id = ? "
                                            "AND revoke_time_ms = 0"));
    s.Bind(1, now_ms).Bind(2, id);
    RETURN_IF_ERROR(s.Run());
    ASSIGN_OR_RETURN(revoked, LoadKey(c, id));
    return absl::OkStatus();
  }));
  return revoked;
}

absl::StatusOr<ApiKeyRecord> KeyStore::Verify(absl::string_view key) {
  const absl::Status refused = absl::UnauthenticatedError("invalid or revoked API key");
  absl::StatusOr<ParsedApiKey> parsed = ParseApiKey(key);
  if (!parsed.ok()) return absl::UnauthenticatedError(parsed.status().message());
  absl::StatusOr<ApiKeyRecord> record = absl::NotFoundError("");
  RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    record = LoadKey(c, parsed->id);
    return record.ok() || absl::IsNotFound(record.status()) ? absl::OkStatus() : record.status();
  }));
  if (!record.ok() || record->revoke_time_ms != 0 ||
      !ConstantTimeEquals(record->secret_sha256, Sha256Hex(parsed->secret))) {
    return refused;
  }
  return record;
}

}  // namespace dreambooth::storage
