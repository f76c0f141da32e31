// Helpers of the end-to-end suites: a real dreambooth-worker process, and thin wrappers over the
// public DreamBooth API (upload, jobs, watch, checkpoints, sample) with deadlines.
// Not thread-safe: one owner per object.
#ifndef DREAMBOOTH_TESTS_INTEGRATION_E2E_SUPPORT_H_
#define DREAMBOOTH_TESTS_INTEGRATION_E2E_SUPPORT_H_

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dreambooth/v1/service.grpc.pb.h"

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

// The dreambooth-worker binary this build produced.
std::string WorkerBinary();

// Client of one server's public API.
class ApiClient {
 public:
  explicit ApiClient(const std::string& address);

  // Uploads `files` (name, bytes) into a new image set; returns its id.
  absl::StatusOr<std::string> UploadImages(
      const std::vector<std::pair<std::string, std::string>>& files);
  absl::StatusOr<v1::Job> CreateJob(const v1::JobSpec& spec, const std::string& request_id = "");
  absl::StatusOr<v1::Job> GetJob(const std::string& job_id);
  absl::StatusOr<v1::Job> CancelJob(const std::string& job_id);
  // Polls GetJob until `done(job)` or the timeout (DEADLINE_EXCEEDED with the last state).
  absl::StatusOr<v1::Job> WaitForJob(const std::string& job_id,
                                     const std::function<bool(const v1::Job&)>& done,
                                     int timeout_ms);
  // Streams WatchJob from `after_sequence`, calling `on_event` for each event, until the stream
  // ends (the job is terminal), `on_event` returns false, or the timeout.
  absl::Status Watch(const std::string& job_id, int64_t after_sequence,
                     const std::function<bool(const v1::JobEvent&)>& on_event, int timeout_ms);
  absl::StatusOr<std::vector<v1::Checkpoint>> ListCheckpoints(const std::string& job_id);
  // Downloads every file of the checkpoint: path -> bytes, plus the manifest.
  absl::StatusOr<std::map<std::string, std::string>> DownloadCheckpoint(
      const std::string& checkpoint_id, v1::Checkpoint* manifest);
  // Runs Sample; returns every image message (progress messages are counted).
  absl::StatusOr<std::vector<v1::SampleImage>> Sample(const v1::SampleRequest& request,
                                                      int timeout_ms, int* progress_messages);

 private:
  std::unique_ptr<v1::DreamBooth::Stub> stub_;
};

// A small synthetic instance image (PNG), distinct per `index`.
std::string InstancePng(int index, int size = 64);

// A JobSpec on the built-in tiny model sized for tests: resolution 64, constant LR, fixed seed.
v1::JobSpec TinySpec(const std::string& instance_set, int max_train_steps, int checkpointing_steps);

}  // namespace dreambooth::testing

#endif  // DREAMBOOTH_TESTS_INTEGRATION_E2E_SUPPORT_H_
