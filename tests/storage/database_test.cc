// Schema migrations and pragmas of a fresh, a reopened and an older database.
#include "storage/database.h"

#include <gtest/gtest.h>

#include "storage/catalog_store.h"
#include "storage/migrations.h"
#include "storage/sqlite.h"
#include "tests/testing/temp_dir.h"

namespace dreambooth::storage {
namespace {

std::string QueryText(Database& db, const std::string& sql) {
  std::string out;
  EXPECT_TRUE(db.Read([&](Connection& c) -> absl::Status {
                  auto s = c.Prepare(sql);
                  if (!s.ok()) return s.status();
                  auto row = s->Step();
                  if (!row.ok()) return row.status();
                  if (*row) out = s->ColumnText(0);
                  return absl::OkStatus();
                }).ok());
  return out;
}

TEST(Database, MigratesFromEmptyAndReopens) {
  testing::TempDir dir;
  const std::string path = dir.Join("db.sqlite");
  {
    auto db = Database::Open({path});
    ASSERT_TRUE(db.ok()) << db.status();
    EXPECT_EQ(*(*db)->SchemaVersion(), Database::LatestSchemaVersion());
    EXPECT_GE(Database::LatestSchemaVersion(), 1);
    for (const char* table : {"jobs", "events", "request_ids", "image_sets", "images",
                              "checkpoints", "checkpoint_files", "base_models", "cache_entries"}) {
      EXPECT_EQ(QueryText(**db, std::string("SELECT name FROM sqlite_master WHERE name = '") +
                                    table + "'"),
                table);
    }
    EXPECT_EQ(QueryText(**db, "PRAGMA journal_mode"), "wal");
    EXPECT_EQ(QueryText(**db, "PRAGMA synchronous"), "2");  // FULL
    EXPECT_EQ(QueryText(**db, "PRAGMA foreign_keys"), "1");
  }
  // Reopening an up-to-date database applies nothing and keeps the version.
  auto again = Database::Open({path});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*(*again)->SchemaVersion(), Database::LatestSchemaVersion());
  EXPECT_EQ(QueryText(**again, "PRAGMA integrity_check"), "ok");
}

TEST(Database, AVersion1DatabaseMigratesAndKeepsItsImages) {
  testing::TempDir dir;
  const std::string path = dir.Join("db.sqlite");
  {
    // What a binary of schema version 1 left behind: a set with one image.
    auto c = Connection::Open(path, 1000);
    ASSERT_TRUE(c.ok()) << c.status();
    ASSERT_TRUE(c->Exec(Migrations()[0]).ok());
    ASSERT_TRUE(c->Exec("PRAGMA user_version = 1").ok());
    ASSERT_TRUE(c->Exec("INSERT INTO image_sets VALUES ('is_old', 1, 'old', 5)").ok());
    ASSERT_TRUE(
        c->Exec("INSERT INTO images VALUES ('is_old', 0, 'a.png', 'aa', 10, 8, 8, 'png')").ok());
  }
  auto db = Database::Open({path});
  ASSERT_TRUE(db.ok()) << db.status();
  EXPECT_EQ(*(*db)->SchemaVersion(), Database::LatestSchemaVersion());
  EXPECT_EQ(QueryText(**db, "SELECT name || '|' || caption FROM images"), "a.png|");
  CatalogStore catalog(db->get());
  auto set = catalog.GetImageSet("is_old");
  ASSERT_TRUE(set.ok()) << set.status();
  ASSERT_EQ(set->images.size(), 1u);
  EXPECT_EQ(set->images[0].caption, "");
  EXPECT_EQ(set->tenant, "default");  // what existed before tenants belongs to the default one
  // The migrated table takes captions.
  StoredImageRecord image = set->images[0];
  image.caption = "a small square";
  ASSERT_TRUE(catalog.AddImages("default", "is_old", "", {image}, 10, 6).ok());
  EXPECT_EQ(catalog.GetImageSet("is_old")->images[0].caption, "a small square");
  EXPECT_EQ(QueryText(**db, "PRAGMA integrity_check"), "ok");
}

TEST(Database, RefusesADatabaseFromANewerBinary) {
  testing::TempDir dir;
  const std::string path = dir.Join("db.sqlite");
  {
    auto c = Connection::Open(path, 1000);
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(c->Exec("PRAGMA user_version = 999").ok());
  }
  auto db = Database::Open({path});
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(db.status().message().find("999"), std::string::npos) << db.status();
}

TEST(Database, FailedWriteRollsBack) {
  testing::TempDir dir;
  auto db = Database::Open({dir.Join("db.sqlite")});
  ASSERT_TRUE(db.ok());
  absl::Status s = (*db)->Write([](Connection& c) -> absl::Status {
    absl::Status ins = c.Exec("INSERT INTO meta (key, value) VALUES ('k', 'v')");
    if (!ins.ok()) return ins;
    return absl::AbortedError("caller gave up");
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(QueryText(**db, "SELECT COUNT(*) FROM meta"), "0");
}

TEST(Database, SqliteErrorsKeepTheDetailInTheMessageAndAGenericKindInTheirPayload) {
  testing::TempDir dir;
  auto db = Database::Open({dir.Join("db.sqlite")});
  ASSERT_TRUE(db.ok());
  absl::Status s = (*db)->Write(
      [](Connection& c) -> absl::Status { return c.Exec("SELECT * FROM no_such_table"); });
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  // The message, for the server's log, names the statement...
  EXPECT_NE(s.message().find("no such table: no_such_table"), std::string::npos) << s;
  EXPECT_NE(s.message().find("SELECT * FROM no_such_table"), std::string::npos) << s;
  // ...the kind, for clients, names nothing of the schema.
  EXPECT_EQ(SqliteErrorKind(s), "SQL logic error");
  EXPECT_EQ(SqliteErrorKind(absl::InternalError("not from sqlite")), std::nullopt);
}

}  // namespace
}  // namespace dreambooth::storage
