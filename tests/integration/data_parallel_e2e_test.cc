// End-to-end data parallel through the service: a real dreamboothd on loopback and real
// dreambooth-worker processes with one and two (CPU) devices, training the built-in tiny model.
// A job with spec.num_devices = 2 runs as two ranks on the 2-device worker and waits for it while
// 1-device jobs run on the other; a job no registered worker has the devices for is refused at
// CreateJob; SIGKILL of a rank fails the attempt and the retry resumes to the same weights as an
// uninterrupted run.
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/integration/e2e_support.h"
#include "tests/integration/tiny_jobs_fixture.h"

namespace dreambooth::testing {
namespace {

// The pid of `parent`'s child process whose command line contains `needle`; -1 when none.
pid_t ChildWithCommand(pid_t parent, const std::string& needle) {
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return -1;
  pid_t found = -1;
  while (dirent* entry = ::readdir(proc)) {
    int pid = 0;
    if (!absl::SimpleAtoi(entry->d_name, &pid)) continue;
    std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
    std::string line;
    std::getline(stat, line);
    // pid (comm) state ppid ...: the fields after the last ')'.
    const size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::vector<std::string> fields = absl::StrSplit(line.substr(close + 2), ' ');
    int ppid = 0;
    if (fields.size() < 2 || !absl::SimpleAtoi(fields[1], &ppid) || ppid != parent) continue;
    std::ifstream cmdline(absl::StrCat("/proc/", pid, "/cmdline"));
    std::stringstream text;
    text << cmdline.rdbuf();
    if (absl::StrContains(text.str(), needle)) {
      found = pid;
      break;
    }
  }
  ::closedir(proc);
  return found;
}

class DataParallelE2eTest : public TinyJobsTest {
 protected:
  std::unique_ptr<WorkerProcess> StartWorker(const std::string& id, int devices) {
    return TinyJobsTest::StartWorker(id,
                                     {"--worker-id", id, "--num-devices", std::to_string(devices)});
  }

  // A prior-preservation job on `devices` devices: 6 steps, a resume checkpoint every 2; two class
  // images generated one per batch, so two ranks generate one each.
  v1::JobSpec Spec(int devices) const {
    v1::JobSpec spec = TinySpec(set_, /*max_train_steps=*/6, /*checkpointing_steps=*/2);
    spec.set_with_prior_preservation(true);
    spec.set_regularization_prompt("a photo of a toy");
    spec.set_num_reg_images(2);
    spec.set_num_images_per_prompt(1);
    spec.mutable_class_sampler()->set_num_inference_steps(2);
    spec.set_num_devices(devices);
    return spec;
  }
};

TEST_F(DataParallelE2eTest, TwoDeviceJobWaitsForATwoDeviceWorkerWhileOneDeviceJobsRun) {
  // Nothing has registered: a 2-device job is refused, naming the flag that would fix it.
  absl::StatusOr<v1::Job> early = api_->CreateJob(Spec(2));
  ASSERT_TRUE(absl::IsFailedPrecondition(early.status())) << early.status();
  EXPECT_TRUE(absl::StrContains(early.status().message(), "--num-devices")) << early.status();

  // A 2-device worker trains a 2-device job as two ranks.
  std::unique_ptr<WorkerProcess> big = StartWorker("big", 2);
  ASSERT_NE(big, nullptr);
  absl::StatusOr<v1::Job> first = CreateWhenWorkersRegistered(Spec(2));
  ASSERT_TRUE(first.ok()) << first.status() << ProcessLogs(big.get(), daemon_->Log());
  absl::StatusOr<v1::Job> first_done = WaitDone(first->id(), big.get());
  ASSERT_TRUE(first_done.ok()) << first_done.status();
  // Rank 0 generated and encoded its half (1 of 2 class images, 2 of 4 posteriors); rank 1 the
  // rest.
  const std::string events = Events(first->id());
  EXPECT_TRUE(absl::StrContains(events, "data parallel: ranks 0..1 of 2")) << events;
  EXPECT_TRUE(absl::StrContains(events, " 1 generated;")) << events;
  EXPECT_TRUE(absl::StrContains(events, " 2 encoded;")) << events;
  ASSERT_NE(big->Stop(SIGTERM), -1);

  // Only a 1-device worker runs now: the 2-device job waits while 1-device jobs run.
  std::unique_ptr<WorkerProcess> small = StartWorker("small", 1);
  ASSERT_NE(small, nullptr);
  absl::StatusOr<v1::Job> waiting = api_->CreateJob(Spec(2));  // "big" is still registered
  ASSERT_TRUE(waiting.ok()) << waiting.status();
  absl::StatusOr<v1::Job> one = api_->CreateJob(Spec(1));
  ASSERT_TRUE(one.ok()) << one.status();
  absl::StatusOr<v1::Job> one_done = WaitDone(one->id(), small.get());
  ASSERT_TRUE(one_done.ok()) << one_done.status();
  EXPECT_TRUE(absl::StrContains(Events(one->id()), "started on worker small/train"));
  absl::StatusOr<v1::Job> still = api_->GetJob(waiting->id());
  ASSERT_TRUE(still.ok()) << still.status();
  EXPECT_EQ(still->state(), v1::JOB_STATE_QUEUED);

  // More devices than any registered worker has: refused, naming the largest.
  absl::StatusOr<v1::Job> impossible = api_->CreateJob(Spec(3));
  ASSERT_TRUE(absl::IsFailedPrecondition(impossible.status())) << impossible.status();
  EXPECT_TRUE(absl::StrContains(impossible.status().message(), "'big/train', has 2 devices"))
      << impossible.status();

  // The 2-device worker comes back and takes the waiting job; same spec, same weights.
  big = StartWorker("big", 2);
  ASSERT_NE(big, nullptr);
  absl::StatusOr<v1::Job> waited = WaitDone(waiting->id(), big.get());
  ASSERT_TRUE(waited.ok()) << waited.status();
  EXPECT_TRUE(absl::StrContains(Events(waiting->id()), "started on worker big/train"));
  EXPECT_EQ(FinalUNetDigest(waiting->id()), FinalUNetDigest(first->id()));
}

TEST_F(DataParallelE2eTest, KillingARankFailsTheAttemptAndTheRetryResumesToTheSameWeights) {
  std::unique_ptr<WorkerProcess> big = StartWorker("big", 2);
  ASSERT_NE(big, nullptr);
  v1::JobSpec spec = Spec(2);
  spec.set_max_train_steps(12);
  spec.set_checkpointing_steps(4);
  absl::StatusOr<v1::Job> job = CreateWhenWorkersRegistered(spec);
  ASSERT_TRUE(job.ok()) << job.status();

  // Once the step-4 resume state is committed, SIGKILL rank 1 (the worker's child process).
  pid_t rank1 = -1;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (std::chrono::steady_clock::now() < deadline) {
    absl::StatusOr<v1::ListCheckpointsResponse> listed = api_->ListCheckpoints(job->id());
    bool resumable = false;
    for (int i = 0; listed.ok() && i < listed->checkpoints_size(); ++i) {
      resumable |= listed->checkpoints(i).kind() == v1::CHECKPOINT_KIND_RESUME;
    }
    rank1 = resumable ? ChildWithCommand(big->pid(), "train-rank") : -1;
    if (rank1 > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GT(rank1, 0) << "no resume checkpoint with rank 1 running"
                      << ProcessLogs(big.get(), daemon_->Log());
  ASSERT_EQ(::kill(rank1, SIGKILL), 0);

  absl::StatusOr<v1::Job> done = WaitDone(job->id(), big.get());
  ASSERT_TRUE(done.ok()) << done.status();
  const std::string events = Events(job->id());
  if (done->attempt() == 1) {
    GTEST_SKIP() << "the run ended before the kill reached rank 1 (it is faster than the poll)";
  }
  EXPECT_EQ(done->attempt(), 2) << events;
  EXPECT_TRUE(absl::StrContains(events, "rank 1 was killed by signal 9")) << events;
  EXPECT_TRUE(absl::StrContains(events, "resuming from checkpoint")) << events;

  // The same job without the kill ends with the same weights.
  absl::StatusOr<v1::Job> clean = api_->CreateJob(spec);
  ASSERT_TRUE(clean.ok()) << clean.status();
  absl::StatusOr<v1::Job> clean_done = WaitDone(clean->id(), big.get());
  ASSERT_TRUE(clean_done.ok()) << clean_done.status();
  EXPECT_EQ(clean_done->attempt(), 1);
  EXPECT_EQ(FinalUNetDigest(job->id()), FinalUNetDigest(clean->id()));
}

// A rank that dies while the ranks still prepare (before they meet to train) fails the attempt
// at once, not after the collective timeout (30 min), naming that rank; the retry succeeds.
TEST_F(DataParallelE2eTest, ARankThatDiesWhilePreparingFailsTheAttemptAtOnce) {
  std::unique_ptr<WorkerProcess> big = StartWorker("big", 2);
  ASSERT_NE(big, nullptr);
  v1::JobSpec spec = Spec(2);
  spec.set_num_reg_images(8);  // 8 batches of class images: seconds of generation
  spec.mutable_class_sampler()->set_num_inference_steps(10);
  absl::StatusOr<v1::Job> job = CreateWhenWorkersRegistered(spec);
  ASSERT_TRUE(job.ok()) << job.status();

  pid_t rank1 = -1;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  while (rank1 <= 0 && std::chrono::steady_clock::now() < deadline) {
    rank1 = ChildWithCommand(big->pid(), "train-rank");
    if (rank1 <= 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_GT(rank1, 0) << ProcessLogs(big.get(), daemon_->Log());
  ASSERT_EQ(::kill(rank1, SIGKILL), 0);
  const auto killed = std::chrono::steady_clock::now();

  absl::StatusOr<v1::Job> done = WaitDone(job->id(), big.get());
  ASSERT_TRUE(done.ok()) << done.status();
  const std::string events = Events(job->id());
  EXPECT_EQ(done->attempt(), 2) << events;
  EXPECT_TRUE(absl::StrContains(events, "rank 1 was killed by signal 9")) << events;
  // Attempt 1 ended well within the collective timeout (the whole job took less than a minute).
  EXPECT_LT(std::chrono::steady_clock::now() - killed, std::chrono::minutes(1));
}

}  // namespace
}  // namespace dreambooth::testing
