// LeaseKeeper against the real dreamboothd core in this process (tests/testing/test_server.h),
// with short lease TTLs: heartbeats keep a lease alive past its TTL and carry the task's position;
// a cancel, a lost lease (expired and taken over) and the worker's shutdown each raise the stop
// flag; a server that cannot be reached is not a lost lease while the lease lasts, and is one
// once no heartbeat got through for a whole TTL.
#include "worker/lease_keeper.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "tests/testing/poll.h"
#include "tests/testing/test_server.h"

namespace dreambooth::worker {
namespace {
using testing::PollUntil;
using testing::TestServer;

class LeaseKeeperTest : public ::testing::Test {
 protected:
  // Starts the server with `lease_ttl_ms`, queues a job and leases it.
  void Start(int64_t lease_ttl_ms,
             std::chrono::milliseconds rpc_timeout = std::chrono::seconds(5)) {
    server::ServerOptions options;
    options.lease_ttl_ms = lease_ttl_ms;
    options.sweep_interval_ms = 50;
    absl::StatusOr<std::unique_ptr<TestServer>> server = TestServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    client_ = std::make_unique<GatewayClient>(server_->worker_address(), rpc_timeout);
    absl::StatusOr<v1::Job> job = server_->QueueJob();
    ASSERT_TRUE(job.ok()) << job.status();
    absl::StatusOr<v1::Task> task = server_->Lease("keeper-test");
    ASSERT_TRUE(task.ok()) << task.status();
    task_ = *task;
  }

  std::unique_ptr<LeaseKeeper> MakeKeeper(const std::atomic<bool>* shutdown = nullptr) {
    return std::make_unique<LeaseKeeper>(
        client_.get(), task_.lease_token(), std::chrono::milliseconds(task_.lease_ttl_ms()),
        [this] {
          const int64_t n = ++positions_;
          return TaskPosition{v1::JOB_STAGE_TRAINING, n, 1000};
        },
        &stop_, shutdown);
  }

  v1::Job GetJob() {
    absl::StatusOr<v1::Job> job = server_->api().GetJob(task_.job_id());
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : v1::Job();
  }

  std::unique_ptr<TestServer> server_;
  std::unique_ptr<GatewayClient> client_;
  v1::Task task_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> positions_{0};  // heartbeats sent (each asks for the position once)
};

TEST_F(LeaseKeeperTest, HeartbeatsKeepTheLeasePastItsTtlAndCarryThePosition) {
  Start(/*lease_ttl_ms=*/1500);  // a beat every 500 ms
  auto keeper = MakeKeeper();
  keeper->Start();
  // Seven beats span more than two TTLs; the sweeper (every 50 ms) would have requeued the job.
  ASSERT_TRUE(PollUntil([&] { return positions_ >= 7; }, std::chrono::seconds(30)));
  const v1::Job job = GetJob();
  EXPECT_EQ(job.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(job.attempt(), 1);
  EXPECT_EQ(job.stage(), v1::JOB_STAGE_TRAINING);
  EXPECT_GE(job.step(), 6);
  EXPECT_EQ(job.total_steps(), 1000);
  EXPECT_FALSE(keeper->lease_lost());
  EXPECT_FALSE(keeper->cancel_requested());
  EXPECT_FALSE(stop_);
  // The token still fences in: a write under it is accepted.
  v1::JobEvent log;
  log.set_kind(v1::EVENT_KIND_LOG);
  log.set_message("still here");
  EXPECT_TRUE(client_->ReportEvents(task_.lease_token(), {log}).ok());
}

TEST_F(LeaseKeeperTest, ACancelReachesTheKeeperAndRaisesTheStopFlag) {
  Start(/*lease_ttl_ms=*/900);  // a beat every 300 ms
  auto keeper = MakeKeeper();
  keeper->Start();
  ASSERT_TRUE(server_->api().CancelJob(task_.job_id()).ok());
  ASSERT_TRUE(PollUntil([&] { return stop_.load(); }));
  EXPECT_TRUE(keeper->cancel_requested());
  EXPECT_FALSE(keeper->lease_lost());
  // The lease itself is intact: the worker ends the task, and the job becomes CANCELLED.
  keeper->Stop();
  absl::StatusOr<v1::JobState> state = client_->CompleteTask(task_.lease_token());
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, v1::JOB_STATE_CANCELLED);
}

TEST_F(LeaseKeeperTest, ALeaseTakenOverAfterExpiryIsLostAndNoLongerBeaten) {
  Start(/*lease_ttl_ms=*/500);
  auto keeper = MakeKeeper();  // not started: nothing renews the lease
  ASSERT_TRUE(PollUntil([&] { return GetJob().state() == v1::JOB_STATE_QUEUED; }));
  absl::StatusOr<v1::Task> next = server_->Lease("next-worker");
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->attempt(), 2);

  keeper->BeatNow();
  EXPECT_TRUE(keeper->lease_lost());
  EXPECT_TRUE(stop_);
  EXPECT_FALSE(keeper->cancel_requested());
  // A lost lease is final: no further heartbeat is sent, and the new owner is untouched.
  const int64_t beats = positions_;
  keeper->BeatNow();
  EXPECT_EQ(positions_, beats);
  const v1::Job job = GetJob();
  EXPECT_EQ(job.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(job.attempt(), 2);
  v1::HeartbeatRequest beat;
  beat.set_lease_token(next->lease_token());
  EXPECT_TRUE(client_->Heartbeat(beat).ok());
}

TEST_F(LeaseKeeperTest, AnUnreachableServerIsNotALostLease) {
  Start(/*lease_ttl_ms=*/60'000, /*rpc_timeout=*/std::chrono::milliseconds(300));
  auto keeper = MakeKeeper();
  server_->Stop();
  keeper->BeatNow();  // times out
  EXPECT_FALSE(keeper->lease_lost());
  EXPECT_FALSE(stop_);

  ASSERT_TRUE(server_->Restart().ok());
  // The next beats reach the restarted server (the channel reconnects within a few tries).
  ASSERT_TRUE(PollUntil(
      [&] {
        keeper->BeatNow();
        absl::StatusOr<v1::Job> job = server_->api().GetJob(task_.job_id());
        return job.ok() && job->step() == positions_;
      },
      std::chrono::seconds(30)));
  EXPECT_FALSE(keeper->lease_lost());
  EXPECT_FALSE(stop_);
  EXPECT_EQ(GetJob().state(), v1::JOB_STATE_RUNNING);
}

TEST_F(LeaseKeeperTest, TheWorkersShutdownRaisesTheStopFlag) {
  Start(/*lease_ttl_ms=*/30'000);
  std::atomic<bool> shutdown{false};
  auto keeper = MakeKeeper(&shutdown);
  keeper->Start();
  EXPECT_FALSE(stop_);
  shutdown = true;
  ASSERT_TRUE(PollUntil([&] { return stop_.load(); }));
  EXPECT_FALSE(keeper->cancel_requested());
  EXPECT_FALSE(keeper->lease_lost());
  keeper->Stop();
  keeper->Stop();  // idempotent
}

TEST_F(LeaseKeeperTest, AnOutageLongerThanOneHeartbeatDeadlineKeepsTheLease) {
  // TTL 6 s: a heartbeat every 2 s, each waiting at most 2 s for the server.
  Start(/*lease_ttl_ms=*/6000);
  auto keeper = MakeKeeper();
  keeper->Start();
  // A heartbeat reached the server (it stored the position): the lease runs 6 s from there.
  ASSERT_TRUE(PollUntil([&] { return GetJob().step() >= 1; }));
  server_->Stop();
  std::this_thread::sleep_for(std::chrono::milliseconds(3000));
  ASSERT_TRUE(server_->Restart().ok());
  // The beats get through again before the lease ran out, and keep it.
  const int64_t before = positions_;
  ASSERT_TRUE(PollUntil([&] { return GetJob().step() > before; }, std::chrono::seconds(10)));
  std::this_thread::sleep_for(std::chrono::milliseconds(6500));  // past the TTL once more
  EXPECT_FALSE(keeper->lease_lost());
  EXPECT_FALSE(stop_);
  const v1::Job job = GetJob();
  EXPECT_EQ(job.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(job.attempt(), 1);
}

TEST_F(LeaseKeeperTest, NoHeartbeatGettingThroughForAWholeTtlLosesTheLease) {
  Start(/*lease_ttl_ms=*/1500);
  auto keeper = MakeKeeper();
  keeper->Start();
  ASSERT_TRUE(PollUntil([&] { return GetJob().step() >= 1; }));
  const auto stopped = std::chrono::steady_clock::now();
  server_->Stop();
  // Beats fail (the server is gone) and are retried until the lease expires; then it is lost.
  ASSERT_TRUE(PollUntil([&] { return keeper->lease_lost(); }, std::chrono::seconds(10)));
  EXPECT_GE(std::chrono::steady_clock::now() - stopped, std::chrono::milliseconds(500));
  EXPECT_TRUE(stop_);
  EXPECT_FALSE(keeper->cancel_requested());
}

}  // namespace
}  // namespace dreambooth::worker
