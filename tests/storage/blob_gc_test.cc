// CollectGarbage on a real SQLite file and blob directory: it deletes exactly the blobs nothing
// references (images, checkpoint files, cache items, writes of a lease that is still current),
// keeps what was written or deduplicated within the grace period, drops the write records of
// ended leases, and frees a job's, a set's and a cache entry's blobs once they are deleted.
#include "storage/blob_gc.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <memory>
#include <string>

#include "storage/catalog_store.h"
#include "storage/job_store.h"
#include "storage/lease_access.h"
#include "tests/testing/temp_dir.h"

namespace dreambooth::storage {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class BlobGcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = Database::Open({dir_.Join("db.sqlite")});
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
    auto blobs = BlobStore::Open(dir_.Join("store"));
    ASSERT_TRUE(blobs.ok()) << blobs.status();
    blobs_ = std::move(*blobs);
    jobs_ = std::make_unique<JobStore>(db_.get());
    catalog_ = std::make_unique<CatalogStore>(db_.get());
    access_ = std::make_unique<LeaseAccess>(db_.get());
  }

  BlobInfo Put(const std::string& bytes) {
    absl::StatusOr<BlobInfo> info = blobs_->Put(bytes);
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? *info : BlobInfo();
  }

  // Sets the blob's modification time `age_ms` into the past.
  void Age(const std::string& digest, int64_t age_ms) {
    const int64_t then = NowMs() - age_ms;
    const timespec times[2] = {{then / 1000, (then % 1000) * 1'000'000},
                               {then / 1000, (then % 1000) * 1'000'000}};
    ASSERT_EQ(utimensat(AT_FDCWD, blobs_->PathFor(digest).c_str(), times, 0), 0);
  }

  // A queued job on set `set_id`, claimed: its lease.
  Lease ClaimJob(const std::string& set_id) {
    NewJob job;
    job.spec = "spec";
    job.base_model = "tiny";
    job.instance_set = set_id;
    EXPECT_TRUE(jobs_->Create(job, NowMs(), 1000).ok());
    auto lease = jobs_->Claim("w", {"tiny"}, NowMs(), 60'000);
    EXPECT_TRUE(lease.ok() && lease->has_value());
    return **lease;
  }

  LeaseScope Scope(const Lease& lease) {
    return {lease.token, lease.job.id, lease.job.tenant, lease.job.instance_set, "", ""};
  }

  GcReport Collect(int64_t grace_ms) {
    absl::StatusOr<GcReport> report = CollectGarbage(*db_, *blobs_, NowMs() + 1000, grace_ms);
    EXPECT_TRUE(report.ok()) << report.status();
    return report.ok() ? *report : GcReport();
  }

  testing::TempDir dir_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<JobStore> jobs_;
  std::unique_ptr<CatalogStore> catalog_;
  std::unique_ptr<LeaseAccess> access_;
};

TEST_F(BlobGcTest, DeletesExactlyTheUnreferencedBlobsAndFreesDeletedResources) {
  const BlobInfo image = Put("image bytes");
  const BlobInfo weights = Put("checkpoint weights");
  const BlobInfo cached = Put("class image");
  const BlobInfo pending = Put("written by a running job, not yet committed");
  const BlobInfo orphan = Put("an abandoned upload");
  const BlobInfo ended = Put("written under a lease that ended");

  StoredImageRecord record{"a.png", image.digest, image.size_bytes, 8, 8, "png", ""};
  absl::StatusOr<ImageSetRecord> set = catalog_->AddImages("t", "", "set", {record}, 10, NowMs());
  ASSERT_TRUE(set.ok()) << set.status();
  const Lease running = ClaimJob(set->id);
  ASSERT_TRUE(jobs_
                  ->CommitCheckpoint(running.token, NowMs(), 5, CheckpointKind::kSampleable,
                                     {{"unet/w.safetensors", weights.digest, weights.size_bytes}})
                  .ok());
  ASSERT_TRUE(access_->RecordWrite(Scope(running), pending.digest, NowMs()).ok());
  const Lease failed = ClaimJob(set->id);
  ASSERT_TRUE(access_->RecordWrite(Scope(failed), ended.digest, NowMs()).ok());
  ASSERT_TRUE(jobs_->Fail(failed.token, NowMs(), "boom", /*retryable=*/false).ok());
  ASSERT_TRUE(catalog_
                  ->PutCacheEntry("t", "classimg/v1/k", {{"000000.png", cached.digest, 11}},
                                  /*append=*/false, "{}", NowMs())
                  .ok());

  GcReport report = Collect(/*grace_ms=*/0);
  EXPECT_EQ(report.blobs, 6);
  EXPECT_EQ(report.referenced, 4);
  EXPECT_EQ(report.deleted, 2);
  EXPECT_EQ(report.bytes_freed, orphan.size_bytes + ended.size_bytes);
  EXPECT_EQ(report.stale_lease_rows, 1);
  for (const BlobInfo& kept : {image, weights, cached, pending}) {
    EXPECT_TRUE(blobs_->Contains(kept.digest)) << kept.digest;
  }
  EXPECT_FALSE(blobs_->Contains(orphan.digest));
  EXPECT_FALSE(blobs_->Contains(ended.digest));
  // The running lease may still read what it wrote; the ended one may not.
  EXPECT_TRUE(*access_->MayRead(Scope(running), pending.digest));
  EXPECT_FALSE(*access_->MayRead(Scope(failed), ended.digest));

  // Deleting the job (checkpoints, lease records), the set and the cache entry frees the rest.
  ASSERT_TRUE(jobs_->Delete(running.job.id).ok());
  ASSERT_TRUE(jobs_->Delete(failed.job.id).ok());
  ASSERT_TRUE(catalog_->DeleteImageSet(set->id).ok());
  ASSERT_TRUE(
      catalog_->PutCacheEntry("t", "classimg/v1/k", {}, /*append=*/false, "{}", NowMs()).ok());
  report = Collect(/*grace_ms=*/0);
  EXPECT_EQ(report.deleted, 4);
  EXPECT_EQ(report.referenced, 0);
  for (const BlobInfo& freed : {image, weights, cached, pending}) {
    EXPECT_FALSE(blobs_->Contains(freed.digest)) << freed.digest;
  }
  EXPECT_EQ(Collect(0).blobs, 0);
}

TEST_F(BlobGcTest, RecentAndDeduplicatedWritesSurviveTheGracePeriod) {
  constexpr int64_t kHour = 3600 * 1000;
  const BlobInfo old = Put("an old orphan");
  Age(old.digest, 2 * kHour);
  const BlobInfo recent = Put("a fresh upload not yet recorded");
  const BlobInfo rewritten = Put("an old blob written again");
  Age(rewritten.digest, 2 * kHour);
  EXPECT_TRUE(Put("an old blob written again").existed);  // refreshes it

  const GcReport report = Collect(/*grace_ms=*/kHour);
  EXPECT_EQ(report.deleted, 1);
  EXPECT_EQ(report.young, 2);
  EXPECT_FALSE(blobs_->Contains(old.digest));
  EXPECT_TRUE(blobs_->Contains(recent.digest));
  EXPECT_TRUE(blobs_->Contains(rewritten.digest));
  // RemoveIfOlderThan itself keeps a blob newer than the cutoff.
  EXPECT_EQ(*blobs_->RemoveIfOlderThan(recent.digest, NowMs() - kHour), 0);
  EXPECT_TRUE(blobs_->Contains(recent.digest));
}

}  // namespace
}  // namespace dreambooth::storage
