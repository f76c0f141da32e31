// Per-tenant job quotas against a real dreamboothd: --tenant-max-active-jobs refuses CreateJob
// with RESOURCE_EXHAUSTED naming the flag (a retried request still gets its job), and
// --tenant-max-running-jobs keeps a tenant's further jobs queued until a running one ends, when
// a parked LeaseTask is woken for the next one; --tenant-uploads-per-minute;
// --tenant-max-stored-bytes; --max-events-per-job.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/server/e2e_util.h"
#include "tests/testing/image_files.h"

namespace dreambooth::testing {
namespace {

class QuotaE2eTest : public E2eTest {
 protected:
  void SetUp() override {
    StartDaemon({"--tenant-max-active-jobs=2", "--tenant-max-running-jobs=1"});
  }
};

TEST_F(QuotaE2eTest, ActiveAndRunningJobsPerTenantAreCapped) {
  const std::string set = UploadImages(1);
  absl::StatusOr<v1::Job> first = client_->CreateJob(MinimalSpec(set), "req-first");
  absl::StatusOr<v1::Job> second = client_->CreateJob(MinimalSpec(set));
  ASSERT_TRUE(first.ok() && second.ok());
  absl::StatusOr<v1::Job> third = client_->CreateJob(MinimalSpec(set));
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(absl::StrContains(third.status().message(), "--tenant-max-active-jobs"))
      << third.status();
  absl::StatusOr<v1::Job> retried = client_->CreateJob(MinimalSpec(set), "req-first");
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->id(), first->id());

  TestWorker a(workers_.get(), "a"), b(workers_.get(), "b");
  std::optional<v1::Task> running = a.Lease();
  ASSERT_TRUE(running.has_value());
  EXPECT_EQ(running->job_id(), first->id());
  // The second job waits although a worker asks: b's long poll parks...
  std::future<std::optional<v1::Task>> parked =
      std::async(std::launch::async, [&] { return b.Lease(/*wait_ms=*/20'000); });
  EXPECT_EQ(parked.wait_for(std::chrono::milliseconds(500)), std::future_status::timeout);
  EXPECT_EQ(client_->GetJob(second->id())->state(), v1::JOB_STATE_QUEUED);
  // ...and is answered with it as soon as the first job ends.
  ASSERT_TRUE(a.Finish(running->lease_token()).ok());
  ASSERT_EQ(parked.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  std::optional<v1::Task> next = parked.get();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->job_id(), second->id());
  // One job active again: there is room for a new one.
  EXPECT_TRUE(client_->CreateJob(MinimalSpec(set)).ok());
}

TEST_F(QuotaE2eTest, UploadsPerMinuteAreLimitedPerTenant) {
  StartDaemon({"--tenant-uploads-per-minute=2"});
  UploadImages(1);
  UploadImages(1);
  absl::StatusOr<v1::UploadImagesResponse> third =
      client_->Upload({{"x.jpg", std::string(10, 'x')}}, "", "third");
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted) << third.status();
  EXPECT_TRUE(absl::StrContains(third.status().message(), "--tenant-uploads-per-minute"))
      << third.status();
  EXPECT_TRUE(absl::StrContains(third.status().message(), "retry in")) << third.status();
  EXPECT_EQ(client_->ListImageSets(100, "")->image_sets_size(), 2);
}

TEST_F(QuotaE2eTest, StoredBytesPerTenantAreCapped) {
  const std::string set = UploadImages(1);  // under the default limit
  absl::StatusOr<v1::ImageSet> stored = client_->GetImageSet(set);
  ASSERT_TRUE(stored.ok()) << stored.status();
  const int64_t bytes = stored->images(0).size_bytes();
  absl::StatusOr<v1::Job> created = client_->CreateJob(MinimalSpec(set), "req-quota");
  ASSERT_TRUE(created.ok()) << created.status();
  // The same data dir with a limit the set already reaches: uploads and new jobs are refused,
  // a retried request still gets its job, and deleting frees the quota.
  StartDaemon({absl::StrCat("--tenant-max-stored-bytes=", bytes)});
  absl::StatusOr<v1::UploadImagesResponse> more =
      client_->Upload({{"more.jpg", MakeJpeg(Noise(40, 40, 99), JpegColor::kRgb)}}, "", "more");
  EXPECT_EQ(more.status().code(), absl::StatusCode::kResourceExhausted) << more.status();
  EXPECT_TRUE(absl::StrContains(more.status().message(), "--tenant-max-stored-bytes"))
      << more.status();
  absl::StatusOr<v1::Job> refused = client_->CreateJob(MinimalSpec(set));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted) << refused.status();
  absl::StatusOr<v1::Job> retried = client_->CreateJob(MinimalSpec(set), "req-quota");
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->id(), created->id());
  ASSERT_TRUE(client_->CancelJob(created->id()).ok());
  ASSERT_TRUE(client_->DeleteImageSet(set).ok());
  EXPECT_TRUE(
      client_->Upload({{"more.jpg", MakeJpeg(Noise(40, 40, 99), JpegColor::kRgb)}}, "", "more")
          .ok());
}

TEST_F(QuotaE2eTest, AJobsEventsAreCappedWithoutFailingItsWorker) {
  StartDaemon({"--max-events-per-job=8"});
  const std::string set = UploadImages(1);
  absl::StatusOr<v1::Job> job = client_->CreateJob(MinimalSpec(set));  // event 1: queued
  ASSERT_TRUE(job.ok()) << job.status();
  TestWorker worker(workers_.get(), "w");
  std::optional<v1::Task> task = worker.Lease();  // event 2: running
  ASSERT_TRUE(task.has_value());
  auto log = [&](int n) {
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::ReportEventsRequest request;
    request.set_lease_token(task->lease_token());
    for (int i = 0; i < n; ++i) {
      v1::JobEvent* e = request.add_events();
      e->set_kind(v1::EVENT_KIND_LOG);
      e->set_message(absl::StrCat("line ", i));
    }
    v1::ReportEventsResponse response;
    return workers_->gateway().ReportEvents(&c, request, &response);
  };
  ASSERT_TRUE(log(10).ok());  // 5 fit, then the note
  EXPECT_EQ(client_->GetJob(job->id())->last_sequence(), 8);
  ASSERT_TRUE(log(3).ok());  // dropped
  ASSERT_TRUE(worker.Progress(task->lease_token(), 7, 10, 0.5f).ok());
  absl::StatusOr<v1::Job> now = client_->GetJob(job->id());
  EXPECT_EQ(now->last_sequence(), 8);
  EXPECT_EQ(now->step(), 7);
  std::string last_message;
  ASSERT_TRUE(client_
                  ->WatchJob(job->id(), 7,
                             [&](const v1::JobEvent& e) {
                               last_message = e.message();
                               return false;
                             })
                  .ok());
  EXPECT_TRUE(absl::StrContains(last_message, "--max-events-per-job")) << last_message;
  // The job's own events (checkpoint, success) are still recorded.
  v1::JobState state;
  ASSERT_TRUE(worker.Finish(task->lease_token(), &state).ok());
  EXPECT_EQ(state, v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(client_->GetJob(job->id())->last_sequence(), 10);
}

}  // namespace
}  // namespace dreambooth::testing
