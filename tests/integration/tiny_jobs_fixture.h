// A fixture for end-to-end suites that run tiny-model jobs on a real dreamboothd (loopback, 9 s
// leases) with real dreambooth-worker processes they start themselves: the daemon, an SDK client,
// an uploaded set of two instance images, and helpers to start workers and read a job's events.
#ifndef DREAMBOOTH_TESTS_INTEGRATION_TINY_JOBS_FIXTURE_H_
#define DREAMBOOTH_TESTS_INTEGRATION_TINY_JOBS_FIXTURE_H_

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/integration/e2e_support.h"
#include "tests/testing/daemon.h"
#include "tests/testing/temp_dir.h"

namespace dreambooth::testing {

class TinyJobsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DaemonOptions options;
    options.data_dir = dir_.Join("data");
    options.extra_args = {"--lease-ttl=9s", "--sweep-interval=100ms"};
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

  TempDir dir_;
  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<client::Client> api_;
  std::string set_;  // two instance images
  int worker_starts_ = 0;
};

}  // namespace dreambooth::testing

#endif  // DREAMBOOTH_TESTS_INTEGRATION_TINY_JOBS_FIXTURE_H_
