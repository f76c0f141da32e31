#include "server/worker_supervisor.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "tests/testing/temp_dir.h"

namespace dreambooth::server {
namespace {
namespace fs = std::filesystem;

TEST(PlanLocalWorkersTest, AutoRunsOneWorkerPerVisibleGpu) {
  testing::TempDir dev;
  for (const char* node : {"nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "null"}) {
    std::ofstream(dev.Join(node)) << "";
  }
  absl::StatusOr<std::vector<WorkerSlot>> slots = PlanLocalWorkers("auto", nullptr, dev.path());
  ASSERT_TRUE(slots.ok()) << slots.status();
  ASSERT_EQ(slots->size(), 2u);
  EXPECT_EQ((*slots)[0].device, "cuda:0");
  EXPECT_EQ((*slots)[0].cuda_visible_devices, "0");
  EXPECT_EQ((*slots)[1].cuda_visible_devices, "1");

  // CUDA_VISIBLE_DEVICES wins over the device nodes.
  slots = PlanLocalWorkers("auto", "3, 5", dev.path());
  ASSERT_TRUE(slots.ok());
  ASSERT_EQ(slots->size(), 2u);
  EXPECT_EQ((*slots)[0].cuda_visible_devices, "3");
  EXPECT_EQ((*slots)[1].cuda_visible_devices, "5");

  // An explicit count is spread round-robin over the GPUs.
  slots = PlanLocalWorkers("3", nullptr, dev.path());
  ASSERT_TRUE(slots.ok());
  ASSERT_EQ(slots->size(), 3u);
  EXPECT_EQ((*slots)[2].cuda_visible_devices, "0");
  EXPECT_EQ((*slots)[2].index, 2);
}

TEST(PlanLocalWorkersTest, NoGpuMeansCpuWorkersThatSeeNoGpu) {
  testing::TempDir dev;
  for (const char* visible : {static_cast<const char*>(nullptr), "", "-1"}) {
    absl::StatusOr<std::vector<WorkerSlot>> slots = PlanLocalWorkers("auto", visible, dev.path());
    ASSERT_TRUE(slots.ok());
    ASSERT_EQ(slots->size(), 1u);
    EXPECT_EQ((*slots)[0].device, "cpu");
    EXPECT_EQ((*slots)[0].cuda_visible_devices, "");
  }
  absl::StatusOr<std::vector<WorkerSlot>> two = PlanLocalWorkers("2", nullptr, dev.path());
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->size(), 2u);
  EXPECT_EQ(PlanLocalWorkers("0", nullptr, dev.path()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanLocalWorkers("many", nullptr, dev.path()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A stand-in worker: prints its environment and arguments, crashes on its first run (exit 3)
// and then runs until SIGTERM (or ignores SIGTERM when asked to).
std::string WriteFakeWorker(const testing::TempDir& dir) {
  const std::string path = dir.Join("fake-worker.sh");
  std::ofstream(path) << R"(#!/bin/sh
marker="$(dirname "$0")/started-once"
echo "cuda=[$CUDA_VISIBLE_DEVICES] args: $*"
if [ ! -f "$marker" ]; then touch "$marker"; echo "crashing"; exit 3; fi
case "$*" in
  *--ignore-term*) trap '' TERM ;;
  *) trap 'echo "got SIGTERM"; exit 0' TERM ;;
esac
echo "ready"
while true; do sleep 0.05; done
)";
  chmod(path.c_str(), 0755);
  return path;
}

class LogLines {
 public:
  void Add(const std::string& line) {
    std::lock_guard<std::mutex> lock(mu_);
    lines_.push_back(line);
  }
  bool Contains(const std::string& text) const {
    std::lock_guard<std::mutex> lock(mu_);
    for (const std::string& l : lines_) {
      if (l.find(text) != std::string::npos) return true;
    }
    return false;
  }
  bool WaitFor(const std::string& text, int timeout_ms = 10'000) const {
    for (int waited = 0; waited < timeout_ms; waited += 20) {
      if (Contains(text)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
};

TEST(WorkerSupervisorTest, RestartsACrashedWorkerWithBackoffAndPrefixesItsOutput) {
  testing::TempDir dir;
  LogLines log;
  WorkerSupervisorOptions options;
  options.worker_binary = WriteFakeWorker(dir);
  options.server_address = "127.0.0.1:1";
  options.cache_dir = dir.Join("cache");
  options.initial_backoff_ms = 300;
  options.grace_ms = 5000;
  options.log = [&](const std::string& line) { log.Add(line); };
  WorkerSlot slot;
  slot.index = 4;
  slot.device = "cpu";
  const auto t0 = std::chrono::steady_clock::now();
  absl::StatusOr<std::unique_ptr<WorkerSupervisor>> s = WorkerSupervisor::Start(options, {slot});
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE(log.WaitFor("[worker-4] crashing"));
  EXPECT_TRUE(log.Contains("[worker-4] cuda=[] args: --server 127.0.0.1:1 --cache-dir"));
  // Restarted after the 300 ms backoff; the second run stays up (its SIGTERM trap installed once
  // it says "ready").
  ASSERT_TRUE(log.WaitFor("[worker-4] ready"));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(300));
  EXPECT_EQ((*s)->starts()[0], 2);
  const pid_t pid = (*s)->pids()[0];
  EXPECT_GT(pid, 0);
  (*s)->Stop();
  EXPECT_TRUE(log.Contains("[worker-4] got SIGTERM"));
  EXPECT_NE(kill(pid, 0), 0);  // gone (and reaped)
}

TEST(WorkerSupervisorTest, KillsAWorkerThatIgnoresSigtermAfterTheGracePeriod) {
  testing::TempDir dir;
  LogLines log;
  WorkerSupervisorOptions options;
  options.worker_binary = WriteFakeWorker(dir);
  std::ofstream(dir.Join("started-once")) << "";  // skip the crash
  options.server_address = "127.0.0.1:1";
  options.cache_dir = dir.Join("cache");
  options.extra_args = {"--ignore-term"};
  options.grace_ms = 300;
  options.log = [&](const std::string& line) { log.Add(line); };
  WorkerSlot slot;
  slot.device = "cuda:0";
  slot.cuda_visible_devices = "7";
  absl::StatusOr<std::unique_ptr<WorkerSupervisor>> s = WorkerSupervisor::Start(options, {slot});
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE(log.WaitFor("[worker-0] ready"));
  EXPECT_TRUE(log.Contains("[worker-0] cuda=[7] args:"));
  EXPECT_TRUE(log.Contains("--device cuda:0"));
  const pid_t pid = (*s)->pids()[0];
  EXPECT_GT(pid, 0);
  const auto t0 = std::chrono::steady_clock::now();
  (*s)->Stop();
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  // The child ignores SIGTERM: only the SIGKILL after the grace period ends it.
  EXPECT_NE(kill(pid, 0), 0);  // gone (and reaped)
  EXPECT_GE(ms, 300);
  EXPECT_LT(ms, 5000);
}

TEST(FindWorkerBinaryTest, PrefersTheFlagThenTheBuildTree) {
  testing::TempDir dir;
  EXPECT_EQ(FindWorkerBinary("/opt/w", dir.Join("server/dreamboothd")), "/opt/w");
  fs::create_directories(dir.Join("server"));
  fs::create_directories(dir.Join("worker"));
  std::ofstream(dir.Join("worker/dreambooth-worker")) << "";
  unsetenv("DB_WORKER_BINARY");
  EXPECT_EQ(FindWorkerBinary("", dir.Join("server/dreamboothd")),
            fs::weakly_canonical(dir.Join("worker/dreambooth-worker")).string());
}

}  // namespace
}  // namespace dreambooth::server
