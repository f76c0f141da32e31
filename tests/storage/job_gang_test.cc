// Multi-node gangs in the job queue: forming a gang from member leases, fencing, shared failure,
// expiry of a member's lease, and the registry's count of workers that take gang jobs.
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "storage/job_store.h"
#include "storage/worker_registry.h"
#include "tests/testing/temp_dir.h"

namespace dreambooth::storage {
namespace {

constexpr int64_t kDay = 24LL * 3600 * 1000;
constexpr int64_t kTtl = 30'000;
const std::vector<std::string> kModels = {"tiny"};

class JobGangTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = Database::Open({dir_.Join("db.sqlite")});
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
    store_ = std::make_unique<JobStore>(db_.get());
  }

  JobRecord CreateGangJob(int num_nodes, int num_devices = 1) {
    NewJob job;
    job.spec = "gang";
    job.base_model = "tiny";
    job.instance_set = "is_1";
    job.num_nodes = num_nodes;
    job.num_devices = num_devices;
    auto created = store_->Create(job, 1000, kDay);
    EXPECT_TRUE(created.ok()) << created.status();
    return *created;
  }

  // A claim by a gang-capable worker ("<worker>:29500" is its rendezvous address).
  std::optional<Lease> Claim(const std::string& worker, int64_t now = 2000, int devices = 1) {
    auto lease = store_->Claim(worker, kModels, now, kTtl, 0, devices, worker + ":29500");
    EXPECT_TRUE(lease.ok()) << lease.status();
    return lease.ok() ? *lease : std::nullopt;
  }

  // Node 0 on "a", node 1 on "b".
  std::pair<Lease, Lease> FormGangOfTwo(const JobRecord& job) {
    std::optional<Lease> leader = Claim("a");
    std::optional<Lease> member = Claim("b");
    EXPECT_TRUE(leader.has_value() && member.has_value());
    EXPECT_EQ(leader->job.id, job.id);
    EXPECT_EQ(member->job.id, job.id);
    return {*leader, *member};
  }

  std::string AllMessages(const std::string& job_id) {
    auto events = store_->ReadEvents(job_id, 0, 10000);
    EXPECT_TRUE(events.ok()) << events.status();
    std::string all;
    for (const EventRecord& e : *events) all += e.message + "\n";
    return all;
  }

  testing::TempDir dir_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<JobStore> store_;
};

TEST_F(JobGangTest, WorkersJoinAsNodesUntilTheGangIsComplete) {
  const JobRecord job = CreateGangJob(3, 2);
  // A worker without a gang address never takes it.
  auto plain = store_->Claim("plain", kModels, 2000, kTtl, 0, 2);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->has_value());
  // Nor one with too few devices.
  EXPECT_FALSE(Claim("small", 2000, 1).has_value());

  std::optional<Lease> leader = Claim("a", 2000, 2);
  ASSERT_TRUE(leader.has_value());
  EXPECT_EQ(leader->job.state, JobState::kRunning);
  EXPECT_EQ(leader->job.gang_node, 0);
  EXPECT_EQ(leader->job.num_nodes, 3);
  EXPECT_EQ(leader->job.gang_rendezvous, "a:29500");
  EXPECT_FALSE(Claim("a", 2100, 2).has_value()) << "node 0 cannot join its own gang";

  std::optional<Lease> one = Claim("b", 2200, 4);
  ASSERT_TRUE(one.has_value());
  EXPECT_EQ(one->job.id, job.id);
  EXPECT_EQ(one->job.gang_node, 1);
  EXPECT_EQ(one->job.attempt, 1);
  EXPECT_EQ(one->job.gang_rendezvous, "a:29500");
  EXPECT_NE(one->token, leader->token);
  EXPECT_FALSE(Claim("b", 2300, 2).has_value()) << "a worker joins a gang once";

  std::optional<Lease> two = Claim("c", 2400, 2);
  ASSERT_TRUE(two.has_value());
  EXPECT_EQ(two->job.gang_node, 2);
  EXPECT_FALSE(Claim("d", 2500, 2).has_value()) << "the gang is complete";

  // A member's token leases the job as that node.
  auto checked = store_->CheckLease(two->token, 2600);
  ASSERT_TRUE(checked.ok()) << checked.status();
  EXPECT_EQ(checked->gang_node, 2);
  EXPECT_EQ(checked->worker_id, "c");
  const std::string messages = AllMessages(job.id);
  EXPECT_TRUE(absl::StrContains(messages, "node 0 of 3, rendezvous a:29500")) << messages;
  EXPECT_TRUE(absl::StrContains(messages, "node 1 of 3 joined on worker b; waiting for 1 more"))
      << messages;
  EXPECT_TRUE(absl::StrContains(messages, "node 2 of 3 joined on worker c; the gang is complete"))
      << messages;
}

TEST_F(JobGangTest, MembersReportLogsOnlyAndCommitNothing) {
  const JobRecord job = CreateGangJob(2);
  auto [leader, member] = FormGangOfTwo(job);
  EventRecord log;
  log.kind = EventKind::kLog;
  log.message = "node 1: hello";
  EXPECT_TRUE(store_->AppendEvents(member.token, 3000, {log}).ok());
  EventRecord progress;
  progress.kind = EventKind::kProgress;
  progress.step = 3;
  EXPECT_EQ(store_->AppendEvents(member.token, 3000, {progress}).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto commit = store_->CommitCheckpoint(member.token, 3000, 1, CheckpointKind::kResume, {});
  EXPECT_EQ(commit.status().code(), absl::StatusCode::kFailedPrecondition);
  // A member's heartbeat renews its own lease, and sees a cancel.
  ASSERT_TRUE(store_->Cancel(job.id, 3100).ok());
  auto beat = store_->Heartbeat(member.token, 3200, kTtl, 5, 7, 10);
  ASSERT_TRUE(beat.ok()) << beat.status();
  EXPECT_TRUE(beat->cancel_requested);
  EXPECT_EQ(beat->expires_ms, 3200 + kTtl);
  EXPECT_EQ(store_->Get(job.id)->step, 0) << "a member's progress is not the job's";
}

TEST_F(JobGangTest, AnyNodesFailureEndsTheAttemptOnEveryNode) {
  const JobRecord job = CreateGangJob(2);
  auto [leader, member] = FormGangOfTwo(job);
  auto state = store_->Fail(member.token, 3000, "rank 1: out of memory", /*retryable=*/true);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, JobState::kQueued);
  const JobRecord after = *store_->Get(job.id);
  EXPECT_EQ(after.error_attempts, 1);
  EXPECT_EQ(after.infra_attempts, 0);
  EXPECT_TRUE(absl::StrContains(AllMessages(job.id), "node 1 (worker b): rank 1: out of memory"));
  // Both nodes' leases are gone.
  EXPECT_EQ(store_->Heartbeat(leader.token, 3100, kTtl, 0, 0, 0).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->Heartbeat(member.token, 3100, kTtl, 0, 0, 0).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // The retry forms a new gang (any worker may lead it now).
  std::optional<Lease> leader2 = Claim("b", 4000);
  std::optional<Lease> member2 = Claim("a", 4000);
  ASSERT_TRUE(leader2.has_value() && member2.has_value());
  EXPECT_EQ(leader2->job.attempt, 2);
  EXPECT_EQ(leader2->job.gang_rendezvous, "b:29500");
  EXPECT_EQ(member2->job.gang_node, 1);
  EXPECT_EQ(member2->job.attempt, 2);
}

TEST_F(JobGangTest, AFailureBeforeTheGangFormedIsAnInfrastructureLoss) {
  const JobRecord job = CreateGangJob(2);
  std::optional<Lease> leader = Claim("a");
  ASSERT_TRUE(leader.has_value());
  auto state = store_->Fail(leader->token, 20'000,
                            "rank 0: rank 1 did not join the rendezvous within 600000 ms", true);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, JobState::kQueued);
  const JobRecord after = *store_->Get(job.id);
  EXPECT_EQ(after.error_attempts, 0);
  EXPECT_EQ(after.infra_attempts, 1);
  EXPECT_TRUE(absl::StrContains(AllMessages(job.id), "gang did not form (1 of 2 nodes joined)"));
  // A non-retryable error fails the job at once, formed or not.
  std::optional<Lease> again = Claim("a", 70'000);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*store_->Fail(again->token, 70'001, "bad spec", false), JobState::kFailed);
}

TEST_F(JobGangTest, AMembersExpiredLeaseRequeuesTheJob) {
  const JobRecord job = CreateGangJob(2);
  auto [leader, member] = FormGangOfTwo(job);
  // Node 0 keeps its lease alive; node 1 goes silent.
  ASSERT_TRUE(store_->Heartbeat(leader.token, 2000 + kTtl - 1, kTtl, 0, 0, 0).ok());
  auto swept = store_->SweepExpired(2000 + kTtl + 1);
  ASSERT_TRUE(swept.ok()) << swept.status();
  EXPECT_EQ(*swept, std::vector<std::string>{job.id});
  const JobRecord after = *store_->Get(job.id);
  EXPECT_EQ(after.state, JobState::kQueued);
  EXPECT_EQ(after.infra_attempts, 1);
  EXPECT_TRUE(absl::StrContains(AllMessages(job.id), "on worker b expired (node 1 of 2"));
  EXPECT_FALSE(store_->CheckLease(leader.token, 2000 + kTtl + 2).ok());
}

TEST_F(JobGangTest, AMembersCompletionEndsOnlyItsPart) {
  const JobRecord job = CreateGangJob(2);
  auto [leader, member] = FormGangOfTwo(job);
  auto state = store_->Complete(member.token, 3000);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, JobState::kRunning);
  EXPECT_FALSE(store_->CheckLease(member.token, 3001).ok()) << "its part is over";
  // Its lease lapsing later is not a loss.
  ASSERT_TRUE(store_->Heartbeat(leader.token, 2000 + kTtl, kTtl, 0, 0, 0).ok());
  EXPECT_TRUE(store_->SweepExpired(2000 + kTtl + 1)->empty());
  ASSERT_TRUE(store_
                  ->CommitCheckpoint(leader.token, 2000 + kTtl + 2, 4, CheckpointKind::kFinal,
                                     {{"model_index.json", std::string(64, 'a'), 1}})
                  .ok());
  EXPECT_EQ(*store_->Complete(leader.token, 2000 + kTtl + 3), JobState::kSucceeded);
}

TEST_F(JobGangTest, DeletingARunningGangJobEndsEveryLease) {
  const JobRecord job = CreateGangJob(2);
  auto [leader, member] = FormGangOfTwo(job);
  ASSERT_TRUE(store_->Delete(job.id).ok());
  EXPECT_FALSE(store_->CheckLease(member.token, 3000).ok());
  EXPECT_FALSE(store_->CheckLease(leader.token, 3000).ok());
}

TEST(WorkerRegistryGangTest, CountsWorkersThatTakeGangJobsWithEnoughDevices) {
  testing::TempDir dir;
  auto db = Database::Open({dir.Join("db.sqlite")});
  ASSERT_TRUE(db.ok()) << db.status();
  WorkerRegistry registry(db->get());
  const auto worker = [](const std::string& id, int devices, const std::string& gang_address) {
    WorkerRecord w;
    w.id = id;
    w.device_count = devices;
    w.gang_address = gang_address;
    return w;
  };
  const WorkerRecord a = worker("a", 2, "a:1");
  const WorkerRecord b = worker("b", 1, "b:1");
  const WorkerRecord c = worker("c", 4, "");  // takes no gang jobs
  ASSERT_TRUE(registry.Remember(a, 1000).ok());
  ASSERT_TRUE(registry.Remember(b, 1000).ok());
  ASSERT_TRUE(registry.Remember(c, 5000).ok());
  EXPECT_EQ(*registry.CountGangCapable(1, 0), 2);
  EXPECT_EQ(*registry.CountGangCapable(2, 0), 1);
  EXPECT_EQ(*registry.CountGangCapable(1, 2000), 0) << "seen too long ago";
}

}  // namespace
}  // namespace dreambooth::storage
