// The real dreamboothd core (server::Server: services, SQLite, blob store, lease sweeper) running
// inside the test process on a loopback port, over a data directory in a TempDir, with what the
// worker-side suites need around it: a public-API client, queued jobs, and leases taken through
// the real WorkerGateway. Not thread-safe (one owner per object); the server itself is.
#ifndef DREAMBOOTH_TESTS_TESTING_TEST_SERVER_H_
#define DREAMBOOTH_TESTS_TESTING_TEST_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "client/client.h"
#include "server/options.h"
#include "server/server.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/worker_gateway_client.h"

namespace dreambooth::testing {

namespace v1 = ::dreambooth::v1;

class TestServer {
 public:
  // Starts on free loopback ports with `options` (its listen, worker_listen and data_dir are
  // replaced).
  static absl::StatusOr<std::unique_ptr<TestServer>> Start(server::ServerOptions options = {});
  // Shuts the server down.
  ~TestServer();
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  // "127.0.0.1:<port>"; the same across Restart().
  std::string address() const;
  // The worker service's "127.0.0.1:<port>"; the same across Restart().
  std::string worker_address() const;
  // The data directory (db.sqlite, blobs/).
  const std::string& data_dir() const { return options_.data_dir; }

  // Stops serving (graceful, short grace); the data directory is kept. Idempotent.
  void Stop();
  // Starts again on the same port and data directory (after Stop(), or stops first).
  absl::Status Restart();

  // The running server's core, to look behind the API; valid until Stop().
  server::ServiceCore& core() { return server_->core(); }
  // A client of the public API (its channel reconnects across Restart()).
  client::Client& api() { return *api_; }
  // A client of the worker listener: its gateway() stub reaches the WorkerGateway.
  WorkerGatewayClient& workers() { return *workers_; }

  // Uploads one small PNG into a new image set and creates a job on the built-in tiny model.
  absl::StatusOr<v1::Job> QueueJob();
  // Leases the next queued task (as a worker of every kind and the tiny model) for `worker_id`
  // through the WorkerGateway, without waiting. NOT_FOUND when none is queued.
  absl::StatusOr<v1::Task> Lease(const std::string& worker_id);

 private:
  TestServer() = default;
  absl::Status StartServer();

  TempDir dir_;
  server::ServerOptions options_;
  int port_ = 0;
  int worker_port_ = 0;
  std::unique_ptr<server::Server> server_;
  std::unique_ptr<client::Client> api_;
  std::unique_ptr<WorkerGatewayClient> workers_;
};

}  // namespace dreambooth::testing

#endif  // DREAMBOOTH_TESTS_TESTING_TEST_SERVER_H_
