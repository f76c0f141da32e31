// The webhook outbox on a real SQLite file: deliveries are queued with their events (in the same
// transaction), filtered by the webhook's event mask, claimed once until their claim expires,
// moved through their states by attempts, listed a page at a time, kept across a reopen and
// deleted with their job.
#include "storage/webhook_store.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "storage/job_store.h"
#include "tests/testing/temp_dir.h"

namespace dreambooth::storage {
namespace {

constexpr int64_t kDay = 24LL * 3600 * 1000;
constexpr int64_t kClaim = 40'000;

class WebhookStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }

  void Open() {
    store_.reset();
    jobs_.reset();
    db_.reset();
    auto db = Database::Open({dir_.Join("db.sqlite")});
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
    jobs_ = std::make_unique<JobStore>(db_.get());
    store_ = std::make_unique<WebhookStore>(db_.get());
  }

  JobRecord Create(const std::string& url, int events = 0, int64_t now = 1000) {
    NewJob job;
    job.spec = "spec";
    job.base_model = "tiny";
    job.instance_set = "is_1";
    job.webhook.url = url;
    job.webhook.events = events;
    job.webhook.secret = url.empty() ? "" : "0123456789abcdef";
    auto created = jobs_->Create(job, now, kDay);
    EXPECT_TRUE(created.ok()) << created.status();
    return *created;
  }

  std::vector<WebhookDeliveryRecord> Deliveries(const std::string& job_id) {
    auto page = store_->List(job_id, 100, 0);
    EXPECT_TRUE(page.ok()) << page.status();
    return page.ok() ? page->deliveries : std::vector<WebhookDeliveryRecord>{};
  }

  testing::TempDir dir_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<JobStore> jobs_;
  std::unique_ptr<WebhookStore> store_;
};

TEST_F(WebhookStoreTest, EventsOfAJobWithAWebhookQueueDeliveries) {
  const JobRecord job = Create("http://127.0.0.1:9/hook");
  EXPECT_EQ(job.webhook_url, "http://127.0.0.1:9/hook");
  ASSERT_TRUE(jobs_->Cancel(job.id, 2000).ok());
  const std::vector<WebhookDeliveryRecord> d = Deliveries(job.id);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].event_type, WebhookEventType::kJobStateChanged);
  EXPECT_EQ(d[0].event_sequence, 1);
  EXPECT_EQ(d[0].state, WebhookDeliveryState::kPending);
  EXPECT_EQ(d[0].next_attempt_ms, 1000);
  const nlohmann::json body = nlohmann::json::parse(d[1].body);
  EXPECT_EQ(body.at("delivery_id"), d[1].id);
  EXPECT_EQ(body.at("type"), "job.state_changed");
  EXPECT_EQ(body.at("job_id"), job.id);
  EXPECT_EQ(body.at("state"), "JOB_STATE_CANCELLED");
  EXPECT_EQ(body.at("sequence"), 2);
  EXPECT_EQ(body.at("time_ms"), 2000);
}

TEST_F(WebhookStoreTest, NoWebhookOrAFilteredTypeQueuesNothing) {
  const JobRecord plain = Create("");
  const JobRecord checkpoints_only =
      Create("http://127.0.0.1:9/hook", WebhookEventBit(WebhookEventType::kCheckpointCreated));
  ASSERT_TRUE(jobs_->Cancel(plain.id, 2000).ok());
  ASSERT_TRUE(jobs_->Cancel(checkpoints_only.id, 2000).ok());
  EXPECT_TRUE(Deliveries(plain.id).empty());
  EXPECT_TRUE(Deliveries(checkpoints_only.id).empty());
  auto task = store_->ClaimDue(5000, kClaim);
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_FALSE(task->has_value());
}

TEST_F(WebhookStoreTest, AClaimHoldsUntilItExpiresAndAttemptsMoveTheState) {
  const JobRecord job = Create("http://127.0.0.1:9/hook");
  auto early = store_->ClaimDue(999, kClaim);
  ASSERT_TRUE(early.ok());
  EXPECT_FALSE(early->has_value());
  auto task = store_->ClaimDue(1000, kClaim);
  ASSERT_TRUE(task.ok() && task->has_value());
  EXPECT_EQ((*task)->url, "http://127.0.0.1:9/hook");
  EXPECT_EQ((*task)->secret, "0123456789abcdef");
  EXPECT_TRUE((*task)->delivery.attempts.empty());
  // Claimed: nobody else takes it until the claim expires (a crashed claimer's delivery is then
  // taken again).
  auto again = store_->ClaimDue(1000 + kClaim - 1, kClaim);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->has_value());
  auto retaken = store_->ClaimDue(1000 + kClaim, kClaim);
  ASSERT_TRUE(retaken.ok() && retaken->has_value());
  const int64_t seq = (*retaken)->delivery.seq;

  WebhookAttemptRecord refused;
  refused.number = 1;
  refused.start_time_ms = 1000;
  refused.duration_ms = 12;
  refused.http_status = 503;
  refused.error = "HTTP 503 (not 2xx)";
  ASSERT_TRUE(store_->RecordAttempt(seq, refused, WebhookDeliveryState::kPending, 90'000).ok());
  std::vector<WebhookDeliveryRecord> d = Deliveries(job.id);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].next_attempt_ms, 90'000);
  ASSERT_EQ(d[0].attempts.size(), 1u);
  EXPECT_EQ(d[0].attempts[0].http_status, 503);
  EXPECT_EQ(d[0].attempts[0].error, "HTTP 503 (not 2xx)");

  auto retry = store_->ClaimDue(90'000, kClaim);
  ASSERT_TRUE(retry.ok() && retry->has_value());
  EXPECT_EQ((*retry)->delivery.attempts.size(), 1u);
  WebhookAttemptRecord ok;
  ok.number = 2;
  ok.start_time_ms = 90'000;
  ok.http_status = 200;
  ASSERT_TRUE(store_->RecordAttempt(seq, ok, WebhookDeliveryState::kDelivered, 0).ok());
  d = Deliveries(job.id);
  EXPECT_EQ(d[0].state, WebhookDeliveryState::kDelivered);
  EXPECT_EQ(d[0].next_attempt_ms, 0);
  EXPECT_EQ(d[0].attempts.size(), 2u);
  auto none = store_->ClaimDue(kDay, kClaim);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  auto counts = store_->CountByState();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ((*counts)[static_cast<int>(WebhookDeliveryState::kDelivered)], 1);
  EXPECT_EQ((*counts)[static_cast<int>(WebhookDeliveryState::kPending)], 0);
}

TEST_F(WebhookStoreTest, PendingDeliveriesSurviveAReopenAndGoWithTheirJob) {
  const JobRecord job = Create("http://127.0.0.1:9/hook");
  ASSERT_TRUE(jobs_->Cancel(job.id, 2000).ok());
  Open();
  ASSERT_EQ(Deliveries(job.id).size(), 2u);
  // Paging.
  auto first = store_->List(job.id, 1, 0);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->deliveries.size(), 1u);
  ASSERT_NE(first->next_cursor, 0);
  auto second = store_->List(job.id, 1, first->next_cursor);
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second->deliveries.size(), 1u);
  EXPECT_EQ(second->next_cursor, 0);
  EXPECT_EQ(second->deliveries[0].event_sequence, 2);

  auto task = store_->ClaimDue(3000, kClaim);
  ASSERT_TRUE(task.ok() && task->has_value());
  ASSERT_TRUE(jobs_->Delete(job.id).ok());
  EXPECT_TRUE(Deliveries(job.id).empty());
  // The attempt that was in flight when the job went is dropped quietly.
  WebhookAttemptRecord late;
  late.number = 1;
  late.http_status = 200;
  EXPECT_TRUE(
      store_->RecordAttempt((*task)->delivery.seq, late, WebhookDeliveryState::kDelivered, 0).ok());
  auto counts = store_->CountByState();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ((*counts)[static_cast<int>(WebhookDeliveryState::kDelivered)], 0);
}

TEST_F(WebhookStoreTest, PruningHistoryDropsSettledDeliveriesOfOldEndedJobs) {
  const JobRecord job = Create("http://127.0.0.1:9/hook");
  ASSERT_TRUE(jobs_->Cancel(job.id, 2000).ok());  // deliveries of QUEUED and CANCELLED
  auto task = store_->ClaimDue(3000, kClaim);
  ASSERT_TRUE(task.ok() && task->has_value());
  WebhookAttemptRecord ok;
  ok.number = 1;
  ok.http_status = 200;
  ASSERT_TRUE(
      store_->RecordAttempt((*task)->delivery.seq, ok, WebhookDeliveryState::kDelivered, 0).ok());
  // Not old enough yet: nothing goes.
  auto kept = jobs_->PruneHistory(0, /*events_of_jobs_ended_before_ms=*/2000);
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->webhook_deliveries, 0);
  // Old enough: the delivered one goes, the pending one stays until it settles.
  auto pruned = jobs_->PruneHistory(0, /*events_of_jobs_ended_before_ms=*/kDay);
  ASSERT_TRUE(pruned.ok());
  EXPECT_EQ(pruned->webhook_deliveries, 1);
  const std::vector<WebhookDeliveryRecord> left = Deliveries(job.id);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].state, WebhookDeliveryState::kPending);
}

}  // namespace
}  // namespace dreambooth::storage
