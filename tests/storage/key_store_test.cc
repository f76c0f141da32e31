// KeyStore on a real SQLite file: a created key verifies and carries its tenant and role, only
// the secret's SHA-256 is stored, a wrong secret / unknown id / revoked key are refused alike,
// malformed keys and tenant names are refused, and keys survive a reopen of the database.
#include "storage/key_store.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "common/crypto.h"
#include "storage/database.h"
#include "tests/testing/temp_dir.h"

namespace dreambooth::storage {
namespace {

class KeyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }
  void Open() {
    store_.reset();
    db_.reset();
    auto db = Database::Open({dir_.Join("db.sqlite")});
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
    store_ = std::make_unique<KeyStore>(db_.get());
  }

  testing::TempDir dir_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<KeyStore> store_;
};

TEST_F(KeyStoreTest, ACreatedKeyVerifiesAsItsTenantAndRole) {
  auto created = store_->Create("acme", KeyRole::kTenant, "ci", 1000);
  ASSERT_TRUE(created.ok()) << created.status();
  auto parsed = ParseApiKey(created->key);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->id, created->record.id);
  // Only the digest of the secret is kept.
  EXPECT_EQ(created->record.secret_sha256, Sha256Hex(parsed->secret));
  EXPECT_EQ(created->key.find(created->record.secret_sha256), std::string::npos);

  Open();  // survives a reopen
  auto verified = store_->Verify(created->key);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_EQ(verified->tenant, "acme");
  EXPECT_EQ(verified->role, KeyRole::kTenant);
  EXPECT_EQ(verified->description, "ci");
  EXPECT_EQ(verified->create_time_ms, 1000);
}

TEST_F(KeyStoreTest, WrongSecretsUnknownIdsAndRevokedKeysAreRefusedAlike) {
  auto admin = store_->Create("ops", KeyRole::kAdmin, "", 1);
  ASSERT_TRUE(admin.ok());
  std::string wrong_secret = admin->key;
  wrong_secret.back() = wrong_secret.back() == '0' ? '1' : '0';
  std::string unknown_id = admin->key;
  unknown_id[4] = unknown_id[4] == '0' ? '1' : '0';
  for (const std::string& key : {wrong_secret, unknown_id}) {
    absl::StatusOr<ApiKeyRecord> refused = store_->Verify(key);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(refused.status().message(), "invalid or revoked API key");
  }
  auto revoked = store_->Revoke(admin->record.id, 50);
  ASSERT_TRUE(revoked.ok()) << revoked.status();
  EXPECT_EQ(revoked->revoke_time_ms, 50);
  EXPECT_EQ(store_->Verify(admin->key).status().message(), "invalid or revoked API key");
  // Revoking again keeps the first time; an unknown id is NOT_FOUND.
  EXPECT_EQ(store_->Revoke(admin->record.id, 99)->revoke_time_ms, 50);
  EXPECT_EQ(store_->Revoke("0123456789abcdef", 99).status().code(), absl::StatusCode::kNotFound);
  auto all = store_->List();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].role, KeyRole::kAdmin);
  EXPECT_EQ((*all)[0].revoke_time_ms, 50);
}

TEST_F(KeyStoreTest, MalformedKeysAndTenantNamesAreRefused) {
  for (const std::string& key : {std::string(""), std::string("Bearer"), std::string("dbk_"),
                                 std::string("dbk_0123456789abcdef"),
                                 std::string("dbk_0123456789ABCDEF_") + std::string(64, 'a'),
                                 std::string("dbk_0123456789abcdef_") + std::string(63, 'a'),
                                 std::string("xyz_0123456789abcdef_") + std::string(64, 'a')}) {
    EXPECT_EQ(ParseApiKey(key).status().code(), absl::StatusCode::kInvalidArgument) << key;
    EXPECT_EQ(store_->Verify(key).status().code(), absl::StatusCode::kUnauthenticated) << key;
  }
  for (const std::string& tenant : std::vector<std::string>{"", "-leading", "Upper", "with space",
                                                            "a/b", std::string(65, 'a')}) {
    EXPECT_EQ(store_->Create(tenant, KeyRole::kTenant, "", 1).status().code(),
              absl::StatusCode::kInvalidArgument)
        << tenant;
  }
  EXPECT_TRUE(store_->Create("team-7_b", KeyRole::kWorker, "", 1).ok());
  EXPECT_EQ(ParseKeyRole("root").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dreambooth::storage
