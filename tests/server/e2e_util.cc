#include "tests/server/e2e_util.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "tests/testing/image_files.h"

namespace dreambooth::testing {

void E2eTest::StartDaemon(std::vector<std::string> extra_args) {
  daemon_.reset();  // stops a daemon started earlier in this test
  DaemonOptions options;
  options.data_dir = dir_.Join("data");
  options.extra_args = std::move(extra_args);
  auto daemon = Daemon::Start(options);
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  daemon_ = std::move(*daemon);
  client::ClientOptions client_options;
  client_options.target = daemon_->address();
  client_options.call_timeout_ms = 10'000;
  client_options.stream_timeout_ms = 60'000;
  client_ = std::make_unique<client::Client>(client_options);
  client_options.target = daemon_->worker_address();
  workers_ = std::make_unique<WorkerGatewayClient>(client_options);
}

void E2eTest::RestartDaemon() {
  DaemonOptions options = daemon_->options();
  daemon_->Stop(SIGTERM);
  daemon_.reset();
  auto daemon = Daemon::Start(options);
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  daemon_ = std::move(*daemon);
}

std::string E2eTest::UploadImages(int n, const std::string& display_name) {
  std::vector<client::UploadFile> files;
  for (int i = 0; i < n; ++i) {
    files.push_back(
        {"img" + std::to_string(i) + ".jpg",
         MakeJpeg(Noise(64 + 8 * i, 48, static_cast<uint32_t>(i + 1)), JpegColor::kRgb)});
  }
  auto response = client_->Upload(files, "", display_name);
  EXPECT_TRUE(response.ok()) << response.status();
  return response.ok() ? response->image_set().id() : "";
}

v1::JobSpec E2eTest::MinimalSpec(const std::string& image_set) {
  v1::JobSpec spec;
  spec.set_base_model("tiny");
  spec.set_instance_image_set(image_set);
  spec.set_instance_prompt("a photo of sks dog");
  spec.set_max_train_steps(10);
  return spec;
}

void TestWorker::Deadline(grpc::ClientContext* c) const {
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
}

std::optional<v1::Task> TestWorker::Lease(int wait_ms, std::vector<std::string> base_models,
                                          std::vector<v1::TaskKind> kinds) {
  grpc::ClientContext c;
  Deadline(&c);
  v1::LeaseTaskRequest request;
  request.set_worker_id(worker_id_);
  request.set_wait_ms(wait_ms);
  request.set_device("cpu");
  for (const auto& m : base_models) request.add_base_models(m);
  for (auto k : kinds) request.add_kinds(k);
  v1::LeaseTaskResponse response;
  const grpc::Status s = client_->gateway().LeaseTask(&c, request, &response);
  EXPECT_TRUE(s.ok()) << s.error_message();
  if (!s.ok() || !response.has_task()) return std::nullopt;
  return response.task();
}

grpc::Status TestWorker::Heartbeat(const std::string& token, v1::HeartbeatResponse* response) {
  grpc::ClientContext c;
  Deadline(&c);
  v1::HeartbeatRequest request;
  request.set_lease_token(token);
  v1::HeartbeatResponse local;
  return client_->gateway().Heartbeat(&c, request, response != nullptr ? response : &local);
}

grpc::Status TestWorker::Progress(const std::string& token, int64_t step, int64_t total,
                                  float loss) {
  grpc::ClientContext c;
  Deadline(&c);
  v1::ReportEventsRequest request;
  request.set_lease_token(token);
  v1::JobEvent* e = request.add_events();
  e->set_kind(v1::EVENT_KIND_PROGRESS);
  e->set_stage(v1::JOB_STAGE_TRAINING);
  e->set_step(step);
  e->set_total(total);
  e->set_loss(loss);
  v1::ReportEventsResponse response;
  return client_->gateway().ReportEvents(&c, request, &response);
}

grpc::Status TestWorker::Complete(const std::string& token, v1::JobState* state) {
  grpc::ClientContext c;
  Deadline(&c);
  v1::CompleteTaskRequest request;
  request.set_lease_token(token);
  v1::CompleteTaskResponse response;
  grpc::Status s = client_->gateway().CompleteTask(&c, request, &response);
  if (state != nullptr) *state = response.state();
  return s;
}

grpc::Status TestWorker::Fail(const std::string& token, const std::string& error, bool retryable,
                              v1::JobState* state) {
  grpc::ClientContext c;
  Deadline(&c);
  v1::FailTaskRequest request;
  request.set_lease_token(token);
  request.set_error(error);
  request.set_retryable(retryable);
  v1::FailTaskResponse response;
  grpc::Status s = client_->gateway().FailTask(&c, request, &response);
  if (state != nullptr) *state = response.state();
  return s;
}

std::string TestWorker::WriteBlob(const std::string& token, const std::string& bytes,
                                  grpc::Status* status) {
  grpc::ClientContext c;
  Deadline(&c);
  v1::WriteBlobResponse response;
  auto writer = client_->gateway().WriteBlob(&c, &response);
  v1::WriteBlobRequest request;
  request.mutable_header()->set_lease_token(token);
  request.mutable_header()->set_size_bytes(static_cast<int64_t>(bytes.size()));
  writer->Write(request);
  for (size_t off = 0; off < bytes.size(); off += 1 << 20) {
    request.Clear();
    request.set_chunk(bytes.substr(off, 1 << 20));
    if (!writer->Write(request)) break;
  }
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (status != nullptr) *status = s;
  return s.ok() ? response.digest() : "";
}

grpc::Status TestWorker::CommitCheckpoint(const std::string& token, int64_t step,
                                          v1::CheckpointKind kind, std::string* checkpoint_id) {
  const std::string weights = absl::StrCat("weights of ", token, " at step ", step);
  grpc::Status written;
  const std::string digest = WriteBlob(token, weights, &written);
  if (!written.ok()) return written;
  grpc::ClientContext c;
  Deadline(&c);
  v1::CommitCheckpointRequest request;
  request.set_lease_token(token);
  request.set_step(step);
  request.set_kind(kind);
  v1::CheckpointFile* f = request.add_files();
  f->set_path("unet/diffusion_pytorch_model.safetensors");
  f->set_digest(digest);
  f->set_size_bytes(static_cast<int64_t>(weights.size()));
  v1::CommitCheckpointResponse response;
  grpc::Status s = client_->gateway().CommitCheckpoint(&c, request, &response);
  if (checkpoint_id != nullptr) *checkpoint_id = response.checkpoint_id();
  return s;
}

grpc::Status TestWorker::Finish(const std::string& token, v1::JobState* state) {
  grpc::Status committed = CommitCheckpoint(token, 1);
  if (!committed.ok()) return committed;
  return Complete(token, state);
}

}  // namespace dreambooth::testing
