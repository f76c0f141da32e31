// Helpers for the end-to-end suites: a daemon + client fixture, image uploads, a minimal job spec
// and a scripted test worker that speaks the WorkerGateway protocol.
#ifndef DREAMBOOTH_TESTS_SERVER_E2E_UTIL_H_
#define DREAMBOOTH_TESTS_SERVER_E2E_UTIL_H_

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "client/client.h"
#include "tests/testing/daemon.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/worker_gateway_client.h"

namespace dreambooth::testing {

// Starts a fresh dreamboothd (with `extra_args`) and a client for each test.
class E2eTest : public ::testing::Test {
 protected:
  void StartDaemon(std::vector<std::string> extra_args = {});
  // Stops the daemon with SIGTERM and starts it again on the same port and data dir.
  void RestartDaemon();
  void SetUp() override { StartDaemon(); }

  // Uploads `n` small generated JPEGs into a new set; returns its id.
  std::string UploadImages(int n, const std::string& display_name = "subject");
  // A valid spec for the tiny model using `image_set`.
  static v1::JobSpec MinimalSpec(const std::string& image_set);

  TempDir dir_;
  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<client::Client> client_;  // the public API
  // The worker listener: its gateway() reaches the WorkerGateway (the daemon runs on loopback
  // without API keys, so no worker key is needed).
  std::unique_ptr<WorkerGatewayClient> workers_;
};

// A scripted worker using the raw gateway stub.
class TestWorker {
 public:
  TestWorker(WorkerGatewayClient* client, std::string worker_id)
      : client_(client), worker_id_(std::move(worker_id)) {}

  // LeaseTask; nullopt when no task (or on error, which is recorded as a test failure).
  std::optional<v1::Task> Lease(int wait_ms = 0, std::vector<std::string> base_models = {},
                                std::vector<v1::TaskKind> kinds = {});
  grpc::Status Heartbeat(const std::string& token, v1::HeartbeatResponse* response = nullptr);
  grpc::Status Progress(const std::string& token, int64_t step, int64_t total, float loss);
  grpc::Status Complete(const std::string& token, v1::JobState* state = nullptr);
  grpc::Status Fail(const std::string& token, const std::string& error, bool retryable,
                    v1::JobState* state = nullptr);
  // WriteBlob; returns the digest ("" on failure, with *status set).
  std::string WriteBlob(const std::string& token, const std::string& bytes,
                        grpc::Status* status = nullptr);
  // Writes one small file under the lease and commits it as checkpoint `kind` at `step`.
  grpc::Status CommitCheckpoint(const std::string& token, int64_t step,
                                v1::CheckpointKind kind = v1::CHECKPOINT_KIND_FINAL,
                                std::string* checkpoint_id = nullptr);
  // Commits a FINAL checkpoint, then completes the task (what a real worker does).
  grpc::Status Finish(const std::string& token, v1::JobState* state = nullptr);

 private:
  void Deadline(grpc::ClientContext* c) const;
  WorkerGatewayClient* client_;
  std::string worker_id_;
};

}  // namespace dreambooth::testing

#endif  // DREAMBOOTH_TESTS_SERVER_E2E_UTIL_H_
