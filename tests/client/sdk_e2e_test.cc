// The C++ SDK's own behaviour against a real dreamboothd on loopback: per-call credentials (an
// API key provider consulted on every call, so a key can rotate under a live Client; its errors
// returned as they are, with nothing sent), a ClientOptions that sets two keys is refused, and the
// server's structured error details survive the SDK's absl::Status (GetErrorDetails).
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/client.h"
#include "client/error_details.h"
#include "tests/server/e2e_util.h"
#include "tests/testing/command_run.h"
#include "tests/testing/daemon.h"
#include "tests/testing/temp_dir.h"

namespace dreambooth::testing {
namespace {

// A tenant key made with `dreamboothd keys create` in `data_dir`.
std::string CreateKey(const std::string& data_dir, const std::string& tenant) {
  CommandRun run = RunCommand(absl::StrCat(DreamboothdPath(), " keys create --data-dir=", data_dir,
                                           " --tenant=", tenant, " --role=tenant"));
  EXPECT_EQ(run.exit_code, 0) << run.out;
  for (absl::string_view line : absl::StrSplit(run.out, '\n')) {
    if (absl::StartsWith(line, "dbk_")) return std::string(line);
  }
  ADD_FAILURE() << "no key in: " << run.out;
  return "";
}

TEST(SdkCredentialsTest, AnApiKeyProviderIsAskedOnEveryCallSoKeysRotate) {
  TempDir dir;
  const std::string data = dir.Join("data");
  const std::string first = CreateKey(data, "team");
  const std::string second = CreateKey(data, "team");
  DaemonOptions daemon_options;
  daemon_options.data_dir = data;
  daemon_options.extra_args = {"--auth=api-keys"};
  absl::StatusOr<std::unique_ptr<Daemon>> daemon = Daemon::Start(daemon_options);
  ASSERT_TRUE(daemon.ok()) << daemon.status();

  std::mutex mu;
  absl::StatusOr<std::string> current = first;
  std::atomic<int> asked{0};
  client::ClientOptions options;
  options.target = (*daemon)->address();
  options.call_timeout_ms = 10'000;
  options.api_key_provider = [&]() -> absl::StatusOr<std::string> {
    ++asked;
    std::lock_guard<std::mutex> lock(mu);
    return current;
  };
  absl::StatusOr<std::unique_ptr<client::Client>> client = client::Client::Connect(options);
  ASSERT_TRUE(client.ok()) << client.status();

  absl::StatusOr<v1::ListJobsResponse> listed = (*client)->ListJobs(0, "");
  EXPECT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(asked.load(), 1);
  {
    std::lock_guard<std::mutex> lock(mu);
    current = second;  // rotated
  }
  absl::StatusOr<v1::ListBaseModelsResponse> models = (*client)->ListBaseModels();
  EXPECT_TRUE(models.ok()) << models.status();
  EXPECT_EQ(asked.load(), 2);
  {
    std::lock_guard<std::mutex> lock(mu);
    current = "dbk_0123456789abcdef_" + std::string(64, 'f');  // not a key the server issued
  }
  EXPECT_EQ((*client)->GetJob("job_0000000000000000").status().code(),
            absl::StatusCode::kUnauthenticated);
  {
    std::lock_guard<std::mutex> lock(mu);
    current = absl::UnavailableError("the key vault is down");
  }
  const int before = asked.load();
  absl::StatusOr<v1::Job> refused = (*client)->GetJob("job_0000000000000000");
  EXPECT_EQ(refused.status(), absl::UnavailableError("the key vault is down"));
  EXPECT_GE(asked.load(), before + 1);  // retried like the call it stood for

  // Streams ask too (each attempt), and a key set twice is refused at once.
  {
    std::lock_guard<std::mutex> lock(mu);
    current = second;
  }
  absl::Status watched =
      (*client)->WatchJob("job_0000000000000000", 0, [](const v1::JobEvent&) { return true; });
  EXPECT_EQ(watched.code(), absl::StatusCode::kNotFound) << watched;
  options.security.api_key = first;
  absl::StatusOr<std::unique_ptr<client::Client>> both = client::Client::Connect(options);
  EXPECT_EQ(both.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(both.status().message(), "not both")) << both.status();
}

class SdkErrorDetailsTest : public E2eTest {};

TEST_F(SdkErrorDetailsTest, TheServersReasonAndFieldSurviveTheSdk) {
  v1::JobSpec spec = MinimalSpec(UploadImages(1));
  spec.set_max_train_steps(-5);
  absl::StatusOr<v1::Job> job = client_->CreateJob(spec);
  ASSERT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument) << job.status();
  const client::ErrorDetails details = client::GetErrorDetails(job.status());
  EXPECT_EQ(details.reason, "INVALID_FIELD");
  EXPECT_EQ(details.domain, "dreambooth.v1");
  ASSERT_EQ(details.field_violations.size(), 1u);
  EXPECT_EQ(details.field_violations[0].field, "spec.max_train_steps");

  // The raw stub's grpc::Status reads the same.
  v1::GetJobRequest request;
  request.set_job_id("job_0000000000000000");
  v1::Job response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  const grpc::Status raw = client_->stub().GetJob(&context, request, &response);
  EXPECT_EQ(client::GetErrorDetails(raw).reason, "NOT_FOUND");
  EXPECT_TRUE(client::GetErrorDetails(raw).field_violations.empty());
  // A status without details reads as empty.
  EXPECT_EQ(client::GetErrorDetails(absl::NotFoundError("x")).reason, "");
}

}  // namespace
}  // namespace dreambooth::testing
