// Retention against a real dreamboothd on loopback: DeleteCheckpoint, DeleteJob (also of a
// running job, whose worker loses its lease) and DeleteImageSet, after which the garbage
// collector (--gc-interval, --gc-grace=1s here: longer than a write takes to record its blob)
// leaves no blob on disk; and the spec's checkpoints_total_limit pruning older sampleable
// checkpoints; and --max-blob-bytes.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "tests/server/e2e_util.h"
#include "tests/testing/poll.h"

namespace dreambooth::testing {
namespace {

namespace fs = std::filesystem;

class RetentionE2eTest : public E2eTest {
 protected:
  void SetUp() override { StartDaemon({"--gc-interval=100ms", "--gc-grace=1s"}); }

  // Blob files under the data dir.
  int BlobFiles() {
    int n = 0;
    std::error_code ec;
    for (fs::recursive_directory_iterator it(dir_.Join("data/blobs/sha256"), ec), end;
         !ec && it != end; it.increment(ec)) {
      n += it->is_regular_file() ? 1 : 0;
    }
    return n;
  }
};

TEST_F(RetentionE2eTest, DeletingCheckpointsJobsAndSetsFreesTheirBlobs) {
  const std::string set = UploadImages(2);
  absl::StatusOr<v1::Job> job = client_->CreateJob(MinimalSpec(set));
  ASSERT_TRUE(job.ok()) << job.status();
  TestWorker worker(workers_.get(), "w");
  std::optional<v1::Task> task = worker.Lease();
  ASSERT_TRUE(task.has_value());
  std::string sampleable;
  ASSERT_TRUE(
      worker.CommitCheckpoint(task->lease_token(), 5, v1::CHECKPOINT_KIND_SAMPLEABLE, &sampleable)
          .ok());
  ASSERT_TRUE(worker.Finish(task->lease_token()).ok());
  EXPECT_EQ(BlobFiles(), 4);  // two images, two checkpoint files

  ASSERT_TRUE(client_->DeleteCheckpoint(sampleable).ok());
  absl::StatusOr<v1::ListCheckpointsResponse> left = client_->ListCheckpoints(job->id());
  ASSERT_TRUE(left.ok()) << left.status();
  ASSERT_EQ(left->checkpoints_size(), 1);
  EXPECT_EQ(left->checkpoints(0).kind(), v1::CHECKPOINT_KIND_FINAL);
  EXPECT_TRUE(PollUntil([&] { return BlobFiles() == 3; })) << BlobFiles();
  EXPECT_EQ(client_->DeleteCheckpoint(sampleable).code(), absl::StatusCode::kNotFound);

  ASSERT_TRUE(client_->DeleteJob(job->id()).ok());
  EXPECT_EQ(client_->GetJob(job->id()).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->DeleteJob(job->id()).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(PollUntil([&] { return BlobFiles() == 2; })) << BlobFiles();
  ASSERT_TRUE(client_->DeleteImageSet(set).ok());
  EXPECT_TRUE(PollUntil([&] { return BlobFiles() == 0; })) << BlobFiles();
  EXPECT_TRUE(absl::StrContains(daemon_->Log(), "maintenance:")) << daemon_->Log();
}

TEST_F(RetentionE2eTest, DeletingARunningJobEndsItsWorkersLeaseAndItsWatch) {
  const std::string set = UploadImages(1);
  absl::StatusOr<v1::Job> job = client_->CreateJob(MinimalSpec(set));
  ASSERT_TRUE(job.ok()) << job.status();
  TestWorker worker(workers_.get(), "w");
  std::optional<v1::Task> task = worker.Lease();
  ASSERT_TRUE(task.has_value());
  ASSERT_TRUE(worker.Progress(task->lease_token(), 1, 10, 0.5f).ok());
  absl::Status watch_status;
  std::thread watcher([&] {
    watch_status = client_->WatchJob(job->id(), 0, [](const v1::JobEvent&) { return true; });
  });
  ASSERT_TRUE(client_->DeleteJob(job->id()).ok());
  watcher.join();
  EXPECT_EQ(watch_status.code(), absl::StatusCode::kNotFound) << watch_status;
  EXPECT_EQ(worker.Heartbeat(task->lease_token()).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  grpc::Status write;
  worker.WriteBlob(task->lease_token(), "late weights", &write);
  EXPECT_EQ(write.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(worker.Finish(task->lease_token()).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  // Its set is free to delete now.
  EXPECT_TRUE(client_->DeleteImageSet(set).ok());
}

TEST_F(RetentionE2eTest, TheSpecsLimitKeepsOnlyTheNewestSampleableCheckpoints) {
  const std::string set = UploadImages(1);
  v1::JobSpec spec = MinimalSpec(set);
  spec.set_checkpoints_total_limit(2);
  absl::StatusOr<v1::Job> job = client_->CreateJob(spec);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->spec().checkpoints_total_limit(), 2);
  EXPECT_EQ(job->spec().resume_checkpoints_to_keep(), 1);  // resolved default
  TestWorker worker(workers_.get(), "w");
  std::optional<v1::Task> task = worker.Lease();
  ASSERT_TRUE(task.has_value());
  std::vector<std::string> ids(4);
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(
        worker.CommitCheckpoint(task->lease_token(), i + 1, v1::CHECKPOINT_KIND_SAMPLEABLE, &ids[i])
            .ok());
    ASSERT_TRUE(
        worker.CommitCheckpoint(task->lease_token(), i + 1, v1::CHECKPOINT_KIND_RESUME).ok());
  }
  absl::StatusOr<v1::ListCheckpointsResponse> listed = client_->ListCheckpoints(job->id());
  ASSERT_TRUE(listed.ok()) << listed.status();
  std::vector<std::string> sampleable;
  int resume = 0;
  for (const v1::Checkpoint& c : listed->checkpoints()) {
    if (c.kind() == v1::CHECKPOINT_KIND_SAMPLEABLE) sampleable.push_back(c.id());
    resume += c.kind() == v1::CHECKPOINT_KIND_RESUME;
  }
  EXPECT_EQ(sampleable, (std::vector<std::string>{ids[2], ids[3]}));
  EXPECT_EQ(resume, 1);

  spec.set_checkpoints_total_limit(0);
  absl::StatusOr<v1::Job> refused = client_->CreateJob(spec);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "spec.checkpoints_total_limit"))
      << refused.status();
}

TEST_F(RetentionE2eTest, ABlobOverTheServersLimitIsRefusedAndNothingIsStored) {
  StartDaemon({"--max-blob-bytes=1000", "--gc-interval=1h"});
  const std::string set = UploadImages(1);
  ASSERT_TRUE(client_->CreateJob(MinimalSpec(set)).ok());
  TestWorker worker(workers_.get(), "w");
  std::optional<v1::Task> task = worker.Lease();
  ASSERT_TRUE(task.has_value());
  const int before = BlobFiles();
  grpc::Status status;
  worker.WriteBlob(task->lease_token(), std::string(1001, 'x'), &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "--max-blob-bytes"))
      << status.error_message();
  EXPECT_EQ(BlobFiles(), before);
  worker.WriteBlob(task->lease_token(), std::string(1000, 'x'), &status);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(BlobFiles(), before + 1);
}

}  // namespace
}  // namespace dreambooth::testing
