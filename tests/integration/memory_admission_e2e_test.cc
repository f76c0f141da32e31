// Memory admission through the service: a real dreamboothd on loopback and real dreambooth-worker
// processes (the built-in tiny model, CPU). Before a job loads its model the worker estimates the
// job's peak memory against its budget (--memory-budget-mb here, so that the test does not depend
// on this machine's free memory): spec.memory_policy REFUSE fails the job naming the estimate and
// the budget; ADAPT turns on gradient checkpointing, says so in the job's events, and trains.
#include <gtest/gtest.h>
#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tests/integration/e2e_support.h"
#include "tests/integration/tiny_jobs_fixture.h"

namespace dreambooth::testing {
namespace {

class MemoryAdmissionE2eTest : public TinyJobsTest {
 protected:
  std::unique_ptr<WorkerProcess> StartWorker(int64_t budget_mb) {
    return TinyJobsTest::StartWorker(absl::StrCat("budget-", budget_mb),
                                     {"--memory-budget-mb", std::to_string(budget_mb)});
  }

  // Runs a 2-step job to its end; returns it and its events' messages.
  std::pair<v1::Job, std::string> Run(bool checkpointing, v1::MemoryPolicy policy,
                                      const WorkerProcess* worker) {
    v1::JobSpec spec = TinySpec(set_, /*max_train_steps=*/2, /*checkpointing_steps=*/0);
    spec.set_gradient_checkpointing(checkpointing);
    spec.set_memory_policy(policy);
    absl::StatusOr<v1::Job> job = api_->CreateJob(spec);
    EXPECT_TRUE(job.ok()) << job.status();
    if (!job.ok()) return {};
    absl::StatusOr<v1::Job> done = WaitForJob(*api_, job->id(), IsTerminal, 300'000);
    EXPECT_TRUE(done.ok()) << done.status() << ProcessLogs(worker, daemon_->Log());
    return {done.ok() ? *done : v1::Job(), Events(job->id())};
  }

  // The "memory: estimated peak N MiB per rank" number of a job's events; -1 when absent.
  static int64_t EstimateMiB(const std::string& events) {
    const std::string marker = "memory: estimated peak ";
    const size_t at = events.find(marker);
    if (at == std::string::npos) return -1;
    const size_t begin = at + marker.size();
    int64_t mib = -1;
    if (!absl::SimpleAtoi(events.substr(begin, events.find(' ', begin) - begin), &mib)) return -1;
    return mib;
  }
};

TEST_F(MemoryAdmissionE2eTest, RefuseFailsTheJobAndAdaptTurnsOnCheckpointingToFit) {
  // With room to spare: the estimates with and without gradient checkpointing.
  std::unique_ptr<WorkerProcess> roomy = StartWorker(1 << 20);
  ASSERT_NE(roomy, nullptr);
  auto [plain, plain_events] = Run(false, v1::MEMORY_POLICY_REFUSE, roomy.get());
  ASSERT_EQ(plain.state(), v1::JOB_STATE_SUCCEEDED) << plain.error() << plain_events;
  auto [saving, saving_events] = Run(true, v1::MEMORY_POLICY_REFUSE, roomy.get());
  ASSERT_EQ(saving.state(), v1::JOB_STATE_SUCCEEDED) << saving.error() << saving_events;
  const int64_t without = EstimateMiB(plain_events);
  const int64_t with = EstimateMiB(saving_events);
  ASSERT_GT(with, 0) << saving_events;
  ASSERT_GT(without, with + 4) << plain_events << saving_events;
  ASSERT_NE(roomy->Stop(SIGTERM), -1);

  // A budget between the two.
  const int64_t budget = (with + without) / 2;
  std::unique_ptr<WorkerProcess> tight = StartWorker(budget);
  ASSERT_NE(tight, nullptr);
  auto [refused, refused_events] = Run(false, v1::MEMORY_POLICY_REFUSE, tight.get());
  EXPECT_EQ(refused.state(), v1::JOB_STATE_FAILED) << refused_events;
  EXPECT_EQ(refused.attempt(), 1);  // not retried: the same job would not fit the next time
  EXPECT_TRUE(absl::StrContains(refused.error(), "memory admission: estimated peak memory"))
      << refused.error();
  EXPECT_TRUE(absl::StrContains(refused.error(), absl::StrCat("exceeds the budget ", budget)))
      << refused.error();
  EXPECT_TRUE(absl::StrContains(refused.error(), "memory policy: refuse")) << refused.error();

  auto [adapted, adapted_events] = Run(false, v1::MEMORY_POLICY_ADAPT, tight.get());
  EXPECT_EQ(adapted.state(), v1::JOB_STATE_SUCCEEDED) << adapted.error() << adapted_events;
  EXPECT_TRUE(absl::StrContains(adapted_events, "memory: turned on gradient checkpointing"))
      << adapted_events;
  EXPECT_EQ(EstimateMiB(adapted_events), with) << adapted_events;
}

}  // namespace
}  // namespace dreambooth::testing
