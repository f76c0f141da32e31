// Data parallel with real processes: two `dbtool train` ranks started by hand on loopback. SIGKILL
// of rank 1 after the first resume state makes rank 0 fail at once (not at the collective
// timeout); both ranks restarted with --resume-from latest finish with exactly the weights of a
// run that was never interrupted.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "tests/train/test_util.h"
#include "worker/diffusion/io/safetensors.h"
#include "worker/train/collective.h"

extern char** environ;

namespace dreambooth::train {
namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using testing::TempDir;

pid_t Spawn(const std::vector<std::string>& args, const std::string& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0].c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : -1;
}

// Waits up to `timeout` for `pid`; returns its wait status, or -1 on timeout.
int WaitFor(pid_t pid, std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

bool Succeeded(int status) { return status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0; }

class DistributedKillTest : public ::testing::Test {
 protected:
  void SetUp() override { testing::WriteImageSet(tmp_.Join("instances"), 3, 40, 32, 41); }

  std::vector<std::string> Rank(int rank, int port, const std::string& out,
                                const std::string& resume) {
    std::vector<std::string> args = {DB_DBTOOL_PATH,
                                     "train",
                                     "--base-model=tiny",
                                     "--instance-dir=" + tmp_.Join("instances"),
                                     "--instance-prompt=a photo of sks dog",
                                     "--resolution=32",
                                     "--max-train-steps=30",
                                     "--checkpointing-steps=2",
                                     "--learning-rate=1e-3",
                                     "--seed=5",
                                     "--threads=1",
                                     "--world-size=2",
                                     "--rank=" + std::to_string(rank),
                                     "--rendezvous=127.0.0.1:" + std::to_string(port),
                                     "--collective-timeout-ms=30000",
                                     "--latent-cache-dir=" + tmp_.Join("latents"),
                                     "--output=" + tmp_.Join(out)};
    if (!resume.empty()) args.push_back("--resume-from=" + resume);
    return args;
  }

  // Runs both ranks to the end; true when both succeed.
  bool RunBoth(const std::string& out, const std::string& resume) {
    const int port = FreeLoopbackPort();
    const pid_t r0 = Spawn(Rank(0, port, out, resume), tmp_.Join(out + "-r0.log"));
    const pid_t r1 = Spawn(Rank(1, port, out, resume), tmp_.Join(out + "-r1.log"));
    const bool ok0 = Succeeded(WaitFor(r0, std::chrono::minutes(5)));
    const bool ok1 = Succeeded(WaitFor(r1, std::chrono::minutes(5)));
    return ok0 && ok1;
  }

  TempDir tmp_;
};

TEST_F(DistributedKillTest, KillingARankFailsTheOtherAtOnceAndTheRestartResumesToTheSameWeights) {
  ASSERT_TRUE(RunBoth("full", "")) << "uninterrupted run failed; see " << tmp_.path();

  const int port = FreeLoopbackPort();
  const pid_t r0 = Spawn(Rank(0, port, "cut", ""), tmp_.Join("cut-r0.log"));
  const pid_t r1 = Spawn(Rank(1, port, "cut", ""), tmp_.Join("cut-r1.log"));
  ASSERT_GT(r0, 0);
  ASSERT_GT(r1, 0);
  // Kill rank 1 once rank 0 has written the resume state of step 2.
  const Clock::time_point deadline = Clock::now() + std::chrono::minutes(3);
  while (!fs::exists(tmp_.Join("cut/resume/step-00000002")) && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(fs::exists(tmp_.Join("cut/resume/step-00000002")));
  ::kill(r1, SIGKILL);
  ::waitpid(r1, nullptr, 0);
  const Clock::time_point killed = Clock::now();
  const int status = WaitFor(r0, std::chrono::seconds(25));
  ASSERT_NE(status, -1) << "rank 0 did not notice its peer's death";
  EXPECT_FALSE(Succeeded(status));
  const double noticed_s = std::chrono::duration<double>(Clock::now() - killed).count();
  std::printf("rank 0 exited %.2f s after rank 1 was killed\n", noticed_s);
  EXPECT_LT(noticed_s, 10.0);  // far below the 30 s collective timeout
  ASSERT_FALSE(fs::exists(tmp_.Join("cut/final")));

  ASSERT_TRUE(RunBoth("cut", "latest")) << "resumed run failed; see " << tmp_.path();
  auto a =
      diffusion::ReadSafetensors(tmp_.Join("full/final/unet/diffusion_pytorch_model.safetensors"));
  auto b =
      diffusion::ReadSafetensors(tmp_.Join("cut/final/unet/diffusion_pytorch_model.safetensors"));
  ASSERT_TRUE(a.ok() && b.ok());
  for (const auto& [name, t] : *a) EXPECT_TRUE(at::equal(t, b->at(name))) << name;
}

}  // namespace
}  // namespace dreambooth::train
