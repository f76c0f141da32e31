// Helpers of the end-to-end suites: a real dreambooth-worker process, the public API's SDK client
// (client/client.h) set up for tests, and test inputs. Not thread-safe: one owner per object.
#ifndef DREAMBOOTH_TESTS_INTEGRATION_E2E_SUPPORT_H_
#define DREAMBOOTH_TESTS_INTEGRATION_E2E_SUPPORT_H_

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/client.h"

namespace dreambooth::testing {

namespace v1 = ::dreambooth::v1;

// True for SUCCEEDED, FAILED and CANCELLED (a WaitForJob predicate).
bool IsTerminal(const v1::Job& job);

// A dreambooth-worker child process; output goes to `log_path`. Killed (SIGKILL) on destruction
// if still running.
class WorkerProcess {
 public:
  static absl::StatusOr<std::unique_ptr<WorkerProcess>> Start(const std::vector<std::string>& args,
                                                              const std::string& log_path);
  ~WorkerProcess();
  // Sends `signal` and waits up to `timeout_ms` for the exit; returns the wait status, or -1
  // when it did not exit in time.
  int Stop(int signal, int timeout_ms = 60'000);
  pid_t pid() const { return pid_; }
  std::string Log() const;

 private:
  pid_t pid_ = -1;
  std::string log_path_;
};

// The worker's and the daemon's logs, for a failure message ("" for a missing worker).
std::string ProcessLogs(const WorkerProcess* worker, const std::string& daemon_log);

// The dreambooth-worker binary this build produced.
std::string WorkerBinary();

// A client of the public API at `address` (the SDK users use), with the suites' deadlines:
// 10 s per unary call, 10 min per stream.
std::unique_ptr<client::Client> MakeApiClient(const std::string& address);

// Polls GetJob until `done(job)` or the timeout (DEADLINE_EXCEEDED with the last state).
absl::StatusOr<v1::Job> WaitForJob(client::Client& api, const std::string& job_id,
                                   const std::function<bool(const v1::Job&)>& done, int timeout_ms);

// A small synthetic instance image (PNG), distinct per `index`.
std::string InstancePng(int index, int size = 64);

// A JobSpec on the built-in tiny model sized for tests: resolution 64, constant LR, fixed seed.
v1::JobSpec TinySpec(const std::string& instance_set, int max_train_steps, int checkpointing_steps);

// SHA-256 of the tensor data of the job's FINAL UNet weights: the safetensors file without its
// header (whose metadata names the job and attempt), downloaded under `scratch_dir`. "" when the
// job has no FINAL checkpoint or the file cannot be read.
std::string FinalUNetDataDigest(client::Client& api, const std::string& job_id,
                                const std::string& scratch_dir);

}  // namespace dreambooth::testing

#endif  // DREAMBOOTH_TESTS_INTEGRATION_E2E_SUPPORT_H_
