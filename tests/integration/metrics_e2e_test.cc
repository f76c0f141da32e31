// The Prometheus endpoint of a real dreamboothd (--metrics-listen on loopback), scraped over
// HTTP before and after a real worker trains a job: the queue, job, worker, lease, RPC, upload,
// blob store and training metrics move as the job goes through. Also the logs as a log shipper
// reads them: JSON lines with job and worker ids, the daemon's and the workers'.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
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

// Every whole line of the log at `path` (one still being written is left out), each parsed as a
// JSON object (a test failure names a line that is not one, and the result is then empty).
std::vector<nlohmann::json> JsonLines(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::vector<std::string> whole = absl::StrSplit(text.str(), '\n');
  whole.pop_back();  // "" after the last newline, or an unfinished line
  std::vector<nlohmann::json> lines;
  for (const std::string& line : whole) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(j.is_object()) << path << ": not a JSON object: " << line;
    if (!j.is_object()) return {};
    EXPECT_TRUE(j.contains("msg") && j.contains("level") && j.contains("time")) << line;
    lines.push_back(std::move(j));
  }
  return lines;
}

// The first line whose msg starts with `msg` and, when given, whose "source" is `source`;
// nullptr when there is none.
const nlohmann::json* FindLine(const std::vector<nlohmann::json>& lines, const std::string& msg,
                               const std::string& source = "") {
  for (const nlohmann::json& j : lines) {
    if (!absl::StartsWith(j.value("msg", ""), msg)) continue;
    if (!source.empty() && j.value("source", "") != source) continue;
    return &j;
  }
  return nullptr;
}

// The string field `key` of `line` ("" when absent or not a string).
std::string Field(const nlohmann::json* line, const std::string& key) {
  if (line == nullptr || !line->contains(key) || !(*line)[key].is_string()) return "";
  return (*line)[key].get<std::string>();
}

// The lines of the log at `path` (JsonLines) once every one of `wanted` ({msg, source} pairs, as
// FindLine takes them) is there: a job's end is visible before its last lines are written. Gives
// up after 30 s, returning what is there.
std::vector<nlohmann::json> JsonLinesOnceLogged(
    const std::string& path, const std::vector<std::pair<std::string, std::string>>& wanted) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (true) {
    std::vector<nlohmann::json> lines = JsonLines(path);
    bool all = true;
    for (const auto& [msg, source] : wanted) all &= FindLine(lines, msg, source) != nullptr;
    if (all || lines.empty() || std::chrono::steady_clock::now() > deadline) return lines;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// Under --log-format=json every line of the daemon's log is a JSON object, its local workers'
// lines included (passed through as their own objects, "source":"worker-0"), and the job's
// lifecycle lines on both sides carry its id and the worker's.
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
  const std::vector<nlohmann::json> lines =
      JsonLinesOnceLogged(dir_.Join("data") + "/dreamboothd.log",
                          {{"job succeeded", ""}, {"attempt ended", "worker-0"}});
  EXPECT_GT(lines.size(), 5u);
  const std::string worker_id = "local-0/train";
  for (const char* msg : {"job created", "job leased", "job succeeded"}) {
    EXPECT_EQ(Field(FindLine(lines, msg), "job_id"), job->id()) << msg << " " << daemon_->Log();
  }
  EXPECT_EQ(Field(FindLine(lines, "job leased"), "worker_id"), worker_id);
  for (const char* msg : {"train task leased", "attempt ended: completed"}) {
    const nlohmann::json* line = FindLine(lines, msg, "worker-0");
    ASSERT_NE(line, nullptr) << msg << " " << daemon_->Log();
    EXPECT_EQ(Field(line, "job_id"), job->id()) << *line;
    EXPECT_EQ(Field(line, "task_id"), job->id()) << *line;
    EXPECT_EQ(Field(line, "worker_id"), worker_id) << *line;
    EXPECT_EQ(line->value("attempt", 0), 1) << *line;
  }
}

// A worker run on its own with --log-format=json writes only JSON lines to stderr; its task
// lines carry the ids the daemon knows the job and the worker by.
class WorkerJsonLogE2eTest : public TinyJobsTest {
 protected:
  std::vector<std::string> DaemonArgs() const override {
    return {"--lease-ttl=9s", "--sweep-interval=100ms", "--log-format=json"};
  }
};

TEST_F(WorkerJsonLogE2eTest, StandaloneWorkerLogsJsonWithIds) {
  absl::StatusOr<v1::Job> job = api_->CreateJob(TinySpec(set_, /*max_train_steps=*/2, 0));
  ASSERT_TRUE(job.ok()) << job.status();
  std::unique_ptr<WorkerProcess> worker = StartWorker(
      "w",
      {"--worker-id", "w", "--log-format", "json", "--log-level", "debug", "--max-tasks", "1"});
  ASSERT_NE(worker, nullptr);
  absl::StatusOr<v1::Job> done = WaitDone(job->id(), worker.get());
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(worker->Stop(SIGTERM), 0) << worker->Log();  // --max-tasks 1: it exits on its own
  const std::vector<nlohmann::json> lines = JsonLines(dir_.Join("w-1.log"));
  ASSERT_FALSE(lines.empty()) << worker->Log();
  for (const char* msg : {"train task leased", "attempt ended: completed"}) {
    const nlohmann::json* line = FindLine(lines, msg);
    ASSERT_NE(line, nullptr) << msg << " " << worker->Log();
    EXPECT_EQ(Field(line, "job_id"), job->id()) << *line;
    EXPECT_EQ(Field(line, "task_id"), job->id()) << *line;
    EXPECT_EQ(Field(line, "worker_id"), "w/train") << *line;
  }
  EXPECT_EQ(Field(FindLine(lines, "attempt ended"), "outcome"), "completed");
  for (const char* msg : {"dreambooth-worker started", "dreambooth-worker exiting"}) {
    EXPECT_EQ(Field(FindLine(lines, msg), "worker_id"), "w") << msg << " " << worker->Log();
  }
  // The daemon's side of the same job, under the same ids.
  const std::vector<nlohmann::json> daemon =
      JsonLinesOnceLogged(dir_.Join("data") + "/dreamboothd.log", {{"job succeeded", ""}});
  EXPECT_EQ(Field(FindLine(daemon, "job leased"), "worker_id"), "w/train") << daemon_->Log();
  EXPECT_EQ(Field(FindLine(daemon, "worker registered"), "worker_id"), "w/train");
  EXPECT_EQ(Field(FindLine(daemon, "job succeeded"), "job_id"), job->id());
}

}  // namespace
}  // namespace dreambooth::testing
