// dreamboothd's gRPC servers: the public DreamBooth service on --listen and the WorkerGateway on
// --worker-listen (each with the standard health service and server reflection), TLS and API-key
// authentication (auth.h), plus the background lease sweeper. Thread-safe.
#ifndef DREAMBOOTH_SERVER_SERVER_H_
#define DREAMBOOTH_SERVER_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/auth.h"
#include "server/dreambooth_service.h"
#include "server/metrics.h"
#include "server/options.h"
#include "server/service_core.h"
#include "server/webhook_dispatcher.h"
#include "server/worker_gateway_service.h"

namespace dreambooth::server {

class Server {
 public:
  // Opens the data dir and starts serving. UNAVAILABLE when an address cannot be bound;
  // INVALID_ARGUMENT for an insecure configuration (plaintext or --auth=none off loopback).
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options);
  // Calls Shutdown().
  ~Server();

  // The bound port (useful with a ":0" listen address).
  int port() const { return port_; }
  // The worker service's bound port.
  int worker_port() const { return worker_port_; }
  // The metrics endpoint's bound port (0 without --metrics-listen).
  int metrics_port() const { return metrics_port_; }
  // A worker credential valid for this process's lifetime: the daemon's local workers get it.
  const std::string& local_worker_key() const { return local_worker_key_; }

  // Graceful stop: health goes NOT_SERVING, new calls are refused, in-flight calls get up to
  // `grace_ms` to finish (then they are cancelled), the sweeper stops and the database closes.
  // Idempotent.
  void Shutdown(int64_t grace_ms = 5000) ABSL_LOCKS_EXCLUDED(mu_);

  ServiceCore& core() { return *core_; }

 private:
  Server() = default;
  void SweepLoop() ABSL_LOCKS_EXCLUDED(mu_);
  // Runs ServiceCore::RunMaintenance at start and every --gc-interval until shutdown.
  void MaintenanceLoop() ABSL_LOCKS_EXCLUDED(mu_);

  std::unique_ptr<ServiceCore> core_;
  std::unique_ptr<Authenticator> auth_;
  std::string local_worker_key_;
  std::unique_ptr<DreamBoothService> public_service_;
  std::unique_ptr<WorkerGatewayService> gateway_service_;
  std::unique_ptr<grpc::Server> grpc_server_;
  std::unique_ptr<grpc::Server> worker_server_;
  int port_ = 0;
  int worker_port_ = 0;
  std::unique_ptr<Metrics> metrics_;  // with --metrics-listen; outlives the gRPC servers' calls
  std::unique_ptr<WebhookDispatcher> webhooks_;
  int metrics_port_ = 0;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread sweeper_;
  std::thread maintainer_;
};

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_SERVER_H_
