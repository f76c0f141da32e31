// The job queue: creation and request ids, listing, cancellation, leases and fencing.
#include "storage/job_store.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <set>

#include "absl/strings/str_cat.h"
#include "tests/testing/temp_dir.h"

namespace dreambooth::storage {
namespace {

constexpr int64_t kDay = 24LL * 3600 * 1000;
constexpr int64_t kTtl = 30'000;
const std::vector<std::string> kModels = {"tiny"};

class JobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = Database::Open({dir_.Join("db.sqlite")});
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
    store_ = std::make_unique<JobStore>(db_.get());
  }

  NewJob Spec(const std::string& body, const std::string& request_id = "") {
    NewJob job;
    job.spec = body;
    job.base_model = "tiny";
    job.instance_set = "is_1";
    job.request_id = request_id;
    job.request_fingerprint = "fp:" + body;
    return job;
  }

  JobRecord MustCreate(const std::string& body, int64_t now = 1000) {
    auto job = store_->Create(Spec(body), now, kDay);
    EXPECT_TRUE(job.ok()) << job.status();
    return *job;
  }

  Lease MustClaim(int64_t now, const std::string& worker = "w1") {
    auto lease = store_->Claim(worker, kModels, now, kTtl);
    EXPECT_TRUE(lease.ok()) << lease.status();
    EXPECT_TRUE(lease->has_value());
    return **lease;
  }

  std::vector<EventRecord> Events(const std::string& job_id) {
    auto events = store_->ReadEvents(job_id, 0, 10000);
    EXPECT_TRUE(events.ok()) << events.status();
    return *events;
  }

  testing::TempDir dir_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<JobStore> store_;
};

TEST_F(JobStoreTest, CreateQueuesWithAFirstEvent) {
  const JobRecord job = MustCreate("spec-a");
  EXPECT_EQ(job.state, JobState::kQueued);
  EXPECT_EQ(job.spec, "spec-a");
  EXPECT_EQ(job.last_sequence, 1);
  const auto events = Events(job.id);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].sequence, 1);
  EXPECT_EQ(events[0].kind, EventKind::kStateChanged);
  EXPECT_EQ(events[0].state, JobState::kQueued);
  EXPECT_EQ(store_->Get("job_missing").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(JobStoreTest, RequestIdReplayReturnsTheSameJob) {
  auto first = store_->Create(Spec("body", "req-1"), 1000, kDay);
  ASSERT_TRUE(first.ok());
  auto again = store_->Create(Spec("body", "req-1"), 2000, kDay);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->id, first->id);
  auto other = store_->Create(Spec("another body", "req-1"), 3000, kDay);
  EXPECT_EQ(other.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(other.status().message().find("req-1"), std::string::npos);
  auto page = store_->List("", JobState::kUnspecified, 100, 0);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->jobs.size(), 1u);
  // Still remembered just under 24 h later; forgotten after the retention window.
  auto late = store_->Create(Spec("body", "req-1"), 1000 + kDay - 1, kDay);
  EXPECT_EQ(late->id, first->id);
  auto after = store_->Create(Spec("another body", "req-1"), 1000 + kDay + 1, kDay);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_NE(after->id, first->id);
}

TEST_F(JobStoreTest, ListPaginatesNewestFirstWithoutGapsWhileInserting) {
  for (int i = 0; i < 25; ++i) MustCreate("j" + std::to_string(i));
  std::set<std::string> seen;
  std::vector<std::string> existing;
  const auto all = store_->List("", JobState::kUnspecified, 1000, 0);
  ASSERT_TRUE(all.ok());
  for (const auto& j : all->jobs) existing.push_back(j.id);
  int64_t cursor = 0;
  int pages = 0;
  do {
    auto page = store_->List("", JobState::kUnspecified, 7, cursor);
    ASSERT_TRUE(page.ok());
    for (const auto& j : page->jobs) EXPECT_TRUE(seen.insert(j.id).second) << "duplicate";
    cursor = page->next_cursor;
    MustCreate("inserted during pagination " + std::to_string(pages));  // never appears
    ++pages;
  } while (cursor != 0);
  EXPECT_EQ(pages, 4);  // 7 + 7 + 7 + 4
  EXPECT_EQ(seen, std::set<std::string>(existing.begin(), existing.end()));
}

TEST_F(JobStoreTest, ListFiltersByState) {
  const JobRecord a = MustCreate("a");
  MustCreate("b");
  ASSERT_TRUE(store_->Cancel(a.id, 2000).ok());
  auto cancelled = store_->List("", JobState::kCancelled, 10, 0);
  ASSERT_EQ(cancelled->jobs.size(), 1u);
  EXPECT_EQ(cancelled->jobs[0].id, a.id);
  EXPECT_EQ(store_->List("", JobState::kQueued, 10, 0)->jobs.size(), 1u);
}

TEST_F(JobStoreTest, ClaimHeartbeatComplete) {
  const JobRecord job = MustCreate("x");
  const Lease lease = MustClaim(5000);
  EXPECT_EQ(lease.job.id, job.id);
  EXPECT_EQ(lease.job.state, JobState::kRunning);
  EXPECT_EQ(lease.job.attempt, 1);
  EXPECT_EQ(lease.expires_ms, 5000 + kTtl);
  EXPECT_FALSE(store_->Claim("w2", kModels, 5001, kTtl)->has_value());  // nothing else queued

  auto hb = store_->Heartbeat(lease.token, 20000, kTtl, 4, 10, 400);
  ASSERT_TRUE(hb.ok()) << hb.status();
  EXPECT_FALSE(hb->cancel_requested);
  EXPECT_EQ(hb->expires_ms, 20000 + kTtl);
  // The renewed lease survives past the original expiry.
  EXPECT_TRUE(store_->SweepExpired(5000 + kTtl + 1)->empty());
  EventRecord progress;
  progress.kind = EventKind::kProgress;
  progress.stage = 4;
  progress.step = 11;
  progress.total = 400;
  progress.loss = 0.25f;
  auto last = store_->AppendEvents(lease.token, 21000, {progress});
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(store_->Get(job.id)->step, 11);

  // Without a FINAL checkpoint the job cannot succeed; the lease stays.
  EXPECT_EQ(store_->Complete(lease.token, 21500).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->Get(job.id)->state, JobState::kRunning);
  ASSERT_TRUE(store_
                  ->CommitCheckpoint(lease.token, 21600, 400, CheckpointKind::kFinal,
                                     {{"unet/w.safetensors", std::string(64, 'a'), 10}})
                  .ok());
  auto done = store_->Complete(lease.token, 22000);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(*done, JobState::kSucceeded);
  const auto events = Events(job.id);
  ASSERT_EQ(events.size(), 5u);  // queued, running, progress, checkpoint, succeeded
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].sequence, int64_t(i) + 1);
  EXPECT_EQ(events[2].loss, 0.25f);
  EXPECT_EQ(events[2].attempt, 1);
  EXPECT_EQ(events.back().state, JobState::kSucceeded);
  EXPECT_EQ(store_->Get(job.id)->end_time_ms, 22000);
}

TEST_F(JobStoreTest, ADivergedRunsNonFiniteNumbersAreStoredAndReadBack) {
  const JobRecord job = MustCreate("nan");
  const Lease lease = MustClaim(5000);
  EventRecord progress;
  progress.kind = EventKind::kProgress;
  progress.step = 3;
  progress.total = 10;
  progress.loss = std::numeric_limits<float>::quiet_NaN();
  progress.learning_rate = std::numeric_limits<double>::infinity();
  progress.eta_seconds = -std::numeric_limits<float>::infinity();
  progress.images_per_second = std::numeric_limits<float>::quiet_NaN();
  auto last = store_->AppendEvents(lease.token, 6000, {progress});
  ASSERT_TRUE(last.ok()) << last.status();  // not a NOT NULL failure
  // The lease is still current: the run goes on (or fails) on its own terms.
  EXPECT_TRUE(store_->Heartbeat(lease.token, 7000, kTtl, 4, 3, 10).ok());
  const std::vector<EventRecord> events = Events(job.id);
  const EventRecord& stored = events.back();
  EXPECT_TRUE(std::isnan(stored.loss));
  EXPECT_TRUE(std::isnan(stored.images_per_second));
  EXPECT_EQ(stored.learning_rate, std::numeric_limits<double>::infinity());
  EXPECT_EQ(stored.eta_seconds, -std::numeric_limits<float>::infinity());
}

TEST_F(JobStoreTest, ClaimOnlyTakesJobsForAdvertisedModels) {
  NewJob other = Spec("needs sd15");
  other.base_model = "sd15";
  ASSERT_TRUE(store_->Create(other, 1000, kDay).ok());
  EXPECT_FALSE(store_->Claim("w", {"tiny"}, 2000, kTtl)->has_value());
  auto lease = store_->Claim("w", {"tiny", "sd15"}, 2000, kTtl);
  ASSERT_TRUE(lease->has_value());
  EXPECT_EQ((*lease)->job.base_model, "sd15");
}

TEST_F(JobStoreTest, ClaimTakesTheHighestPriorityJobTheWorkerHasTheDevicesFor) {
  NewJob low = Spec("low");
  NewJob high = Spec("high");
  high.priority = 5;
  NewJob wide = Spec("wide");
  wide.num_devices = 2;
  wide.priority = 9;
  NewJob also_high = Spec("also high");
  also_high.priority = 5;
  for (const NewJob& job : {low, high, wide, also_high}) {
    ASSERT_TRUE(store_->Create(job, 1000, kDay).ok());
  }
  // A 1-device worker: the 2-device job is skipped; priority first, then age.
  std::vector<std::string> order;
  for (int i = 0; i < 3; ++i) {
    auto lease = store_->Claim("w1", kModels, 2000, kTtl, 0, /*device_count=*/1);
    ASSERT_TRUE(lease.ok() && lease->has_value()) << i;
    order.push_back((*lease)->job.spec);
    EXPECT_EQ((*lease)->job.num_devices, 1);
  }
  EXPECT_EQ(order, (std::vector<std::string>{"high", "also high", "low"}));
  EXPECT_FALSE(store_->Claim("w1", kModels, 2000, kTtl, 0, 1)->has_value());
  // A 2-device worker takes it.
  auto wide_lease = store_->Claim("w2", kModels, 2000, kTtl, 0, 2);
  ASSERT_TRUE(wide_lease.ok() && wide_lease->has_value());
  EXPECT_EQ((*wide_lease)->job.spec, "wide");
  EXPECT_EQ((*wide_lease)->job.num_devices, 2);
  EXPECT_EQ((*wide_lease)->job.priority, 9);
}

TEST_F(JobStoreTest, ExpiredLeaseRequeuesAndResumesWithANewAttempt) {
  const JobRecord job = MustCreate("x");
  const Lease first = MustClaim(1000, "w1");
  auto swept = store_->SweepExpired(1000 + kTtl + 1);
  ASSERT_TRUE(swept.ok());
  ASSERT_EQ(*swept, std::vector<std::string>{job.id});
  auto requeued = store_->Get(job.id);
  EXPECT_EQ(requeued->state, JobState::kQueued);
  EXPECT_EQ(requeued->infra_attempts, 1);
  EXPECT_EQ(requeued->error_attempts, 0);  // separate budgets
  const Lease second = MustClaim(40000, "w2");
  EXPECT_EQ(second.job.id, job.id);
  EXPECT_EQ(second.job.attempt, 2);
  EXPECT_NE(second.token, first.token);
  const auto events = Events(job.id);
  bool saw_lost = false;
  for (const auto& e : events) saw_lost |= e.kind == EventKind::kLeaseLost;
  EXPECT_TRUE(saw_lost);
}

TEST_F(JobStoreTest, StaleTokenIsRejectedAndChangesNothing) {
  const JobRecord job = MustCreate("x");
  const Lease stale = MustClaim(1000, "w1");
  ASSERT_TRUE(store_->SweepExpired(1000 + kTtl + 1).ok());
  const Lease current = MustClaim(40000, "w2");
  const JobRecord before = *store_->Get(job.id);
  const size_t events_before = Events(job.id).size();

  const int64_t now = 41000;
  EventRecord e;
  e.kind = EventKind::kLog;
  EXPECT_EQ(store_->Heartbeat(stale.token, now, kTtl, 1, 1, 1).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->AppendEvents(stale.token, now, {e}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->Complete(stale.token, now).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->Fail(stale.token, now, "boom", false).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(
      store_->CommitCheckpoint(stale.token, now, 10, CheckpointKind::kResume, {}).status().code(),
      absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->CheckLease(stale.token, now).status().code(),
            absl::StatusCode::kFailedPrecondition);

  const JobRecord after = *store_->Get(job.id);
  EXPECT_EQ(after.state, before.state);
  EXPECT_EQ(after.last_sequence, before.last_sequence);
  EXPECT_EQ(after.lease_expires_ms, before.lease_expires_ms);
  EXPECT_EQ(after.attempt, before.attempt);
  EXPECT_EQ(after.error_attempts, before.error_attempts);
  EXPECT_EQ(Events(job.id).size(), events_before);
  EXPECT_TRUE(store_->ListCheckpoints(job.id)->empty());
  // The current holder is unaffected.
  EXPECT_TRUE(store_->Heartbeat(current.token, now, kTtl, 1, 1, 1).ok());
}

TEST_F(JobStoreTest, HeartbeatAfterExpiryIsRejected) {
  MustCreate("x");
  const Lease lease = MustClaim(1000);
  EXPECT_EQ(store_->Heartbeat(lease.token, 1000 + kTtl + 1, kTtl, 0, 0, 0).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(JobStoreTest, RetryableFailuresUseTheErrorBudget) {
  NewJob spec = Spec("x");
  spec.max_attempts = 2;
  const JobRecord job = *store_->Create(spec, 1000, kDay);
  Lease lease = MustClaim(2000);
  EXPECT_EQ(*store_->Fail(lease.token, 3000, "CUDA error", true), JobState::kQueued);
  lease = MustClaim(4000);
  EXPECT_EQ(lease.job.attempt, 2);
  EXPECT_EQ(*store_->Fail(lease.token, 5000, "CUDA error", true), JobState::kFailed);
  const JobRecord failed = *store_->Get(job.id);
  EXPECT_EQ(failed.error_attempts, 2);
  EXPECT_NE(failed.error.find("CUDA error"), std::string::npos);
}

TEST_F(JobStoreTest, NonRetryableFailureFailsAtOnce) {
  const JobRecord job = MustCreate("x");
  const Lease lease = MustClaim(2000);
  EXPECT_EQ(*store_->Fail(lease.token, 3000, "model unreadable", false), JobState::kFailed);
  EXPECT_EQ(store_->Get(job.id)->error, "model unreadable");
}

TEST_F(JobStoreTest, InfraBudgetExhaustionFailsTheJob) {
  NewJob spec = Spec("x");
  spec.max_infra_attempts = 2;
  const JobRecord job = *store_->Create(spec, 0, kDay);
  int64_t now = 1000;
  for (int i = 0; i < 2; ++i) {
    MustClaim(now);
    now += kTtl + 1;
    ASSERT_TRUE(store_->SweepExpired(now).ok());
  }
  const JobRecord failed = *store_->Get(job.id);
  EXPECT_EQ(failed.state, JobState::kFailed);
  EXPECT_EQ(failed.infra_attempts, 2);
  EXPECT_EQ(failed.error_attempts, 0);
}

TEST_F(JobStoreTest, ReleaseRequeuesAtOnceOnTheInfraBudget) {
  const JobRecord job = MustCreate("x");
  const Lease lease = MustClaim(1000);
  auto state = store_->Release(lease.token, 2000, "worker shutting down");
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, JobState::kQueued);
  const JobRecord after = *store_->Get(job.id);
  EXPECT_EQ(after.infra_attempts, 1);
  EXPECT_EQ(after.error_attempts, 0);
  EXPECT_NE(Events(job.id).back().message.find("worker shutting down"), std::string::npos);
  // The released token is dead; the next claim is attempt 2.
  EXPECT_EQ(store_->Heartbeat(lease.token, 2100, kTtl, 0, 0, 0).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(MustClaim(2200).job.attempt, 2);
}

TEST_F(JobStoreTest, CancelQueuedAndRunning) {
  const JobRecord queued = MustCreate("q");
  auto cancelled = store_->Cancel(queued.id, 2000);
  ASSERT_TRUE(cancelled.ok());
  EXPECT_EQ(cancelled->state, JobState::kCancelled);
  EXPECT_EQ(store_->Cancel(queued.id, 2500)->state, JobState::kCancelled);  // idempotent

  const JobRecord running = MustCreate("r");
  const Lease lease = MustClaim(3000);
  ASSERT_EQ(lease.job.id, running.id);
  auto requested = store_->Cancel(running.id, 3100);
  EXPECT_EQ(requested->state, JobState::kRunning);
  EXPECT_TRUE(requested->cancel_requested);
  EXPECT_TRUE(store_->Heartbeat(lease.token, 3200, kTtl, 0, 0, 0)->cancel_requested);
  EXPECT_EQ(*store_->Complete(lease.token, 3300), JobState::kCancelled);
  EXPECT_EQ(store_->Cancel("job_nope", 1).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(JobStoreTest, CheckpointsAreCommittedUnderTheLease) {
  const JobRecord job = MustCreate("x");
  const Lease lease = MustClaim(1000);
  std::vector<CheckpointFileRecord> files = {{"unet/w.safetensors", std::string(64, 'b'), 10},
                                             {"trainer_state.json", std::string(64, 'a'), 2}};
  auto ckpt = store_->CommitCheckpoint(lease.token, 2000, 200, CheckpointKind::kResume, files);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ(ckpt->files[0].path, "trainer_state.json");  // sorted
  EXPECT_EQ(ckpt->manifest_digest, JobStore::ManifestDigest(ckpt->files));
  auto listed = store_->ListCheckpoints(job.id);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].id, ckpt->id);
  EXPECT_EQ((*listed)[0].files.size(), 2u);
  auto latest = store_->LatestCheckpoint(job.id, {CheckpointKind::kResume});
  ASSERT_TRUE(latest->has_value());
  EXPECT_EQ((*latest)->step, 200);
  EXPECT_FALSE(store_->LatestCheckpoint(job.id, {CheckpointKind::kFinal})->has_value());
  EXPECT_EQ(store_->GetCheckpoint(ckpt->id)->files.size(), 2u);
  EXPECT_EQ(store_->GetCheckpoint("ckpt_x").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Events(job.id).back().kind, EventKind::kCheckpoint);
}

TEST_F(JobStoreTest, OlderCheckpointsOfAKindBeyondTheLimitAreDeletedButNeverTheFinal) {
  const JobRecord job = MustCreate("x");
  const Lease lease = MustClaim(1000);
  const std::vector<CheckpointFileRecord> files = {{"w", std::string(64, 'c'), 1}};
  std::vector<std::string> sampleable;
  for (int step = 1; step <= 3; ++step) {
    auto ckpt = store_->CommitCheckpoint(lease.token, 2000 + step, step * 100,
                                         CheckpointKind::kSampleable, files, /*keep=*/2);
    ASSERT_TRUE(ckpt.ok()) << ckpt.status();
    sampleable.push_back(ckpt->id);
    ASSERT_TRUE(store_
                    ->CommitCheckpoint(lease.token, 2000 + step, step * 100,
                                       CheckpointKind::kResume, files, /*keep=*/1)
                    .ok());
  }
  ASSERT_TRUE(
      store_->CommitCheckpoint(lease.token, 2100, 300, CheckpointKind::kFinal, files, 1).ok());
  auto listed = store_->ListCheckpoints(job.id);
  ASSERT_TRUE(listed.ok()) << listed.status();
  std::vector<std::string> kept;
  int resume = 0, final = 0;
  for (const CheckpointRecord& c : *listed) {
    if (c.kind == CheckpointKind::kSampleable) kept.push_back(c.id);
    resume += c.kind == CheckpointKind::kResume;
    final += c.kind == CheckpointKind::kFinal;
  }
  EXPECT_EQ(kept, (std::vector<std::string>{sampleable[1], sampleable[2]}));
  EXPECT_EQ(resume, 1);
  EXPECT_EQ(final, 1);
  EXPECT_EQ(store_->GetCheckpoint(sampleable[0]).status().code(), absl::StatusCode::kNotFound);
  bool logged = false;
  for (const EventRecord& e : Events(job.id)) {
    logged |= e.kind == EventKind::kLog && e.message == absl::StrCat("deleted ", sampleable[0],
                                                                     " (keeping the newest 2 "
                                                                     "SAMPLEABLE checkpoints)");
  }
  EXPECT_TRUE(logged);
  // A checkpoint can also be deleted on its own.
  ASSERT_TRUE(store_->DeleteCheckpoint(sampleable[2]).ok());
  EXPECT_EQ(store_->DeleteCheckpoint(sampleable[2]).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(JobStoreTest, DeleteRemovesARunningJobWithItsHistoryAndEndsItsLease) {
  auto created = store_->Create(Spec("x", "req-1"), 1000, kDay);
  ASSERT_TRUE(created.ok()) << created.status();
  const Lease lease = MustClaim(1000);
  ASSERT_TRUE(store_
                  ->CommitCheckpoint(lease.token, 1500, 1, CheckpointKind::kResume,
                                     {{"w", std::string(64, 'd'), 1}})
                  .ok());
  auto deleted = store_->Delete(created->id);
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(deleted->state, JobState::kRunning);
  EXPECT_EQ(store_->Get(created->id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->ListCheckpoints(created->id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->ReadEvents(created->id, 0, 10).status().code(), absl::StatusCode::kNotFound);
  // The worker's lease ended with the job; the request id names nothing any more.
  EXPECT_EQ(store_->Heartbeat(lease.token, 1600, kTtl, 0, 0, 0).status().code(),
            absl::StatusCode::kFailedPrecondition);
  auto again = store_->Create(Spec("another body", "req-1"), 1700, kDay);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_NE(again->id, created->id);
  EXPECT_EQ(store_->Delete("job_nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(JobStoreTest, PruneHistoryKeepsTheLastEventOfOldEndedJobsAndLiveJobsWhole) {
  auto ended = store_->Create(Spec("a", "req-old"), 1000, kDay);
  ASSERT_TRUE(ended.ok());
  const Lease lease = MustClaim(1000);
  EventRecord log;
  log.kind = EventKind::kLog;
  log.message = "hello";
  ASSERT_TRUE(store_->AppendEvents(lease.token, 1100, {log, log}).ok());
  ASSERT_TRUE(store_->Fail(lease.token, 1200, "boom", /*retryable=*/false).ok());
  const JobRecord queued = MustCreate("b", 5000);
  const int64_t queued_events = static_cast<int64_t>(Events(queued.id).size());

  auto pruned = store_->PruneHistory(/*request_ids_before_ms=*/2000,
                                     /*events_of_jobs_ended_before_ms=*/3000);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(pruned->request_ids, 1);
  const std::vector<EventRecord> left = Events(ended->id);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].state, JobState::kFailed);
  EXPECT_EQ(left[0].sequence, store_->Get(ended->id)->last_sequence);
  EXPECT_EQ(pruned->events, 4);  // queued, running, two logs
  EXPECT_EQ(static_cast<int64_t>(Events(queued.id).size()), queued_events);
}

TEST_F(JobStoreTest, TenantQuotasLimitActiveJobsAtCreateAndRunningJobsAtClaim) {
  auto create = [&](const std::string& tenant, const std::string& body,
                    const std::string& request_id = "") {
    NewJob job = Spec(body, request_id);
    job.tenant = tenant;
    job.max_active_jobs_of_tenant = 2;
    return store_->Create(job, 1000, kDay);
  };
  auto a1 = create("a", "a1", "req-a1");
  auto a2 = create("a", "a2");
  ASSERT_TRUE(a1.ok() && a2.ok());
  auto a3 = create("a", "a3");
  EXPECT_EQ(a3.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(a3.status().message().find("--tenant-max-active-jobs"), std::string::npos)
      << a3.status();
  // A retry of an accepted request still answers with its job; another tenant is unaffected.
  auto retried = create("a", "a1", "req-a1");
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->id, a1->id);
  auto b1 = create("b", "b1");
  ASSERT_TRUE(b1.ok()) << b1.status();

  // One running job per tenant: a1 runs, a2 waits behind it, b1 runs.
  auto first = store_->Claim("w1", kModels, 1100, kTtl, /*max_running_per_tenant=*/1);
  auto second = store_->Claim("w2", kModels, 1100, kTtl, 1);
  ASSERT_TRUE(first.ok() && first->has_value() && second.ok() && second->has_value());
  EXPECT_EQ((*first)->job.id, a1->id);
  EXPECT_EQ((*second)->job.id, b1->id);
  EXPECT_FALSE(store_->Claim("w3", kModels, 1100, kTtl, 1)->has_value());
  EXPECT_TRUE(store_->Cancel(a1->id, 1200).ok());
  ASSERT_TRUE(store_->Complete((*first)->token, 1300).ok());  // cancelled: no FINAL needed
  auto third = store_->Claim("w3", kModels, 1400, kTtl, 1);
  ASSERT_TRUE(third.ok() && third->has_value());
  EXPECT_EQ((*third)->job.id, a2->id);
  // With a1 ended, tenant a has room for one more job.
  EXPECT_TRUE(create("a", "a4").ok());
}

}  // namespace
}  // namespace dreambooth::storage
