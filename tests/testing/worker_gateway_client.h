// A client of dreamboothd's worker listener for tests and benchmarks that play a worker: the
// public SDK's Client (health checks, its channel with TLS and the API key of ClientOptions) plus
// the raw WorkerGateway stub, which the public SDK does not expose. Thread-safe like Client.
#ifndef DREAMBOOTH_TESTS_TESTING_WORKER_GATEWAY_CLIENT_H_
#define DREAMBOOTH_TESTS_TESTING_WORKER_GATEWAY_CLIENT_H_

#include <memory>
#include <utility>

#include "client/client.h"
#include "dreambooth/v1/worker_gateway.grpc.pb.h"

namespace dreambooth::testing {

class WorkerGatewayClient : public client::Client {
 public:
  // options.target should be the daemon's worker listener (Daemon::worker_address()).
  explicit WorkerGatewayClient(client::ClientOptions options)
      : Client(std::move(options)), gateway_(v1::WorkerGateway::NewStub(channel())) {}

  // The raw stub (no retries, no deadlines added); lives as long as this client.
  v1::WorkerGateway::Stub& gateway() { return *gateway_; }

 private:
  std::unique_ptr<v1::WorkerGateway::Stub> gateway_;
};

}  // namespace dreambooth::testing

#endif  // DREAMBOOTH_TESTS_TESTING_WORKER_GATEWAY_CLIENT_H_
