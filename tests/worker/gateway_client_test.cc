// GatewayClient against the real dreamboothd core in this process (tests/testing/test_server.h):
// leasing (at once and by long poll), events, checkpoints and the end of a task under the lease
// token, fenced stale tokens, blobs in memory and on disk (chunked, verified, no partial files),
// lease-scoped reads and commits, the shared-cache index, a Sample relay, and calls that ride out a
// server restart.
#include "worker/gateway_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_replace.h"
#include "common/crypto.h"
#include "tests/testing/poll.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_server.h"

namespace dreambooth::worker {
namespace {
namespace fs = std::filesystem;
using testing::PollUntil;
using testing::TestServer;

// `size` bytes of a repeating, position-dependent pattern.
std::string Bytes(size_t size, int seed) {
  std::string bytes(size, '\0');
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>((i * 131 + seed * 7) % 251);
  return bytes;
}

v1::JobEvent LogEvent(const std::string& message) {
  v1::JobEvent event;
  event.set_kind(v1::EVENT_KIND_LOG);
  event.set_stage(v1::JOB_STAGE_TRAINING);
  event.set_message(message);
  return event;
}

// Files in `dir` whose names contain ".part-" (downloads that were not renamed into place).
std::vector<std::string> PartialFiles(const std::string& dir) {
  std::vector<std::string> partial;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.find(".part-") != std::string::npos) partial.push_back(name);
  }
  return partial;
}

class GatewayClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<TestServer>> server = TestServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    client_ = std::make_unique<GatewayClient>(server_->worker_address(), std::chrono::seconds(10));
  }

  v1::LeaseTaskRequest LeaseRequest(int wait_ms = 0) const {
    v1::LeaseTaskRequest request;
    request.set_worker_id("gateway-client-test");
    request.set_device("cpu");
    request.set_wait_ms(wait_ms);
    return request;
  }

  // Queues a job and leases it with the client under test.
  v1::Task QueueAndLease() {
    absl::StatusOr<v1::Job> job = server_->QueueJob();
    EXPECT_TRUE(job.ok()) << job.status();
    absl::StatusOr<std::optional<v1::Task>> task = client_->LeaseTask(LeaseRequest());
    EXPECT_TRUE(task.ok()) << task.status();
    EXPECT_TRUE(task.ok() && task->has_value());
    return task.ok() && task->has_value() ? **task : v1::Task();
  }

  // Writes a file under the lease and commits it as the FINAL checkpoint.
  void CommitFinal(const std::string& token) {
    absl::StatusOr<BlobRef> blob = client_->WriteBlob(token, "final weights");
    ASSERT_TRUE(blob.ok()) << blob.status();
    v1::CommitCheckpointRequest commit;
    commit.set_lease_token(token);
    commit.set_step(1);
    commit.set_kind(v1::CHECKPOINT_KIND_FINAL);
    v1::CheckpointFile* file = commit.add_files();
    file->set_path("unet/diffusion_pytorch_model.safetensors");
    file->set_digest(blob->digest);
    file->set_size_bytes(blob->size_bytes);
    absl::StatusOr<std::string> id = client_->CommitCheckpoint(commit);
    ASSERT_TRUE(id.ok()) << id.status();
  }

  v1::Job GetJob(const std::string& job_id) {
    absl::StatusOr<v1::Job> job = server_->api().GetJob(job_id);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : v1::Job();
  }

  testing::TempDir dir_;
  std::unique_ptr<TestServer> server_;
  std::unique_ptr<GatewayClient> client_;
};

TEST(FromGrpcTest, KeepsTheCodeAndPrefixesTheMessage) {
  EXPECT_TRUE(FromGrpc(grpc::Status::OK, "Heartbeat").ok());
  const absl::Status status =
      FromGrpc(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "stale"), "Heartbeat");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(), "Heartbeat: stale");
}

TEST(TransferTimeoutTest, IsTheRpcTimeoutPlusTheBytesAtTheMinimumRate) {
  using std::chrono::milliseconds;
  using std::chrono::seconds;
  EXPECT_EQ(kMinTransferBytesPerSecond, 1 << 20);
  EXPECT_EQ(TransferTimeout(seconds(30), 0), seconds(30));
  EXPECT_EQ(TransferTimeout(seconds(30), -5), seconds(30));
  EXPECT_EQ(TransferTimeout(seconds(30), 1), milliseconds(30'001));  // rounded up
  EXPECT_EQ(TransferTimeout(seconds(30), 1 << 20), seconds(31));
  // A 4 GiB checkpoint file gets 68 min more (a fixed 600 s needed 7 MiB/s).
  EXPECT_EQ(TransferTimeout(seconds(30), int64_t{4} << 30), seconds(30 + 4096));
}

TEST(GatewayClientLeaseTest, LeaseCallsGiveUpOnceTheLeaseHasExpired) {
  server::ServerOptions options;
  options.lease_ttl_ms = 1500;
  absl::StatusOr<std::unique_ptr<TestServer>> server = TestServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  GatewayClient client((*server)->worker_address(), std::chrono::milliseconds(300));
  ASSERT_TRUE((*server)->QueueJob().ok());
  v1::LeaseTaskRequest request;
  request.set_worker_id("gateway-client-test");
  request.set_device("cpu");
  absl::StatusOr<std::optional<v1::Task>> leased = client.LeaseTask(request);
  ASSERT_TRUE(leased.ok() && leased->has_value()) << leased.status();
  const std::string token = (**leased).lease_token();
  ASSERT_TRUE(client.LeaseExpiry(token).has_value());

  (*server)->Stop();
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<int64_t> reported = client.ReportEvents(token, {LogEvent("into the void")});
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(reported.ok());
  EXPECT_TRUE(absl::IsDeadlineExceeded(reported.status()) || absl::IsUnavailable(reported.status()))
      << reported.status();
  // Retried while the 1.5 s lease lasted, not for the minute of calls under no lease.
  EXPECT_GE(took, std::chrono::milliseconds(1000));
  EXPECT_LT(took, std::chrono::seconds(10));
}

TEST_F(GatewayClientTest, LeaseTaskIsEmptyWhenIdleAndHandsOutTheQueuedJob) {
  absl::StatusOr<std::optional<v1::Task>> none = client_->LeaseTask(LeaseRequest());
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value());

  absl::StatusOr<v1::Job> job = server_->QueueJob();
  ASSERT_TRUE(job.ok()) << job.status();
  absl::StatusOr<std::optional<v1::Task>> task = client_->LeaseTask(LeaseRequest());
  ASSERT_TRUE(task.ok()) << task.status();
  ASSERT_TRUE(task->has_value());
  const v1::Task& t = **task;
  EXPECT_EQ(t.kind(), v1::TASK_KIND_TRAIN);
  EXPECT_EQ(t.job_id(), job->id());
  EXPECT_EQ(t.attempt(), 1);
  EXPECT_FALSE(t.lease_token().empty());
  EXPECT_EQ(t.lease_ttl_ms(), server::ServerOptions().lease_ttl_ms);
  EXPECT_EQ(t.spec().base_model(), "tiny");
  EXPECT_EQ(t.instance_images_size(), 1);
  EXPECT_TRUE(t.resume_from().id().empty());
  EXPECT_EQ(GetJob(job->id()).state(), v1::JOB_STATE_RUNNING);
}

TEST_F(GatewayClientTest, ALongPollReceivesAJobQueuedWhileItWaits) {
  v1::LeaseTaskRequest request = LeaseRequest(/*wait_ms=*/30'000);
  // The server remembers advertised model names on receipt, which tells when the call arrived.
  request.add_base_models("long-poll-probe");
  std::future<absl::StatusOr<std::optional<v1::Task>>> leased =
      std::async(std::launch::async, [&] { return client_->LeaseTask(request); });
  ASSERT_TRUE(PollUntil([&] {
    absl::StatusOr<bool> known = server_->core().IsKnownBaseModel("long-poll-probe");
    return known.ok() && *known;
  }));
  EXPECT_EQ(leased.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);

  absl::StatusOr<v1::Job> job = server_->QueueJob();
  ASSERT_TRUE(job.ok()) << job.status();
  absl::StatusOr<std::optional<v1::Task>> task = leased.get();
  ASSERT_TRUE(task.ok()) << task.status();
  ASSERT_TRUE(task->has_value());
  EXPECT_EQ((*task)->job_id(), job->id());
}

TEST_F(GatewayClientTest, EventsCheckpointsAndCompletionAreStoredUnderTheLease) {
  const v1::Task task = QueueAndLease();
  const v1::Job before = GetJob(task.job_id());

  v1::JobEvent progress;
  progress.set_kind(v1::EVENT_KIND_PROGRESS);
  progress.set_stage(v1::JOB_STAGE_TRAINING);
  progress.set_step(3);
  progress.set_total(10);
  absl::StatusOr<int64_t> last =
      client_->ReportEvents(task.lease_token(), {LogEvent("step three"), progress});
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(*last, before.last_sequence() + 2);
  const v1::Job reported = GetJob(task.job_id());
  EXPECT_EQ(reported.last_sequence(), *last);
  EXPECT_EQ(reported.stage(), v1::JOB_STAGE_TRAINING);
  EXPECT_EQ(reported.step(), 3);

  const std::string state = Bytes(1000, 1);
  absl::StatusOr<BlobRef> blob = client_->WriteBlob(task.lease_token(), state);
  ASSERT_TRUE(blob.ok()) << blob.status();
  EXPECT_EQ(blob->digest, Sha256Hex(state));
  EXPECT_EQ(blob->size_bytes, 1000);
  v1::CommitCheckpointRequest commit;
  commit.set_lease_token(task.lease_token());
  commit.set_step(3);
  commit.set_kind(v1::CHECKPOINT_KIND_RESUME);
  v1::CheckpointFile* file = commit.add_files();
  file->set_path("trainer_state.bin");
  file->set_digest(blob->digest);
  file->set_size_bytes(blob->size_bytes);
  absl::StatusOr<std::string> checkpoint_id = client_->CommitCheckpoint(commit);
  ASSERT_TRUE(checkpoint_id.ok()) << checkpoint_id.status();
  absl::StatusOr<v1::ListCheckpointsResponse> listed =
      server_->api().ListCheckpoints(task.job_id());
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->checkpoints_size(), 1);
  EXPECT_EQ(listed->checkpoints(0).id(), *checkpoint_id);
  EXPECT_EQ(listed->checkpoints(0).step(), 3);
  ASSERT_EQ(listed->checkpoints(0).files_size(), 1);
  EXPECT_EQ(listed->checkpoints(0).files(0).digest(), blob->digest);

  // Completing needs a FINAL checkpoint: refused (the lease and the job unchanged) until then.
  EXPECT_EQ(client_->CompleteTask(task.lease_token()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(GetJob(task.job_id()).state(), v1::JOB_STATE_RUNNING);
  CommitFinal(task.lease_token());
  absl::StatusOr<v1::JobState> completed = client_->CompleteTask(task.lease_token());
  ASSERT_TRUE(completed.ok()) << completed.status();
  EXPECT_EQ(*completed, v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(GetJob(task.job_id()).state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(GatewayClientTest, AStaleTokenChangesNothing) {
  const v1::Task task = QueueAndLease();
  CommitFinal(task.lease_token());
  ASSERT_TRUE(client_->CompleteTask(task.lease_token()).ok());
  const v1::Job ended = GetJob(task.job_id());

  // The spent token and a forged one are refused, promptly (FAILED_PRECONDITION is not retried).
  const auto start = std::chrono::steady_clock::now();
  for (const std::string& token : {task.lease_token(), std::string("lt_forged")}) {
    EXPECT_EQ(client_->ReportEvents(token, {LogEvent("late")}).status().code(),
              absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(client_->CompleteTask(token).status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(client_->FailTask(token, "late", true).status().code(),
              absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(client_->WriteBlob(token, "late bytes").status().code(),
              absl::StatusCode::kFailedPrecondition);
    v1::HeartbeatRequest beat;
    beat.set_lease_token(token);
    EXPECT_EQ(client_->Heartbeat(beat).status().code(), absl::StatusCode::kFailedPrecondition);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  const v1::Job after = GetJob(task.job_id());
  EXPECT_EQ(after.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(after.last_sequence(), ended.last_sequence());
}

TEST_F(GatewayClientTest, FailAndReleaseReturnTheJobsNewState) {
  const v1::Task first = QueueAndLease();
  absl::StatusOr<v1::JobState> released = client_->ReleaseTask(first.lease_token(), "shutdown");
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(*released, v1::JOB_STATE_QUEUED);

  absl::StatusOr<std::optional<v1::Task>> second = client_->LeaseTask(LeaseRequest());
  ASSERT_TRUE(second.ok() && second->has_value());
  EXPECT_EQ((*second)->job_id(), first.job_id());
  absl::StatusOr<v1::JobState> retry = client_->FailTask((*second)->lease_token(), "flaky", true);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(*retry, v1::JOB_STATE_QUEUED);

  absl::StatusOr<std::optional<v1::Task>> third = client_->LeaseTask(LeaseRequest());
  ASSERT_TRUE(third.ok() && third->has_value());
  absl::StatusOr<v1::JobState> failed = client_->FailTask((*third)->lease_token(), "bad", false);
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_EQ(*failed, v1::JOB_STATE_FAILED);
  const v1::Job job = GetJob(first.job_id());
  EXPECT_EQ(job.state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(job.error(), "bad");
}

TEST_F(GatewayClientTest, BlobsRoundTripThroughMemoryAndFiles) {
  const v1::Task task = QueueAndLease();
  const std::string bytes = Bytes((5 << 20) / 2, 2);  // 2.5 MiB: three chunks each way
  absl::StatusOr<BlobRef> written = client_->WriteBlob(task.lease_token(), bytes);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(written->digest, Sha256Hex(bytes));
  EXPECT_EQ(written->size_bytes, static_cast<int64_t>(bytes.size()));

  absl::StatusOr<std::string> read = client_->ReadBlob(task.lease_token(), written->digest);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(*read == bytes);

  // To a file: parent folders created, an existing file replaced.
  const std::string path = dir_.Join("a/b/blob.bin");
  fs::create_directories(dir_.Join("a/b"));
  testing::WriteFile(path, "old contents");
  ASSERT_TRUE(
      client_->ReadBlobToFile(task.lease_token(), written->digest, written->size_bytes, path).ok());
  EXPECT_TRUE(testing::ReadFile(path) == bytes);
  ASSERT_TRUE(client_
                  ->ReadBlobToFile(task.lease_token(), written->digest, written->size_bytes,
                                   dir_.Join("new/dir/blob.bin"))
                  .ok());
  EXPECT_TRUE(testing::ReadFile(dir_.Join("new/dir/blob.bin")) == bytes);

  // From a file: the server stores the file's digest.
  const std::string upload = dir_.Join("upload.bin");
  testing::WriteFile(upload, Bytes(4096, 3));
  absl::StatusOr<BlobRef> from_file = client_->WriteBlobFromFile(task.lease_token(), upload);
  ASSERT_TRUE(from_file.ok()) << from_file.status();
  EXPECT_EQ(from_file->digest, *Sha256File(upload));
  EXPECT_EQ(from_file->size_bytes, 4096);
  EXPECT_EQ(*client_->ReadBlob(task.lease_token(), from_file->digest), Bytes(4096, 3));
  EXPECT_EQ(client_->WriteBlobFromFile(task.lease_token(), dir_.Join("absent")).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(PartialFiles(dir_.path()).empty());
}

TEST_F(GatewayClientTest, MissingAndDamagedBlobsFailWithoutTouchingTheTarget) {
  const v1::Task task = QueueAndLease();
  const std::string target = dir_.Join("target.bin");
  testing::WriteFile(target, "previous download");

  const std::string missing = Sha256Hex("never stored");
  EXPECT_EQ(client_->ReadBlob(task.lease_token(), missing).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->ReadBlobToFile(task.lease_token(), missing, 0, target).code(),
            absl::StatusCode::kNotFound);

  // Damage a stored blob behind the server's back (as a disk fault would), keeping its size.
  const std::string bytes = Bytes(3000, 4);
  absl::StatusOr<BlobRef> blob = client_->WriteBlob(task.lease_token(), bytes);
  ASSERT_TRUE(blob.ok()) << blob.status();
  const fs::path stored = fs::path(server_->data_dir()) / "blobs" / "sha256" /
                          blob->digest.substr(0, 2) / blob->digest.substr(2);
  ASSERT_TRUE(fs::exists(stored)) << stored;
  fs::permissions(stored, fs::perms::owner_write, fs::perm_options::add);
  std::string damaged = bytes;
  damaged[1234] ^= 0x5A;
  testing::WriteFile(stored.string(), damaged);

  EXPECT_EQ(client_->ReadBlob(task.lease_token(), blob->digest).status().code(),
            absl::StatusCode::kDataLoss);
  absl::StatusOr<std::string> unverified =
      client_->ReadBlob(task.lease_token(), blob->digest, /*verify=*/false);
  ASSERT_TRUE(unverified.ok()) << unverified.status();
  EXPECT_TRUE(*unverified == damaged);
  EXPECT_EQ(
      client_->ReadBlobToFile(task.lease_token(), blob->digest, blob->size_bytes, target).code(),
      absl::StatusCode::kDataLoss);
  EXPECT_EQ(testing::ReadFile(target), "previous download");
  EXPECT_TRUE(PartialFiles(dir_.path()).empty());
}

TEST_F(GatewayClientTest, ALeaseReadsAndCommitsOnlyWhatItsTaskMaySee) {
  const v1::Task a = QueueAndLease();
  const v1::Task b = QueueAndLease();
  ASSERT_NE(a.job_id(), b.job_id());
  ASSERT_GT(a.instance_images_size(), 0);
  EXPECT_TRUE(client_->ReadBlob(a.lease_token(), a.instance_images(0).digest()).ok());

  // What a writes is a's: b gets NOT_FOUND, with the message of a blob that does not exist.
  absl::StatusOr<BlobRef> secret = client_->WriteBlob(a.lease_token(), "a's weights");
  ASSERT_TRUE(secret.ok()) << secret.status();
  EXPECT_TRUE(client_->ReadBlob(a.lease_token(), secret->digest).ok());
  const absl::Status denied = client_->ReadBlob(b.lease_token(), secret->digest).status();
  EXPECT_EQ(denied.code(), absl::StatusCode::kNotFound) << denied;
  const std::string missing = Sha256Hex("never stored");
  const absl::Status absent = client_->ReadBlob(b.lease_token(), missing).status();
  EXPECT_EQ(std::string(denied.message()),
            absl::StrReplaceAll(absent.message(), {{missing, secret->digest}}));
  EXPECT_EQ(
      client_->ReadBlobToFile(b.lease_token(), secret->digest, secret->size_bytes, dir_.Join("x"))
          .code(),
      absl::StatusCode::kNotFound);

  // b can neither commit a's blob as its checkpoint nor publish it in a cache entry.
  v1::CommitCheckpointRequest commit;
  commit.set_lease_token(b.lease_token());
  commit.set_step(1);
  commit.set_kind(v1::CHECKPOINT_KIND_FINAL);
  v1::CheckpointFile* file = commit.add_files();
  file->set_path("unet/diffusion_pytorch_model.safetensors");
  file->set_digest(secret->digest);
  file->set_size_bytes(secret->size_bytes);
  const absl::Status committed = client_->CommitCheckpoint(commit).status();
  EXPECT_EQ(committed.code(), absl::StatusCode::kFailedPrecondition) << committed;
  EXPECT_THAT(std::string(committed.message()),
              ::testing::HasSubstr("was not written under this lease"));
  v1::PutCacheEntryRequest put;
  put.set_lease_token(b.lease_token());
  put.set_key("laundered");
  v1::CacheItem* item = put.add_items();
  item->set_name("weights");
  item->set_digest(secret->digest);
  item->set_size_bytes(secret->size_bytes);
  EXPECT_EQ(client_->PutCacheEntry(put).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(client_->GetCacheEntry(b.lease_token(), "laundered")->found());

  // The same commit under a's lease is accepted; a forged token reads nothing.
  commit.set_lease_token(a.lease_token());
  EXPECT_TRUE(client_->CommitCheckpoint(commit).ok());
  EXPECT_EQ(client_->ReadBlob("lt_forged", a.instance_images(0).digest()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(GatewayClientTest, CacheEntriesAreReplacedAppendedAndConflictsRefused) {
  const v1::Task task = QueueAndLease();
  absl::StatusOr<v1::GetCacheEntryResponse> absent =
      client_->GetCacheEntry(task.lease_token(), "test/key");
  ASSERT_TRUE(absent.ok()) << absent.status();
  EXPECT_FALSE(absent->found());

  absl::StatusOr<BlobRef> x = client_->WriteBlob(task.lease_token(), "x bytes");
  absl::StatusOr<BlobRef> y = client_->WriteBlob(task.lease_token(), "y bytes");
  ASSERT_TRUE(x.ok() && y.ok());
  auto put = [&](const std::string& name, const BlobRef& blob, bool append) {
    v1::PutCacheEntryRequest request;
    request.set_lease_token(task.lease_token());
    request.set_key("test/key");
    request.set_append(append);
    request.set_metadata_json(R"({"v":1})");
    v1::CacheItem* item = request.add_items();
    item->set_name(name);
    item->set_digest(blob.digest);
    item->set_size_bytes(blob.size_bytes);
    return client_->PutCacheEntry(request);
  };
  EXPECT_EQ(*put("a", *x, false), 1);
  EXPECT_EQ(*put("b", *y, true), 2);
  // The same name with another digest is refused and changes nothing.
  EXPECT_EQ(put("a", *y, true).status().code(), absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<v1::GetCacheEntryResponse> entry =
      client_->GetCacheEntry(task.lease_token(), "test/key");
  ASSERT_TRUE(entry.ok()) << entry.status();
  ASSERT_TRUE(entry->found());
  ASSERT_EQ(entry->items_size(), 2);
  EXPECT_EQ(entry->items(0).name(), "a");
  EXPECT_EQ(entry->items(0).digest(), x->digest);
  EXPECT_EQ(entry->items(1).name(), "b");
  EXPECT_EQ(entry->metadata_json(), R"({"v":1})");
  // Without append the entry is replaced.
  EXPECT_EQ(*put("c", *y, false), 1);
}

TEST_F(GatewayClientTest, SampleOutputsReachTheCallerUntilTheTaskCompletes) {
  // A job with a sampleable checkpoint, then a Sample call that a worker serves.
  const v1::Task train = QueueAndLease();
  absl::StatusOr<BlobRef> weights = client_->WriteBlob(train.lease_token(), Bytes(500, 5));
  ASSERT_TRUE(weights.ok()) << weights.status();
  v1::CommitCheckpointRequest commit;
  commit.set_lease_token(train.lease_token());
  commit.set_step(1);
  commit.set_kind(v1::CHECKPOINT_KIND_SAMPLEABLE);
  v1::CheckpointFile* file = commit.add_files();
  file->set_path("unet/diffusion_pytorch_model.safetensors");
  file->set_digest(weights->digest);
  file->set_size_bytes(weights->size_bytes);
  ASSERT_TRUE(client_->CommitCheckpoint(commit).ok());

  v1::SampleRequest sample;
  sample.set_job_id(train.job_id());
  sample.set_prompt("a photo of sks dog");
  std::vector<v1::SampleResponse> received;
  std::future<absl::Status> caller = std::async(std::launch::async, [&] {
    return server_->api().Sample(sample,
                                 [&](const v1::SampleResponse& r) { received.push_back(r); });
  });
  v1::LeaseTaskRequest request = LeaseRequest(/*wait_ms=*/20'000);
  request.add_kinds(v1::TASK_KIND_SAMPLE);
  absl::StatusOr<std::optional<v1::Task>> task = client_->LeaseTask(request);
  ASSERT_TRUE(task.ok() && task->has_value()) << task.status();
  EXPECT_EQ((*task)->kind(), v1::TASK_KIND_SAMPLE);
  EXPECT_EQ((*task)->sample().prompt(), "a photo of sks dog");

  v1::SampleResponse image;
  image.mutable_image()->set_index(0);
  image.mutable_image()->set_png("png bytes");
  absl::StatusOr<bool> connected = client_->ReportSampleOutput((*task)->lease_token(), image);
  ASSERT_TRUE(connected.ok()) << connected.status();
  EXPECT_TRUE(*connected);
  ASSERT_TRUE(client_->CompleteTask((*task)->lease_token()).ok());
  ASSERT_TRUE(caller.get().ok());
  ASSERT_FALSE(received.empty());
  EXPECT_EQ(received.back().image().png(), "png bytes");
}

TEST_F(GatewayClientTest, CallsMadeWhileTheServerRestartsSucceedOnceItIsBack) {
  const v1::Task task = QueueAndLease();
  absl::StatusOr<BlobRef> blob = client_->WriteBlob(task.lease_token(), Bytes(2000, 6));
  ASSERT_TRUE(blob.ok()) << blob.status();
  const v1::Job before = GetJob(task.job_id());

  server_->Stop();
  std::future<absl::StatusOr<int64_t>> reported = std::async(std::launch::async, [&] {
    return client_->ReportEvents(task.lease_token(), {LogEvent("during the restart")});
  });
  std::future<absl::StatusOr<std::string>> read = std::async(
      std::launch::async, [&] { return client_->ReadBlob(task.lease_token(), blob->digest); });
  ASSERT_TRUE(server_->Restart().ok());

  absl::StatusOr<int64_t> last = reported.get();
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(*last, before.last_sequence() + 1);
  absl::StatusOr<std::string> bytes = read.get();
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, Bytes(2000, 6));
  CommitFinal(task.lease_token());
  EXPECT_TRUE(client_->CompleteTask(task.lease_token()).ok());
}

TEST_F(GatewayClientTest, HeartbeatIsNotRetriedWhileTheServerIsDown) {
  const v1::Task task = QueueAndLease();
  server_->Stop();
  GatewayClient impatient(server_->worker_address(), std::chrono::milliseconds(300));
  v1::HeartbeatRequest beat;
  beat.set_lease_token(task.lease_token());
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<v1::HeartbeatResponse> response = impatient.Heartbeat(beat);
  EXPECT_FALSE(response.ok());
  EXPECT_TRUE(absl::IsDeadlineExceeded(response.status()) || absl::IsUnavailable(response.status()))
      << response.status();
  // One attempt bounded by the RPC timeout, not the minute-long retry window of other calls.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST_F(GatewayClientTest, LeaseCallsRideOutAnOutageLongerThanTheirDeadline) {
  // Each try may wait 300 ms for the server; the outage lasts 1.5 s; the lease (30 s) outlives it.
  GatewayClient impatient(server_->worker_address(), std::chrono::milliseconds(300));
  ASSERT_TRUE(server_->QueueJob().ok());
  absl::StatusOr<std::optional<v1::Task>> leased = impatient.LeaseTask(LeaseRequest());
  ASSERT_TRUE(leased.ok() && leased->has_value()) << leased.status();
  const v1::Task task = **leased;
  CommitFinal(task.lease_token());  // so that CompleteTask may succeed

  server_->Stop();
  std::future<absl::Status> finished = std::async(std::launch::async, [&]() -> absl::Status {
    absl::StatusOr<int64_t> reported =
        impatient.ReportEvents(task.lease_token(), {LogEvent("during the outage")});
    if (!reported.ok()) return reported.status();
    return impatient.CompleteTask(task.lease_token()).status();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ASSERT_TRUE(server_->Restart().ok());

  const absl::Status status = finished.get();
  ASSERT_TRUE(status.ok()) << status;
  const v1::Job job = GetJob(task.job_id());
  EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(job.attempt(), 1);
}

}  // namespace
}  // namespace dreambooth::worker
