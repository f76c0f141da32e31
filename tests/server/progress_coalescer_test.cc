// Progress coalescing: at most one progress write per interval per job, newest wins, order kept.
#include "server/progress_coalescer.h"

#include <gtest/gtest.h>

#include "tests/testing/temp_dir.h"

namespace dreambooth::server {
namespace {

using storage::EventKind;
using storage::EventRecord;

class ProgressCoalescerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = storage::Database::Open({dir_.Join("db.sqlite")});
    ASSERT_TRUE(db.ok());
    db_ = std::move(*db);
    jobs_ = std::make_unique<storage::JobStore>(db_.get());
    storage::NewJob job;
    job.spec = "s";
    job.base_model = "tiny";
    job.instance_set = "is_1";
    job_id_ = jobs_->Create(job, 0, 1000)->id;
    token_ = (*jobs_->Claim("w", {"tiny"}, 0, 3'600'000))->token;
  }

  static EventRecord Progress(int64_t step) {
    EventRecord e;
    e.kind = EventKind::kProgress;
    e.step = step;
    e.total = 100;
    return e;
  }

  std::vector<EventRecord> Stored(EventKind kind) {
    std::vector<EventRecord> out;
    const absl::StatusOr<std::vector<EventRecord>> events = jobs_->ReadEvents(job_id_, 0, 1000);
    EXPECT_TRUE(events.ok()) << events.status();
    if (!events.ok()) return out;
    for (const auto& e : *events) {
      if (e.kind == kind) out.push_back(e);
    }
    return out;
  }

  testing::TempDir dir_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::JobStore> jobs_;
  std::string job_id_;
  std::string token_;
};

TEST_F(ProgressCoalescerTest, HoldsReportsWithinTheIntervalAndWritesTheNewest) {
  ProgressCoalescer coalescer(jobs_.get(), 1000);
  ASSERT_TRUE(coalescer.Report(job_id_, token_, 2, 10'000, {Progress(1)}).ok());  // written
  for (int step = 2; step <= 5; ++step) {
    ASSERT_TRUE(coalescer.Report(job_id_, token_, 3, 10'000 + step * 100, {Progress(step)}).ok());
  }
  ASSERT_EQ(Stored(EventKind::kProgress).size(), 1u);
  EXPECT_TRUE(coalescer.FlushDue(10'900).empty());  // interval not over
  EXPECT_EQ(coalescer.FlushDue(11'000), std::vector<std::string>{job_id_});
  const auto stored = Stored(EventKind::kProgress);
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[1].step, 5);
}

TEST_F(ProgressCoalescerTest, HeldProgressIsWrittenBeforeTheNextOtherEvent) {
  ProgressCoalescer coalescer(jobs_.get(), 1000);
  ASSERT_TRUE(coalescer.Report(job_id_, token_, 2, 10'000, {Progress(1)}).ok());
  ASSERT_TRUE(coalescer.Report(job_id_, token_, 3, 10'100, {Progress(2)}).ok());  // held
  EventRecord log;
  log.kind = EventKind::kLog;
  log.message = "validation images rendered";
  ASSERT_TRUE(coalescer.Report(job_id_, token_, 3, 10'200, {log}).ok());
  const auto all = *jobs_->ReadEvents(job_id_, 0, 1000);
  ASSERT_GE(all.size(), 2u);
  EXPECT_EQ(all[all.size() - 2].kind, EventKind::kProgress);
  EXPECT_EQ(all[all.size() - 2].step, 2);
  EXPECT_EQ(all.back().kind, EventKind::kLog);
}

TEST_F(ProgressCoalescerTest, FlushWritesHeldProgressBeforeTheLeaseEnds) {
  ProgressCoalescer coalescer(jobs_.get(), 1000);
  ASSERT_TRUE(coalescer.Report(job_id_, token_, 2, 10'000, {Progress(1), Progress(2)}).ok());
  ASSERT_TRUE(coalescer.Report(job_id_, token_, 3, 10'010, {Progress(3)}).ok());
  EXPECT_TRUE(coalescer.Flush(job_id_, 10'020));
  const auto stored = Stored(EventKind::kProgress);
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0].step, 2);  // a batch keeps only its newest progress
  EXPECT_EQ(stored[1].step, 3);
  EXPECT_FALSE(coalescer.Flush(job_id_, 10'030));  // nothing left
}

// A gang's other node reports logs of the same job under its own lease: node 0's held progress
// is written under node 0's lease, before the log.
TEST_F(ProgressCoalescerTest, HeldProgressKeepsItsOwnLeaseWhenAnotherNodeLogs) {
  storage::NewJob gang;
  gang.spec = "g";
  gang.base_model = "tiny";
  gang.instance_set = "is_1";
  gang.num_nodes = 2;
  const std::string gang_id = jobs_->Create(gang, 0, 1000)->id;
  const std::string node0 = (*jobs_->Claim("a", {"tiny"}, 0, 3'600'000, 0, 1, "a:1"))->token;
  const std::string node1 = (*jobs_->Claim("b", {"tiny"}, 0, 3'600'000, 0, 1, "b:1"))->token;
  ProgressCoalescer coalescer(jobs_.get(), 1000);
  ASSERT_TRUE(coalescer.Report(gang_id, node0, 3, 10'000, {Progress(1)}).ok());
  ASSERT_TRUE(coalescer.Report(gang_id, node0, 4, 10'100, {Progress(2)}).ok());  // held
  EventRecord log;
  log.kind = EventKind::kLog;
  log.message = "node 1: latents ready";
  ASSERT_TRUE(coalescer.Report(gang_id, node1, 4, 10'200, {log}).ok());
  const auto all = *jobs_->ReadEvents(gang_id, 0, 1000);
  ASSERT_GE(all.size(), 2u);
  EXPECT_EQ(all[all.size() - 2].kind, EventKind::kProgress);
  EXPECT_EQ(all[all.size() - 2].step, 2);
  EXPECT_EQ(all.back().message, "node 1: latents ready");
}

}  // namespace
}  // namespace dreambooth::server
