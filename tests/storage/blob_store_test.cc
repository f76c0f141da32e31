// The content-addressed blob store: dedupe, digest checks, crash safety.
#include "storage/blob_store.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "common/crypto.h"
#include "tests/testing/temp_dir.h"

namespace dreambooth::storage {
namespace {

int CountFiles(const std::string& dir) {
  int n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) ++n;
  }
  return n;
}

TEST(BlobStore, StoresUnderTheSha256AndDeduplicates) {
  testing::TempDir dir;
  auto store = BlobStore::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status();
  const std::string data = "hello blobs";
  auto first = (*store)->Put(data);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->digest, Sha256Hex(data));
  EXPECT_EQ(first->size_bytes, static_cast<int64_t>(data.size()));
  EXPECT_FALSE(first->existed);
  auto second = (*store)->Put(data);
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->existed);
  EXPECT_EQ(second->digest, first->digest);
  EXPECT_EQ(CountFiles(dir.Join("blobs")), 1);
  EXPECT_EQ(CountFiles(dir.Join("tmp")), 0);
  EXPECT_EQ(*(*store)->ReadAll(first->digest), data);
  EXPECT_EQ(*(*store)->Read(first->digest, 6, 100), "blobs");
  EXPECT_EQ((*store)->Read(first->digest, 99, 1).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(
      (*store)->PathFor(first->digest),
      dir.path() + "/blobs/sha256/" + first->digest.substr(0, 2) + "/" + first->digest.substr(2));
}

TEST(BlobStore, StreamedWriteMatchesOneShotDigest) {
  testing::TempDir dir;
  auto store = BlobStore::Open(dir.path());
  ASSERT_TRUE(store.ok());
  std::string data(3 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7919 >> 3);
  auto writer = (*store)->NewWriter();
  ASSERT_TRUE(writer.ok());
  for (size_t off = 0; off < data.size(); off += 1000003) {
    ASSERT_TRUE((*writer)->Append(std::string_view(data).substr(off, 1000003)).ok());
  }
  auto info = (*writer)->Finish(Sha256Hex(data));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->digest, Sha256Hex(data));
  EXPECT_TRUE((*store)->Verify(info->digest).ok());
}

TEST(BlobStore, WrongExpectedDigestStoresNothing) {
  testing::TempDir dir;
  auto store = BlobStore::Open(dir.path());
  ASSERT_TRUE(store.ok());
  const std::string claimed = Sha256Hex("something else");
  auto info = (*store)->Put("actual content", claimed);
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE((*store)->Contains(claimed));
  EXPECT_FALSE((*store)->Contains(Sha256Hex("actual content")));
  EXPECT_EQ(CountFiles(dir.path()), 0);
  EXPECT_EQ((*store)->Size("not-a-digest").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*store)->Size(claimed).status().code(), absl::StatusCode::kNotFound);
}

TEST(BlobStore, VerifyDetectsCorruption) {
  testing::TempDir dir;
  auto store = BlobStore::Open(dir.path());
  ASSERT_TRUE(store.ok());
  auto info = (*store)->Put("pristine bytes");
  ASSERT_TRUE(info.ok());
  testing::WriteFile((*store)->PathFor(info->digest), "tampered bytes");
  const absl::Status s = (*store)->Verify(info->digest);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
}

TEST(BlobStore, WriterAbandonedBeforeFinishLeavesNothing) {
  testing::TempDir dir;
  auto store = BlobStore::Open(dir.path());
  ASSERT_TRUE(store.ok());
  {
    auto writer = (*store)->NewWriter();
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Append("half of a blob").ok());
  }
  EXPECT_EQ(CountFiles(dir.path()), 0);
}

TEST(BlobStore, WriteKilledHalfWayLeavesNoVisibleBlob) {
  testing::TempDir dir;
  const std::string full(4 << 20, 'x');
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The child writes half of the blob, then dies without any cleanup.
    auto store = BlobStore::Open(dir.path());
    if (!store.ok()) _exit(2);
    auto writer = (*store)->NewWriter();
    if (!writer.ok()) _exit(3);
    if (!(*writer)->Append(std::string_view(full).substr(0, full.size() / 2)).ok()) _exit(4);
    kill(getpid(), SIGKILL);
    _exit(5);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  // The half-written temp file exists, but no blob is visible under any name.
  EXPECT_EQ(CountFiles(dir.Join("tmp")), 1);
  EXPECT_EQ(CountFiles(dir.Join("blobs")), 0);
  auto store = BlobStore::Open(dir.path());  // restart cleans temp files
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(CountFiles(dir.Join("tmp")), 0);
  EXPECT_FALSE((*store)->Contains(Sha256Hex(full)));
  EXPECT_FALSE((*store)->Contains(Sha256Hex(full.substr(0, full.size() / 2))));
}

}  // namespace
}  // namespace dreambooth::storage
