// End-to-end failure handling with real processes: a worker killed mid-training, a server
// killed mid-job, a server frozen longer than a call deadline, undecodable images and a base model
// with missing weights.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "tests/integration/e2e_support.h"
#include "tests/testing/daemon.h"
#include "tests/testing/temp_dir.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/diffusion/io/safetensors.h"

namespace dreambooth::testing {
namespace {
namespace fs = std::filesystem;

class WorkerRecoveryTest : public ::testing::Test {
 protected:
  void StartDaemon(const std::string& lease_ttl) {
    DaemonOptions options;
    options.data_dir = dir_.Join("data");
    options.port = port_;
    options.worker_port = worker_port_;  // a restart keeps both ports: workers reconnect
    options.extra_args = {"--lease-ttl=" + lease_ttl, "--sweep-interval=100ms",
                          "--model-root=" + dir_.Join("models")};
    fs::create_directories(dir_.Join("models"));
    absl::StatusOr<std::unique_ptr<Daemon>> d = Daemon::Start(options);
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_ = std::move(*d);
    port_ = daemon_->port();
    worker_port_ = daemon_->options().worker_port;
    api_ = MakeApiClient(daemon_->address());
  }

  std::unique_ptr<WorkerProcess> StartWorker(const std::string& name) {
    absl::StatusOr<std::unique_ptr<WorkerProcess>> w = WorkerProcess::Start(
        {"--server", daemon_->worker_address(), "--cache-dir", dir_.Join("cache-" + name),
         "--model-root", dir_.Join("models"), "--worker-id", name, "--threads", "1"},
        dir_.Join(name + ".log"));
    EXPECT_TRUE(w.ok()) << w.status();
    return w.ok() ? std::move(*w) : nullptr;
  }

  std::string UploadInstances() {
    absl::StatusOr<v1::UploadImagesResponse> uploaded =
        api_->Upload({{"toy0.png", InstancePng(0)}, {"toy1.png", InstancePng(1)}}, "", "test set");
    EXPECT_TRUE(uploaded.ok()) << uploaded.status();
    return uploaded.ok() ? uploaded->image_set().id() : "";
  }

  std::vector<v1::Checkpoint> Checkpoints(const std::string& job_id) {
    absl::StatusOr<v1::ListCheckpointsResponse> list = api_->ListCheckpoints(job_id);
    EXPECT_TRUE(list.ok()) << list.status();
    if (!list.ok()) return {};
    return {list->checkpoints().begin(), list->checkpoints().end()};
  }

  // Digest of the FINAL checkpoint's UNet weights (tensor data: the metadata names the job).
  std::string FinalUnetDigest(const std::string& job_id) {
    return FinalUNetDataDigest(*api_, job_id, dir_.path());
  }

  std::string Logs(const WorkerProcess* w) {
    return absl::StrCat("\n--- worker ---\n", w ? w->Log() : "", "\n--- daemon ---\n",
                        daemon_ ? daemon_->Log() : "");
  }

  TempDir dir_;
  int port_ = 0;
  int worker_port_ = 0;
  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<client::Client> api_;
};

TEST_F(WorkerRecoveryTest, KilledWorkerIsReplacedAndTheJobResumesToTheSameWeights) {
  StartDaemon("6s");
  const std::string set = UploadInstances();
  v1::JobSpec spec = TinySpec(set, 8, 4);
  spec.set_resume_checkpoints_to_keep(10);  // keep attempt 1's resume states to inspect below

  // Reference: the same spec (same seed) trained without interruption.
  auto w1 = StartWorker("w1");
  absl::StatusOr<v1::Job> reference = api_->CreateJob(spec);
  ASSERT_TRUE(reference.ok()) << reference.status();
  absl::StatusOr<v1::Job> reference_done = WaitForJob(*api_, reference->id(), IsTerminal, 300'000);
  ASSERT_TRUE(reference_done.ok()) << reference_done.status() << Logs(w1.get());
  ASSERT_EQ(reference_done->state(), v1::JOB_STATE_SUCCEEDED) << Logs(w1.get());

  absl::StatusOr<v1::Job> job = api_->CreateJob(spec);
  ASSERT_TRUE(job.ok()) << job.status();
  // Kill the worker right after its first resume checkpoint is committed.
  bool committed = false;
  for (int i = 0; i < 15000 && !committed; ++i) {
    for (const v1::Checkpoint& c : Checkpoints(job->id())) {
      committed = committed || c.kind() == v1::CHECKPOINT_KIND_RESUME;
    }
    if (!committed) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(committed) << Logs(w1.get());
  w1->Stop(SIGKILL);
  absl::StatusOr<v1::Job> after_kill = api_->GetJob(job->id());
  ASSERT_TRUE(after_kill.ok());
  ASSERT_EQ(after_kill->state(), v1::JOB_STATE_RUNNING)
      << "the job ended before the kill; make it longer";

  // The lease expires, the job is requeued, and a new worker resumes it.
  auto w2 = StartWorker("w2");
  absl::StatusOr<v1::Job> done = WaitForJob(*api_, job->id(), IsTerminal, 300'000);
  ASSERT_TRUE(done.ok()) << done.status() << Logs(w2.get());
  ASSERT_EQ(done->state(), v1::JOB_STATE_SUCCEEDED) << done->error() << Logs(w2.get());
  EXPECT_EQ(done->attempt(), 2);
  EXPECT_EQ(done->infra_attempts(), 1);

  // Attempt 2 resumed from attempt 1's newest resume checkpoint: it trained and committed only
  // past that step.
  int64_t resumed_step = -1;
  std::vector<v1::Checkpoint> second_attempt;
  for (const v1::Checkpoint& c : Checkpoints(job->id())) {
    if (c.attempt() == 1 && c.kind() == v1::CHECKPOINT_KIND_RESUME) {
      resumed_step = std::max(resumed_step, c.step());
    }
    if (c.attempt() == 2) second_attempt.push_back(c);
  }
  ASSERT_GT(resumed_step, 0);
  ASSERT_FALSE(second_attempt.empty());
  for (const v1::Checkpoint& c : second_attempt) {
    EXPECT_GT(c.step(), resumed_step) << v1::CheckpointKind_Name(c.kind());
  }
  int64_t first_step_attempt2 = -1;
  bool lease_lost = false;
  ASSERT_TRUE(api_->WatchJob(job->id(), 0,
                             [&](const v1::JobEvent& e) {
                               lease_lost = lease_lost || e.kind() == v1::EVENT_KIND_LEASE_LOST;
                               if (e.attempt() == 2 && e.kind() == v1::EVENT_KIND_PROGRESS &&
                                   e.stage() == v1::JOB_STAGE_TRAINING && first_step_attempt2 < 0) {
                                 first_step_attempt2 = e.step();
                               }
                               return true;
                             })
                  .ok());
  EXPECT_TRUE(lease_lost);
  EXPECT_GT(first_step_attempt2, resumed_step);

  const std::string want = FinalUnetDigest(reference->id());
  ASSERT_FALSE(want.empty());
  EXPECT_EQ(FinalUnetDigest(job->id()), want);
}

TEST_F(WorkerRecoveryTest, ServerKilledMidJobRestartsAndTheJobCompletesWithoutLostEvents) {
  StartDaemon("20s");
  auto worker = StartWorker("w1");
  absl::StatusOr<v1::Job> job = api_->CreateJob(TinySpec(UploadInstances(), 10, 4));
  ASSERT_TRUE(job.ok()) << job.status();

  // A watcher that follows the job until the server dies.
  std::vector<v1::JobEvent> seen;
  std::atomic<bool> watching{true};
  std::thread watcher([&] {
    // Ends with UNAVAILABLE once its reconnection attempts to the dead server run out.
    (void)api_->WatchJob(job->id(), 0, [&](const v1::JobEvent& e) {
      seen.push_back(e);
      return true;
    });
    watching = false;
  });
  ASSERT_TRUE(
      WaitForJob(
          *api_, job->id(),
          [](const v1::Job& j) { return j.stage() == v1::JOB_STAGE_TRAINING && j.step() >= 5; },
          300'000)
          .ok())
      << Logs(worker.get());
  daemon_->Stop(SIGKILL);
  watcher.join();
  ASSERT_FALSE(seen.empty());
  const int64_t last_seen = seen.back().sequence();

  StartDaemon("20s");  // same data dir and port
  // The watcher reconnects after the last event it got and follows the job to its end.
  ASSERT_TRUE(api_->WatchJob(job->id(), last_seen,
                             [&](const v1::JobEvent& e) {
                               seen.push_back(e);
                               return true;
                             })
                  .ok());
  absl::StatusOr<v1::Job> done = api_->GetJob(job->id());
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state(), v1::JOB_STATE_SUCCEEDED) << done->error() << Logs(worker.get());
  for (size_t i = 0; i < seen.size(); ++i) {
    ASSERT_EQ(seen[i].sequence(), static_cast<int64_t>(i + 1)) << "gap or duplicate at " << i;
  }
  EXPECT_EQ(seen.back().state(), v1::JOB_STATE_SUCCEEDED);
  // The checkpoints committed before the crash are still there.
  bool has_step_4 = false;
  for (const v1::Checkpoint& c : Checkpoints(job->id())) has_step_4 = has_step_4 || c.step() == 4;
  EXPECT_TRUE(has_step_4);
}

TEST_F(WorkerRecoveryTest, AServerFrozenLongerThanACallDeadlineKeepsTheWorkersLeaseAndJob) {
  StartDaemon("60s");
  auto worker = StartWorker("w1");
  absl::StatusOr<v1::Job> job = api_->CreateJob(TinySpec(UploadInstances(), 60, 20));
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(
      WaitForJob(
          *api_, job->id(),
          [](const v1::Job& j) { return j.stage() == v1::JOB_STAGE_TRAINING && j.step() >= 2; },
          300'000)
          .ok())
      << Logs(worker.get());

  absl::StatusOr<v1::Job> running = api_->GetJob(job->id());
  ASSERT_TRUE(running.ok()) << running.status();
  ASSERT_EQ(running->state(), v1::JOB_STATE_RUNNING) << "the job ended too soon; make it longer";
  // Freeze the server for longer than one call's deadline (the worker's 30 s), but shorter than
  // the 60 s lease: the worker's heartbeats, events, commits and completion wait and retry.
  ASSERT_EQ(kill(daemon_->pid(), SIGSTOP), 0);
  std::this_thread::sleep_for(std::chrono::seconds(35));
  ASSERT_EQ(kill(daemon_->pid(), SIGCONT), 0);

  absl::StatusOr<v1::Job> done = WaitForJob(*api_, job->id(), IsTerminal, 300'000);
  ASSERT_TRUE(done.ok()) << done.status() << Logs(worker.get());
  EXPECT_EQ(done->state(), v1::JOB_STATE_SUCCEEDED) << done->error() << Logs(worker.get());
  // The first attempt finished it: nothing was given up, requeued or retrained.
  EXPECT_EQ(done->attempt(), 1) << Logs(worker.get());
  EXPECT_EQ(done->infra_attempts(), 0) << Logs(worker.get());
}

TEST_F(WorkerRecoveryTest, UndecodableImageFailsTheJobWithoutRetries) {
  StartDaemon("30s");
  const std::string set = UploadInstances();
  // Damage one stored image behind the server's back (as a disk fault would).
  const std::string digest = Sha256Hex(InstancePng(1));
  const fs::path blob =
      fs::path(dir_.Join("data")) / "blobs" / "sha256" / digest.substr(0, 2) / digest.substr(2);
  ASSERT_TRUE(fs::exists(blob)) << blob;
  fs::permissions(blob, fs::perms::owner_write, fs::perm_options::add);
  std::ofstream(blob, std::ios::trunc) << "this is not a PNG any more";

  auto worker = StartWorker("w1");
  absl::StatusOr<v1::Job> job = api_->CreateJob(TinySpec(set, 2, 0));
  ASSERT_TRUE(job.ok()) << job.status();
  absl::StatusOr<v1::Job> done = WaitForJob(*api_, job->id(), IsTerminal, 300'000);
  ASSERT_TRUE(done.ok()) << done.status() << Logs(worker.get());
  EXPECT_EQ(done->state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(done->attempt(), 1);
  EXPECT_NE(done->error().find("instance image 'toy1.png'"), std::string::npos) << done->error();
  EXPECT_NE(done->error().find("cannot be decoded"), std::string::npos) << done->error();
}

TEST_F(WorkerRecoveryTest, BaseModelWithMissingWeightsFailsNamingTheKeys) {
  // A diffusers folder of the tiny model whose UNet file lacks conv_out.
  const std::string model_dir = dir_.Join("models/broken");
  absl::StatusOr<diffusion::StableDiffusion> tiny = diffusion::LoadStableDiffusion("tiny");
  ASSERT_TRUE(tiny.ok()) << tiny.status();
  ASSERT_TRUE(diffusion::SaveDiffusersFolder(*tiny, model_dir).ok());
  const std::string unet_file = model_dir + "/unet/diffusion_pytorch_model.safetensors";
  absl::StatusOr<diffusion::TensorMap> weights = diffusion::ReadSafetensors(unet_file);
  ASSERT_TRUE(weights.ok()) << weights.status();
  diffusion::TensorMap kept;
  for (const auto& [name, tensor] : *weights) {
    if (!absl::StartsWith(name, "conv_out.")) kept.emplace(name, tensor.clone());
  }
  ASSERT_EQ(kept.size() + 2, weights->size());
  weights->clear();
  ASSERT_TRUE(diffusion::WriteSafetensors(unet_file, kept).ok());

  StartDaemon("30s");
  auto worker = StartWorker("w1");
  v1::JobSpec spec = TinySpec(UploadInstances(), 2, 0);
  spec.set_base_model("broken");
  absl::StatusOr<v1::Job> job = api_->CreateJob(spec);
  ASSERT_TRUE(job.ok()) << job.status();
  absl::StatusOr<v1::Job> done = WaitForJob(*api_, job->id(), IsTerminal, 300'000);
  ASSERT_TRUE(done.ok()) << done.status() << Logs(worker.get());
  EXPECT_EQ(done->state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(done->attempt(), 1);
  EXPECT_NE(done->error().find("conv_out.weight"), std::string::npos) << done->error();
  EXPECT_NE(done->error().find("conv_out.bias"), std::string::npos) << done->error();
}

}  // namespace
}  // namespace dreambooth::testing
