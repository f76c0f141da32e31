#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/crypto.h"
#include "common/file_io.h"
#include "common/status_macros.h"
#include "server/rpc_metrics.h"

namespace dreambooth::server {

// grpc.health.v1 service name whose status is the daemon's readiness (ServiceCore::CheckReadiness),
// refreshed this often by the sweep loop.
constexpr char kReadinessService[] = "readiness";
constexpr absl::Duration kReadinessInterval = absl::Seconds(2);
namespace {

// True for 127.0.0.0/8, ::1, localhost and unix sockets: addresses only this host can reach.
bool IsLoopback(const std::string& address) {
  if (absl::StartsWith(address, "unix:")) return true;
  std::string host = address.substr(0, address.rfind(':'));
  if (absl::StartsWith(host, "[") && absl::EndsWith(host, "]")) {
    host = host.substr(1, host.size() - 2);
  }
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

struct Transport {
  std::shared_ptr<grpc::ServerCredentials> credentials;
  bool require_keys = false;
};

// Checks the listeners' security settings and builds their credentials.
absl::StatusOr<Transport> PlanTransport(const ServerOptions& options) {
  const bool loopback_only = IsLoopback(options.listen) && IsLoopback(options.worker_listen);
  const bool tls = !options.tls_cert_file.empty() || !options.tls_key_file.empty();
  Transport t;
  if (tls) {
    if (options.tls_cert_file.empty() || options.tls_key_file.empty()) {
      return absl::InvalidArgumentError("--tls-cert and --tls-key must be given together");
    }
    grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
    ASSIGN_OR_RETURN(pair.cert_chain, ReadFileToString(options.tls_cert_file));
    ASSIGN_OR_RETURN(pair.private_key, ReadFileToString(options.tls_key_file));
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back(std::move(pair));
    t.credentials = grpc::SslServerCredentials(ssl);
  } else {
    for (const std::string* address : {&options.listen, &options.worker_listen}) {
      if (!IsLoopback(*address) && !options.allow_insecure) {
        return absl::InvalidArgumentError(
            absl::StrCat("refusing to serve plaintext on ", *address,
                         ", which is not a loopback address: give --tls-cert and --tls-key, or "
                         "--allow-insecure on a network you trust"));
      }
    }
    t.credentials = grpc::InsecureServerCredentials();
  }
  if (options.auth == "api-keys") {
    t.require_keys = true;
  } else if (options.auth == "none") {
    if (!loopback_only) {
      return absl::InvalidArgumentError(
          "--auth=none is allowed only when --listen and --worker-listen are loopback addresses");
    }
  } else if (options.auth == "auto") {
    t.require_keys = !loopback_only;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--auth must be auto, api-keys or none, got '", options.auth, "'"));
  }
  return t;
}

std::unique_ptr<grpc::Server> BuildServer(const ServerOptions& options, const std::string& address,
                                          const std::shared_ptr<grpc::ServerCredentials>& creds,
                                          grpc::Service* service, int* port, Metrics* metrics) {
  grpc::ServerBuilder builder;
  if (metrics != nullptr || options.access_log) {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
    creators.push_back(NewRpcMetricsFactory(metrics, options.access_log));
    builder.experimental().SetInterceptorCreators(std::move(creators));
  }
  builder.AddListeningPort(address, creds, port);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  // Allow idle watchers' keepalive pings once a minute without GOAWAY(too_many_pings).
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 30'000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  builder.RegisterService(service);
  return builder.BuildAndStart();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options) {
  ASSIGN_OR_RETURN(Transport transport, PlanTransport(options));
  std::unique_ptr<Server> server(new Server());
  absl::StatusOr<std::unique_ptr<ServiceCore>> core = ServiceCore::Open(options);
  if (!core.ok()) return core.status();
  server->core_ = std::move(*core);
  server->local_worker_key_ = absl::StrCat("dbk_local_", RandomHex(32));
  server->auth_ = std::make_unique<Authenticator>(transport.require_keys, &server->core_->keys(),
                                                  server->local_worker_key_);
  server->public_service_ =
      std::make_unique<DreamBoothService>(server->core_.get(), server->auth_.get());
  server->gateway_service_ =
      std::make_unique<WorkerGatewayService>(server->core_.get(), server->auth_.get());
  server->core_->SetTaskAvailableCallback(
      [gateway = server->gateway_service_.get()] { gateway->WakeLongPolls(); });
  if (!options.metrics_listen.empty()) {
    server->metrics_ =
        std::make_unique<Metrics>([core = server->core_.get()] { return core->MetricsSnapshot(); });
    ASSIGN_OR_RETURN(server->metrics_port_, server->metrics_->Serve(options.metrics_listen));
    server->core_->SetMetrics(server->metrics_.get());
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  server->grpc_server_ =
      BuildServer(options, options.listen, transport.credentials, server->public_service_.get(),
                  &server->port_, server->metrics_.get());
  if (server->grpc_server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen, " (address in use or invalid?)"));
  }
  server->worker_server_ =
      BuildServer(options, options.worker_listen, transport.credentials,
                  server->gateway_service_.get(), &server->worker_port_, server->metrics_.get());
  if (server->worker_server_ == nullptr || server->worker_port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on --worker-listen ",
                                               options.worker_listen,
                                               " (address in use or invalid?)"));
  }
  // Each listener's health service answers for "" and for the one service it serves.
  for (const auto& [s, name] : {std::pair<grpc::Server*, const char*>{server->grpc_server_.get(),
                                                                      "dreambooth.v1.DreamBooth"},
                                {server->worker_server_.get(), "dreambooth.v1.WorkerGateway"}}) {
    grpc::HealthCheckServiceInterface* health = s->GetHealthCheckService();
    health->SetServingStatus(true);
    health->SetServingStatus(name, true);
    health->SetServingStatus(kReadinessService, false);  // until the first check (SweepLoop)
  }
  WebhookDispatcher::Options webhook_options;
  webhook_options.max_attempts = options.webhook_max_attempts;
  webhook_options.initial_backoff_ms = options.webhook_initial_backoff_ms;
  webhook_options.timeout_ms = options.webhook_timeout_ms;
  webhook_options.concurrency = options.webhook_concurrency;
  server->webhooks_ = std::make_unique<WebhookDispatcher>(&server->core_->webhooks(),
                                                          server->metrics_.get(), webhook_options);
  server->webhooks_->Start();
  server->sweeper_ = std::thread([s = server.get()] { s->SweepLoop(); });
  if (options.gc_interval_ms > 0) {
    server->maintainer_ = std::thread([s = server.get()] { s->MaintenanceLoop(); });
  }
  spdlog::info("dreamboothd serving on port {} (workers: port {}; {}; {}; data dir {})",
               server->port_, server->worker_port_,
               options.tls_cert_file.empty() ? "plaintext" : "TLS",
               transport.require_keys ? "API keys required" : "no credentials (loopback only)",
               options.data_dir);
  if (server->metrics_ != nullptr) {
    spdlog::info("metrics on http://{}/metrics (port {})", options.metrics_listen,
                 server->metrics_port_);
  }
  return server;
}

Server::~Server() { Shutdown(); }

void Server::SweepLoop() {
  const absl::Duration interval = absl::Milliseconds(core_->options().sweep_interval_ms);
  absl::Time next_readiness = absl::InfinitePast();
  std::string last_readiness = "unknown";
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), interval)) return;
    }
    core_->SweepExpiredLeases();
    if (absl::Now() < next_readiness) continue;
    next_readiness = absl::Now() + kReadinessInterval;
    const absl::Status ready = core_->CheckReadiness();
    for (grpc::Server* s : {grpc_server_.get(), worker_server_.get()}) {
      s->GetHealthCheckService()->SetServingStatus(kReadinessService, ready.ok());
    }
    const std::string now = ready.ok() ? "ready" : std::string(ready.message());
    if (now != last_readiness) {
      spdlog::info("readiness: {}", now);
      last_readiness = now;
    }
  }
}

void Server::MaintenanceLoop() {
  const absl::Duration interval = absl::Milliseconds(core_->options().gc_interval_ms);
  while (true) {
    absl::StatusOr<storage::GcReport> report = core_->RunMaintenance();
    if (!report.ok()) spdlog::warn("maintenance failed: {}", report.status().ToString());
    absl::MutexLock lock(&mu_);
    if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), interval)) return;
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
    const auto deadline = std::chrono::system_clock::now() + std::chrono::milliseconds(grace_ms);
    // Both at once: each Shutdown only stops new calls and sets the deadline of in-flight ones.
    std::thread worker_shutdown([&] {
      if (worker_server_ == nullptr) return;
      worker_server_->GetHealthCheckService()->SetServingStatus(false);
      worker_server_->Shutdown(deadline);
    });
    grpc_server_->Shutdown(deadline);
    worker_shutdown.join();
    if (worker_server_ != nullptr) worker_server_->Wait();
    grpc_server_->Wait();
  }
  if (sweeper_.joinable()) sweeper_.join();
  if (maintainer_.joinable()) maintainer_.join();
  if (webhooks_ != nullptr) webhooks_->Stop();
  if (core_ != nullptr) core_->progress().FlushDue(core_->NowMs(), /*all=*/true);
  metrics_.reset();  // stops scrapes before the database closes
  core_.reset();     // closes the database
  spdlog::info("shutdown complete; database closed");
}

}  // namespace dreambooth::server
