// The Prometheus endpoint of a real dreamboothd (--metrics-listen on loopback), scraped over
// HTTP before and after a real worker trains a job: the queue, job, worker, lease, RPC, upload,
// blob store and training metrics move as the job goes through.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/integration/e2e_support.h"
#include "tests/integration/tiny_jobs_fixture.h"

namespace dreambooth::testing {
namespace {

// GET http://127.0.0.1:<port>/metrics; "" when the request fails.
std::string Scrape(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (fd >= 0) ::close(fd);
    return "";
  }
  const std::string request = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
  if (::send(fd, request.data(), request.size(), 0) != static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return "";
  }
  std::string response;
  char buffer[65536];
  while (true) {
    const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    response.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  const size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

// The value of the sample whose name and labels are exactly `series` (e.g.
// `dreambooth_jobs{state="queued"}`); -1 when absent.
double Value(const std::string& text, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::StartsWith(line, absl::StrCat(series, " "))) continue;
    double value = 0;
    if (absl::SimpleAtod(line.substr(series.size() + 1), &value)) return value;
  }
  return -1;
}

class MetricsE2eTest : public TinyJobsTest {
 protected:
  std::vector<std::string> DaemonArgs() const override {
    return {"--lease-ttl=9s", "--sweep-interval=100ms", "--access-log",
            absl::StrCat("--metrics-listen=127.0.0.1:", metrics_port_)};
  }

  const int metrics_port_ = PickFreePort();
};

TEST_F(MetricsE2eTest, MetricsMoveWithAJob) {
  const std::string before = Scrape(metrics_port_);
  ASSERT_FALSE(before.empty()) << daemon_->Log();
  EXPECT_EQ(Value(before, "dreambooth_metrics_snapshot_ok"), 1);
  EXPECT_EQ(Value(before, "dreambooth_jobs{state=\"queued\"}"), 0);
  EXPECT_EQ(Value(before, "dreambooth_workers"), 0);
  // The fixture uploaded two images.
  EXPECT_GT(Value(before, "dreambooth_upload_bytes_total"), 0);
  EXPECT_EQ(Value(before, "dreambooth_blob_store_blobs"), 2);
  EXPECT_EQ(Value(before,
                  "dreambooth_rpc_duration_seconds_count{code=\"OK\",method=\"/"
                  "dreambooth.v1.DreamBooth/UploadImages\"}"),
            1)
      << before;

  absl::StatusOr<v1::Job> queued = api_->CreateJob(TinySpec(set_, /*max_train_steps=*/6, 0));
  ASSERT_TRUE(queued.ok()) << queued.status();
  const std::string waiting = Scrape(metrics_port_);
  EXPECT_EQ(Value(waiting, "dreambooth_jobs{state=\"queued\"}"), 1);
  // A bad request is counted with its code.
  v1::JobSpec bad = TinySpec(set_, 6, 0);
  bad.set_resolution(65);
  ASSERT_FALSE(api_->CreateJob(bad).ok());
  // The access log has a line per call, with its code and peer.
  EXPECT_TRUE(absl::StrContains(daemon_->Log(),
                                "rpc /dreambooth.v1.DreamBooth/CreateJob INVALID_ARGUMENT "))
      << daemon_->Log();

  std::unique_ptr<WorkerProcess> worker = StartWorker("w", {"--worker-id", "w"});
  ASSERT_NE(worker, nullptr);
  absl::StatusOr<v1::Job> done = WaitDone(queued->id(), worker.get());
  ASSERT_TRUE(done.ok()) << done.status();
  const std::string after = Scrape(metrics_port_);
  EXPECT_EQ(Value(after, "dreambooth_jobs{state=\"queued\"}"), 0);
  EXPECT_EQ(Value(after, "dreambooth_jobs{state=\"succeeded\"}"), 1);
  EXPECT_EQ(Value(after, "dreambooth_workers"), 1);
  EXPECT_EQ(Value(after, "dreambooth_job_queue_wait_seconds_count"), 1);
  EXPECT_EQ(Value(after, "dreambooth_job_duration_seconds_count{outcome=\"succeeded\"}"), 1);
  EXPECT_EQ(Value(after, "dreambooth_training_steps_total"), 6);
  EXPECT_GT(Value(after, "dreambooth_blob_store_bytes"),
            Value(before, "dreambooth_blob_store_bytes"));
  EXPECT_EQ(Value(after,
                  "dreambooth_rpc_duration_seconds_count{code=\"INVALID_ARGUMENT\",method=\"/"
                  "dreambooth.v1.DreamBooth/CreateJob\"}"),
            1)
      << after;
  // The worker's calls arrive through the gateway and are counted too.
  EXPECT_GE(Value(after,
                  "dreambooth_rpc_duration_seconds_count{code=\"OK\",method=\"/"
                  "dreambooth.v1.WorkerGateway/CompleteTask\"}"),
            1);
}

// grpc.health.v1 "readiness" is NOT_SERVING until a worker asks for work (the database and the
// disk are fine here), then SERVING; "" (liveness) is SERVING throughout.
TEST_F(MetricsE2eTest, ReadinessWaitsForAWorker) {
  auto health = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(daemon_->address(), grpc::InsecureChannelCredentials()));
  const auto status_of = [&](const std::string& service) {
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    grpc::ClientContext context;
    const grpc::Status status = health->Check(&context, request, &response);
    EXPECT_TRUE(status.ok()) << service << ": " << status.error_message();
    return response.status();
  };
  EXPECT_EQ(status_of(""), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(status_of("readiness"), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  std::unique_ptr<WorkerProcess> worker = StartWorker("w", {"--worker-id", "w"});
  ASSERT_NE(worker, nullptr);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (status_of("readiness") != grpc::health::v1::HealthCheckResponse::SERVING &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(status_of("readiness"), grpc::health::v1::HealthCheckResponse::SERVING)
      << daemon_->Log();
  EXPECT_TRUE(absl::StrContains(daemon_->Log(), "readiness: ready")) << daemon_->Log();
}

// Under --log-format=json every line of the daemon's log is a JSON object, its local workers'
// lines included.
class JsonLogE2eTest : public TinyJobsTest {
 protected:
  std::vector<std::string> DaemonArgs() const override {
    return {"--lease-ttl=9s", "--sweep-interval=100ms", "--log-format=json",
            "--access-log",   "--local-workers=1",      "--worker-threads=1"};
  }
};

TEST_F(JsonLogE2eTest, EveryLineIsJsonIncludingTheWorkers) {
  absl::StatusOr<v1::Job> job = api_->CreateJob(TinySpec(set_, /*max_train_steps=*/2, 0));
  ASSERT_TRUE(job.ok()) << job.status();
  absl::StatusOr<v1::Job> done = WaitDone(job->id(), nullptr);
  ASSERT_TRUE(done.ok()) << done.status();
  std::ifstream in(dir_.Join("data") + "/dreamboothd.log");
  std::string line;
  int lines = 0;
  bool worker_line = false;
  while (std::getline(in, line)) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_TRUE(j.is_object()) << "not JSON: " << line;
    ASSERT_TRUE(j.contains("msg") && j.contains("level") && j.contains("time")) << line;
    worker_line |= absl::StrContains(j["msg"].get<std::string>(),
                                     absl::StrCat("[worker-0] [train] job ", job->id()));
    ++lines;
  }
  EXPECT_GT(lines, 5);
  EXPECT_TRUE(worker_line);
}

}  // namespace
}  // namespace dreambooth::testing
