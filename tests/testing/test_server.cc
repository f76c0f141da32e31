#include "tests/testing/test_server.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "tests/testing/image_files.h"

namespace dreambooth::testing {

absl::StatusOr<std::unique_ptr<TestServer>> TestServer::Start(server::ServerOptions options) {
  std::unique_ptr<TestServer> s(new TestServer());
  s->options_ = std::move(options);
  s->options_.listen = "127.0.0.1:0";
  s->options_.worker_listen = "127.0.0.1:0";
  s->options_.data_dir = s->dir_.Join("data");
  absl::Status started = s->StartServer();
  if (!started.ok()) return started;
  // From now on the same port, so that clients' channels find the server again after Restart().
  s->port_ = s->server_->port();
  s->worker_port_ = s->server_->worker_port();
  s->options_.listen = s->address();
  s->options_.worker_listen = s->worker_address();
  client::ClientOptions api;
  api.target = s->address();
  api.call_timeout_ms = 10'000;
  api.stream_timeout_ms = 60'000;
  s->api_ = std::make_unique<client::Client>(api);
  api.target = s->worker_address();
  s->workers_ = std::make_unique<WorkerGatewayClient>(api);
  return s;
}

TestServer::~TestServer() { Stop(); }

absl::Status TestServer::StartServer() {
  absl::StatusOr<std::unique_ptr<server::Server>> server = server::Server::Start(options_);
  if (!server.ok()) return server.status();
  server_ = std::move(*server);
  return absl::OkStatus();
}

std::string TestServer::address() const { return absl::StrCat("127.0.0.1:", port_); }

std::string TestServer::worker_address() const { return absl::StrCat("127.0.0.1:", worker_port_); }

void TestServer::Stop() {
  if (server_ == nullptr) return;
  server_->Shutdown(/*grace_ms=*/500);
  server_.reset();
}

absl::Status TestServer::Restart() {
  Stop();
  return StartServer();
}

absl::StatusOr<v1::Job> TestServer::QueueJob() {
  absl::StatusOr<v1::UploadImagesResponse> uploaded =
      api_->Upload({{"subject.png", MakePng(Noise(64, 64, 7), PngVariant::kRgb8)}}, "", "subject");
  if (!uploaded.ok()) return uploaded.status();
  v1::JobSpec spec;
  spec.set_base_model("tiny");
  spec.set_instance_image_set(uploaded->image_set().id());
  spec.set_instance_prompt("a photo of sks dog");
  spec.set_max_train_steps(10);
  return api_->CreateJob(spec);
}

absl::StatusOr<v1::Task> TestServer::Lease(const std::string& worker_id) {
  v1::LeaseTaskRequest request;
  request.set_worker_id(worker_id);
  request.set_device("cpu");
  v1::LeaseTaskResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  absl::Status status =
      client::FromGrpc(workers_->gateway().LeaseTask(&context, request, &response));
  if (!status.ok()) return status;
  if (!response.has_task()) return absl::NotFoundError("no queued task to lease");
  return response.task();
}

}  // namespace dreambooth::testing
