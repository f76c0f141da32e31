#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace dreambooth::server {
namespace {
const char* const kServiceNames[] = {"dreambooth.v1.DreamBooth", "dreambooth.v1.WorkerGateway"};
}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options) {
  std::unique_ptr<Server> server(new Server());
  absl::StatusOr<std::unique_ptr<ServiceCore>> core = ServiceCore::Open(options);
  if (!core.ok()) return core.status();
  server->core_ = std::move(*core);
  server->public_service_ = std::make_unique<DreamBoothService>(server->core_.get());
  server->gateway_service_ = std::make_unique<WorkerGatewayService>(server->core_.get());
  server->core_->SetTaskAvailableCallback(
      [gateway = server->gateway_service_.get()] { gateway->WakeLongPolls(); });

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &server->port_);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  // Allow idle watchers' keepalive pings once a minute without GOAWAY(too_many_pings).
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 30'000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  builder.RegisterService(server->public_service_.get());
  builder.RegisterService(server->gateway_service_.get());
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen, " (address in use or invalid?)"));
  }
  grpc::HealthCheckServiceInterface* health = server->grpc_server_->GetHealthCheckService();
  health->SetServingStatus(true);
  for (const char* name : kServiceNames) health->SetServingStatus(name, true);
  server->sweeper_ = std::thread([s = server.get()] { s->SweepLoop(); });
  spdlog::info("dreamboothd serving on port {} (data dir {})", server->port_, options.data_dir);
  return server;
}

Server::~Server() { Shutdown(); }

void Server::SweepLoop() {
  const absl::Duration interval = absl::Milliseconds(core_->options().sweep_interval_ms);
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), interval)) return;
    }
    core_->SweepExpiredLeases();
  }
}

void Server::Shutdown(int64_t grace_ms) {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;  // wakes SweepLoop's Await when the lock is released
  }
  if (grpc_server_ != nullptr) {
    grpc::HealthCheckServiceInterface* health = grpc_server_->GetHealthCheckService();
    if (health != nullptr) health->SetServingStatus(false);
    spdlog::info("shutting down: health NOT_SERVING, draining in-flight calls");
    gateway_service_->StopLongPolls();
    grpc_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(grace_ms));
    grpc_server_->Wait();
  }
  if (sweeper_.joinable()) sweeper_.join();
  if (core_ != nullptr) core_->progress().FlushDue(core_->NowMs(), /*all=*/true);
  core_.reset();  // closes the database
  spdlog::info("shutdown complete; database closed");
}

}  // namespace dreambooth::server
