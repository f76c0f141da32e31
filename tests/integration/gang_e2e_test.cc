// End-to-end multi-node gangs through the service: a real dreamboothd on loopback and real
// dreambooth-worker processes started with --gang-address, each one "node" of a job with
// spec.num_nodes = 2. The gang trains to the same weights as one 2-device worker; SIGKILL of
// one node's worker fails the attempt on the other at once and the retry (a new gang) resumes to
// the same weights; a gang that cannot form in time goes back to the queue as an
// infrastructure loss; CreateJob refuses a gang no registered workers could form.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/integration/e2e_support.h"
#include "tests/integration/tiny_jobs_fixture.h"

namespace dreambooth::testing {
namespace {

class GangE2eTest : public TinyJobsTest {
 protected:
  // A 1-device worker that takes part in gangs (its rendezvous on a free loopback port).
  std::unique_ptr<WorkerProcess> StartGangWorker(const std::string& id) {
    return StartWorker(id, {"--worker-id", id, "--gang-address", "127.0.0.1"});
  }

  // A prior-preservation job on `nodes` nodes of `devices` devices: `steps` steps, a resume
  // checkpoint every 2 (as the data-parallel suite's, so the weights compare).
  v1::JobSpec Spec(int nodes, int devices, int steps = 6) const {
    v1::JobSpec spec = TinySpec(set_, steps, /*checkpointing_steps=*/2);
    spec.set_with_prior_preservation(true);
    spec.set_regularization_prompt("a photo of a toy");
    spec.set_num_reg_images(2);
    spec.set_num_images_per_prompt(1);
    spec.mutable_class_sampler()->set_num_inference_steps(2);
    spec.set_num_devices(devices);
    spec.set_num_nodes(nodes);
    return spec;
  }

  // The worker (its --worker-id) that joined the job's first gang as node 1 (reads the job's
  // events until that one).
  std::string NodeOneWorker(const std::string& job_id) {
    const std::string marker = ": node 1 of 2 joined on worker ";
    std::string worker;
    (void)api_->WatchJob(job_id, 0, [&](const v1::JobEvent& e) {
      const size_t at = e.message().find(marker);
      if (at == std::string::npos) return true;
      const size_t start = at + marker.size();
      worker = e.message().substr(start, e.message().find('/', start) - start);  // "<id>/train"
      return false;
    });
    return worker;
  }
};

TEST_F(GangE2eTest, TwoWorkersTrainOneJobToTheWeightsOfOneTwoDeviceWorker) {
  // No worker takes gangs yet: refused, naming the flag.
  absl::StatusOr<v1::Job> early = api_->CreateJob(Spec(2, 1));
  ASSERT_TRUE(absl::IsFailedPrecondition(early.status())) << early.status();
  EXPECT_TRUE(absl::StrContains(early.status().message(), "--gang-address")) << early.status();

  std::unique_ptr<WorkerProcess> a = StartGangWorker("a");
  std::unique_ptr<WorkerProcess> b = StartGangWorker("b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  absl::StatusOr<v1::Job> gang = CreateWhenWorkersRegistered(Spec(2, 1));
  ASSERT_TRUE(gang.ok()) << gang.status();
  absl::StatusOr<v1::Job> gang_done = WaitDone(gang->id(), a.get());
  ASSERT_TRUE(gang_done.ok()) << gang_done.status() << ProcessLogs(b.get(), "");
  EXPECT_EQ(gang_done->attempt(), 1);
  const std::string events = Events(gang->id());
  EXPECT_TRUE(absl::StrContains(events, "(node 0 of 2, rendezvous 127.0.0.1:")) << events;
  EXPECT_TRUE(absl::StrContains(events, "the gang is complete")) << events;
  EXPECT_TRUE(absl::StrContains(events, "node 1: node 1 of 2 on worker")) << events;
  EXPECT_TRUE(absl::StrContains(events, "finished its part of attempt 1")) << events;

  // Three nodes are more than the two gang workers registered.
  absl::StatusOr<v1::Job> three = api_->CreateJob(Spec(3, 1));
  ASSERT_TRUE(absl::IsFailedPrecondition(three.status())) << three.status();
  EXPECT_TRUE(absl::StrContains(three.status().message(), "only 2 worker(s)")) << three.status();

  // The same world size on one 2-device worker trains the same weights (with the same threads
  // per rank: CPU kernels sum in another order on another thread count).
  std::unique_ptr<WorkerProcess> big =
      StartWorker("big", {"--worker-id", "big", "--num-devices", "2", "--threads", "4"});
  ASSERT_NE(big, nullptr);
  absl::StatusOr<v1::Job> local = CreateWhenWorkersRegistered(Spec(1, 2));
  ASSERT_TRUE(local.ok()) << local.status();
  absl::StatusOr<v1::Job> local_done = WaitDone(local->id(), big.get());
  ASSERT_TRUE(local_done.ok()) << local_done.status();
  EXPECT_EQ(FinalUNetDigest(gang->id()), FinalUNetDigest(local->id()));
}

TEST_F(GangE2eTest, KillingANodeFailsTheAttemptEverywhereAndTheRetryResumesToTheSameWeights) {
  std::unique_ptr<WorkerProcess> workers[2] = {StartGangWorker("a"), StartGangWorker("b")};
  ASSERT_NE(workers[0], nullptr);
  ASSERT_NE(workers[1], nullptr);
  const v1::JobSpec spec = Spec(2, 1, /*steps=*/12);
  absl::StatusOr<v1::Job> job = CreateWhenWorkersRegistered(spec);
  ASSERT_TRUE(job.ok()) << job.status();

  // Once a resume state is committed, SIGKILL node 1's worker process.
  const std::string victim = NodeOneWorker(job->id());
  ASSERT_TRUE(victim == "a" || victim == "b") << victim << Events(job->id());
  bool resumable = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (!resumable && std::chrono::steady_clock::now() < deadline) {
    absl::StatusOr<v1::ListCheckpointsResponse> listed = api_->ListCheckpoints(job->id());
    for (int i = 0; listed.ok() && i < listed->checkpoints_size(); ++i) {
      resumable |= listed->checkpoints(i).kind() == v1::CHECKPOINT_KIND_RESUME;
    }
    if (!resumable) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(resumable) << ProcessLogs(workers[0].get(), daemon_->Log());
  const int index = victim == "a" ? 0 : 1;
  ASSERT_NE(workers[index]->Stop(SIGKILL), -1);
  const auto killed = std::chrono::steady_clock::now();

  // Node 0 fails the attempt at once; it goes back to the queue until a second worker returns.
  absl::StatusOr<v1::Job> requeued = WaitForJob(
      *api_, job->id(), [](const v1::Job& j) { return j.attempt() >= 2; }, 60'000);
  ASSERT_TRUE(requeued.ok()) << requeued.status();
  EXPECT_LT(std::chrono::steady_clock::now() - killed, std::chrono::seconds(30));
  workers[index] = StartGangWorker(victim);
  ASSERT_NE(workers[index], nullptr);
  absl::StatusOr<v1::Job> done = WaitDone(job->id(), workers[1 - index].get());
  ASSERT_TRUE(done.ok()) << done.status();
  const std::string events = Events(job->id());
  if (done->attempt() == 1) GTEST_SKIP() << "the run ended before the kill";
  EXPECT_TRUE(absl::StrContains(events, "attempt 1 failed (1 of 3 error attempts used)")) << events;
  EXPECT_TRUE(absl::StrContains(events, "resuming from checkpoint")) << events;

  // The same job without the kill ends with the same weights.
  absl::StatusOr<v1::Job> clean = api_->CreateJob(spec);
  ASSERT_TRUE(clean.ok()) << clean.status();
  absl::StatusOr<v1::Job> clean_done = WaitDone(clean->id(), workers[0].get());
  ASSERT_TRUE(clean_done.ok()) << clean_done.status();
  EXPECT_EQ(clean_done->attempt(), 1);
  EXPECT_EQ(FinalUNetDigest(job->id()), FinalUNetDigest(clean->id()));
}

class GangFormationE2eTest : public GangE2eTest {
 protected:
  std::vector<std::string> DaemonArgs() const override {
    return {"--lease-ttl=9s", "--sweep-interval=100ms", "--gang-formation-timeout=5s"};
  }
};

TEST_F(GangFormationE2eTest, AGangThatDoesNotFormGoesBackToTheQueueAsAnInfrastructureLoss) {
  std::unique_ptr<WorkerProcess> a = StartGangWorker("a");
  std::unique_ptr<WorkerProcess> b = StartGangWorker("b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  // Both registered; then one goes away, so node 0 waits at the rendezvous alone.
  absl::StatusOr<v1::Job> probe = CreateWhenWorkersRegistered(Spec(2, 1, /*steps=*/2));
  ASSERT_TRUE(probe.ok()) << probe.status();
  ASSERT_TRUE(WaitDone(probe->id(), a.get()).ok());
  ASSERT_NE(b->Stop(SIGTERM), -1);
  absl::StatusOr<v1::Job> job = api_->CreateJob(Spec(2, 1));
  ASSERT_TRUE(job.ok()) << job.status();
  absl::StatusOr<v1::Job> retried = WaitForJob(
      *api_, job->id(), [](const v1::Job& j) { return j.attempt() >= 2; }, 120'000);
  ASSERT_TRUE(retried.ok()) << retried.status() << ProcessLogs(a.get(), daemon_->Log());
  EXPECT_EQ(retried->error_attempts(), 0);
  EXPECT_GE(retried->infra_attempts(), 1);
  // With the second worker back the gang forms and the job succeeds.
  b = StartGangWorker("b");
  ASSERT_NE(b, nullptr);
  absl::StatusOr<v1::Job> done = WaitDone(job->id(), a.get());
  ASSERT_TRUE(done.ok()) << done.status() << ProcessLogs(b.get(), "");
  const std::string events = Events(job->id());
  EXPECT_TRUE(absl::StrContains(events, "gang did not form (1 of 2 nodes joined)")) << events;
  EXPECT_TRUE(absl::StrContains(events, "infrastructure attempts used")) << events;
}

}  // namespace
}  // namespace dreambooth::testing
