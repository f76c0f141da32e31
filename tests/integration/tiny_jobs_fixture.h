// A fixture for end-to-end suites that run tiny-model jobs on a real dreamboothd (loopback, 9 s
// leases) with real dreambooth-worker processes they start themselves: the daemon, an SDK client,
// an uploaded set of two instance images, and helpers to start workers and read a job's events.
#ifndef DREAMBOOTH_TESTS_INTEGRATION_TINY_JOBS_FIXTURE_H_
#define DREAMBOOTH_TESTS_INTEGRATION_TINY_JOBS_FIXTURE_H_

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/integration/e2e_support.h"
#include "tests/testing/daemon.h"
#include "tests/testing/temp_dir.h"

namespace dreambooth::testing {

class TinyJobsTest : public ::testing::Test {
 protected:
  // dreamboothd flags beyond --data-dir and the listen addresses.
  virtual std::vector<std::string> DaemonArgs() const {
    return {"--lease-ttl=9s", "--sweep-interval=100ms"};
  }

  void SetUp() override {
    DaemonOptions options;
    options.data_dir = dir_.Join("data");
    options.extra_args = DaemonArgs();
    absl::StatusOr<std::unique_ptr<Daemon>> d = Daemon::Start(options);
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_ = std::move(*d);
    api_ = MakeApiClient(daemon_->address());
    std::vector<std::string> paths;
    for (int i = 0; i < 2; ++i) {
      paths.push_back(dir_.Join(absl::StrCat("toy", i, ".png")));
      WriteFile(paths.back(), InstancePng(i));
    }
    absl::StatusOr<v1::UploadImagesResponse> up = api_->UploadFiles(paths, "", "toys");
    ASSERT_TRUE(up.ok()) << up.status();
    set_ = up->image_set().id();
  }

  // A worker on this daemon (TRAIN tasks only, 2 threads) with `args` added; its log in the
  // test's folder. nullptr (and a test failure) when it cannot start.
  std::unique_ptr<WorkerProcess> StartWorker(const std::string& name,
                                             const std::vector<std::string>& args) {
    std::vector<std::string> all = {"--server",    daemon_->worker_address(),
                                    "--cache-dir", dir_.Join("cache-" + name),
                                    "--threads",   "2",
                                    "--no-sample"};
    all.insert(all.end(), args.begin(), args.end());
    absl::StatusOr<std::unique_ptr<WorkerProcess>> worker =
        WorkerProcess::Start(all, dir_.Join(absl::StrCat(name, "-", ++worker_starts_, ".log")));
    EXPECT_TRUE(worker.ok()) << worker.status();
    return worker.ok() ? std::move(*worker) : nullptr;
  }

  // Every stored event's message of the job, one per line.
  std::string Events(const std::string& job_id) {
    std::string all;
    (void)api_->WatchJob(job_id, 0, [&](const v1::JobEvent& e) {
      absl::StrAppend(&all, e.message(), "\n");
      return true;
    });
    return all;
  }

  // Creates the job, retrying FAILED_PRECONDITION (up to a minute) while the workers it needs
  // register.
  absl::StatusOr<v1::Job> CreateWhenWorkersRegistered(const v1::JobSpec& spec) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (true) {
      absl::StatusOr<v1::Job> job = api_->CreateJob(spec);
      if (job.ok() || !absl::IsFailedPrecondition(job.status()) ||
          std::chrono::steady_clock::now() > deadline) {
        return job;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  // Waits (up to 5 min) for the job to end; an error with the logs unless it SUCCEEDED.
  absl::StatusOr<v1::Job> WaitDone(const std::string& job_id, const WorkerProcess* worker) {
    absl::StatusOr<v1::Job> done = WaitForJob(*api_, job_id, IsTerminal, 300'000);
    if (done.ok() && done->state() != v1::JOB_STATE_SUCCEEDED) {
      return absl::InternalError(absl::StrCat("job ", job_id, " ended ",
                                              v1::JobState_Name(done->state()), ": ", done->error(),
                                              ProcessLogs(worker, daemon_->Log())));
    }
    return done;
  }

  // SHA-256 of the tensor data of the job's final UNet weights (FinalUNetDataDigest; "" and a
  // test failure when it has none).
  std::string FinalUNetDigest(const std::string& job_id) {
    const std::string digest = FinalUNetDataDigest(*api_, job_id, dir_.path());
    EXPECT_FALSE(digest.empty()) << "job " << job_id << " has no readable FINAL UNet";
    return digest;
  }

  TempDir dir_;
  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<client::Client> api_;
  std::string set_;  // two instance images
  int worker_starts_ = 0;
};

}  // namespace dreambooth::testing

#endif  // DREAMBOOTH_TESTS_INTEGRATION_TINY_JOBS_FIXTURE_H_
