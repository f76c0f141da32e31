#include "server/key_admin.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/cli_flags.h"
#include "storage/database.h"
#include "storage/key_store.h"

namespace dreambooth::server {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string FormatTime(int64_t ms) {
  if (ms == 0) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixMillis(ms), absl::UTCTimeZone());
}

int Fail(const absl::Status& status) {
  std::cerr << "dreamboothd keys: " << status.message() << "\n";
  return 1;
}

}  // namespace

void KeyAdmin::AddTo(CLI::App& app, const std::string* data_dir) {
  data_dir_ = data_dir;
  keys_ = app.add_subcommand("keys", "Create, list and revoke API keys in --data-dir (then exit)");
  keys_->require_subcommand(1);
  create_ = keys_->add_subcommand("create",
                                  "Create a key and print it once (only its SHA-256 is stored)");
  cli::AddString(*create_, "--tenant", &tenant_, "the tenant the key acts for")->required();
  cli::AddString(*create_, "--role", &role_,
                 "tenant (its tenant's resources), admin (every tenant's) or worker (the worker "
                 "service only)");
  cli::AddString(*create_, "--description", &description_, "a note shown by `keys list`");
  list_ = keys_->add_subcommand("list", "List every key (id, tenant, role, created, revoked)");
  revoke_ = keys_->add_subcommand("revoke", "Revoke a key: its next call is UNAUTHENTICATED");
  revoke_->add_option("KEY_ID", key_id_, "the key's id (16 hex digits, from `keys list`)")
      ->required();
}

bool KeyAdmin::chosen() const { return keys_ != nullptr && keys_->parsed(); }

int KeyAdmin::Run() const {
  // Like the daemon, a missing data dir is created (keys may be made before its first start).
  std::error_code ec;
  std::filesystem::create_directories(*data_dir_, ec);
  if (ec) {
    return Fail(absl::UnavailableError(
        absl::StrCat("cannot create data dir ", *data_dir_, ": ", ec.message())));
  }
  storage::Database::Options options;
  options.path = *data_dir_ + "/db.sqlite";
  options.readers = 1;
  absl::StatusOr<std::unique_ptr<storage::Database>> db = storage::Database::Open(options);
  if (!db.ok()) return Fail(db.status());
  storage::KeyStore keys(db->get());
  if (create_->parsed()) {
    absl::StatusOr<storage::KeyRole> role = storage::ParseKeyRole(role_);
    if (!role.ok()) return Fail(role.status());
    absl::StatusOr<storage::KeyStore::CreatedKey> created =
        keys.Create(tenant_, *role, description_, NowMs());
    if (!created.ok()) return Fail(created.status());
    std::cerr << "created key " << created->record.id << " (tenant " << tenant_ << ", role "
              << role_ << "); it is shown only now:\n";
    std::cout << created->key << "\n";
    return 0;
  }
  if (list_->parsed()) {
    absl::StatusOr<std::vector<storage::ApiKeyRecord>> all = keys.List();
    if (!all.ok()) return Fail(all.status());
    std::printf("%-16s  %-16s  %-6s  %-20s  %-20s  %s\n", "ID", "TENANT", "ROLE", "CREATED",
                "REVOKED", "DESCRIPTION");
    for (const storage::ApiKeyRecord& k : *all) {
      std::printf("%-16s  %-16s  %-6s  %-20s  %-20s  %s\n", k.id.c_str(), k.tenant.c_str(),
                  std::string(storage::KeyRoleName(k.role)).c_str(),
                  FormatTime(k.create_time_ms).c_str(), FormatTime(k.revoke_time_ms).c_str(),
                  k.description.c_str());
    }
    return 0;
  }
  absl::StatusOr<storage::ApiKeyRecord> revoked = keys.Revoke(key_id_, NowMs());
  if (!revoked.ok()) return Fail(revoked.status());
  std::cout << "revoked " << revoked->id << " at " << FormatTime(revoked->revoke_time_ms) << "\n";
  return 0;
}

}  // namespace dreambooth::server
