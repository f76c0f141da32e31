// Whole-file reads and atomic writes: round trips (several parts, empty files, replacing a file),
// deferred-durability writes synced at once, the error codes of a missing file, and a failed write
// that leaves nothing behind.
#include "common/file_io.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tests/testing/temp_dir.h"

namespace dreambooth {
namespace {

TEST(FileIoTest, WritesReadBackAndReplaceAtomically) {
  testing::TempDir tmp;
  const std::string path = tmp.Join("a.bin");
  ASSERT_TRUE(WriteFileAtomic(path, std::vector<std::string_view>{"head", "", "er+body"}).ok());
  EXPECT_EQ(*ReadFileToString(path), "header+body");
  ASSERT_TRUE(WriteFileAtomic(path, "new").ok());
  EXPECT_EQ(*ReadFileToString(path), "new");
  ASSERT_TRUE(WriteFileAtomic(tmp.Join("empty"), "").ok());
  EXPECT_EQ(*ReadFileToString(tmp.Join("empty")), "");
  // No temporary file is left beside the targets.
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(tmp.path())) {
    ++files;
    EXPECT_EQ(entry.path().filename().string().find(".tmp"), std::string::npos) << entry.path();
  }
  EXPECT_EQ(files, 2);
}

TEST(FileIoTest, DeferredWritesAreAtomicAndSyncedTogether) {
  testing::TempDir tmp;
  ASSERT_TRUE(WriteFileAtomic(tmp.Join("a"), "one", Durability::kDeferred).ok());
  ASSERT_TRUE(WriteFileAtomic(tmp.Join("a"), "two", Durability::kDeferred).ok());
  EXPECT_EQ(*ReadFileToString(tmp.Join("a")), "two");
  EXPECT_TRUE(SyncFileSystem(tmp.path()).ok());
  EXPECT_TRUE(SyncFileSystem(tmp.Join("a")).ok());
  EXPECT_EQ(SyncFileSystem(tmp.Join("absent")).code(), absl::StatusCode::kInternal);
}

TEST(FileIoTest, MissingFilesAndFoldersAreClearErrors) {
  testing::TempDir tmp;
  absl::StatusOr<std::string> missing = ReadFileToString(tmp.Join("absent"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("absent"), std::string::npos);
  absl::Status write = WriteFileAtomic(tmp.Join("no/such/folder/x"), "bytes");
  EXPECT_EQ(write.code(), absl::StatusCode::kInternal) << write;
  EXPECT_FALSE(std::filesystem::exists(tmp.Join("no")));
}

}  // namespace
}  // namespace dreambooth
