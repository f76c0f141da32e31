// A real dreamboothd against clients that misbehave (issue 11): uploads cancelled mid-stream,
// Sample calls no worker takes, requests that are not valid messages, and storage failures whose
// details must stay in the server log.
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/client_unary_call.h>
#include <grpcpp/impl/rpc_method.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/server/e2e_util.h"
#include "tests/testing/image_files.h"

namespace dreambooth::testing {
namespace {

std::vector<v1::UploadImagesRequest> UploadMessages(const std::string& image_set_id, int files) {
  std::vector<v1::UploadImagesRequest> messages(1);
  messages[0].mutable_target()->set_image_set_id(image_set_id);
  messages[0].mutable_target()->set_display_name("cancelled");
  for (int i = 0; i < files; ++i) {
    v1::UploadImagesRequest header;
    header.mutable_file()->set_name(absl::StrCat("cancelled", i, ".jpg"));
    messages.push_back(header);
    v1::UploadImagesRequest chunk;
    chunk.set_chunk(
        MakeJpeg(Noise(40 + 8 * i, 40, static_cast<uint32_t>(100 + i)), JpegColor::kRgb));
    messages.push_back(chunk);
  }
  return messages;
}

// Sends `messages` on an UploadImages stream, gives the server time to read and store them, then
// cancels the call instead of half-closing it; returns the status the client sees.
grpc::Status UploadThenCancel(client::Client& client,
                              const std::vector<v1::UploadImagesRequest>& messages) {
  grpc::ClientContext c;
  v1::UploadImagesResponse response;
  auto writer = client.stub().UploadImages(&c, &response);
  for (const auto& m : messages) {
    if (!writer->Write(m)) break;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  c.TryCancel();
  return writer->Finish();
}

using HostileClientTest = E2eTest;

TEST_F(HostileClientTest, UploadCancelledMidStreamCreatesNoImageSet) {
  const std::string existing = UploadImages(1);
  // Three complete files, but the stream is cancelled instead of half-closed.
  const grpc::Status status = UploadThenCancel(*client_, UploadMessages("", 3));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED) << status.error_message();

  // Whatever the server did with the cancelled call, it did within this time.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  absl::StatusOr<v1::ListImageSetsResponse> sets = client_->ListImageSets(100, "");
  ASSERT_TRUE(sets.ok()) << sets.status();
  ASSERT_EQ(sets->image_sets_size(), 1) << sets->DebugString();
  EXPECT_EQ(sets->image_sets(0).id(), existing);
}

TEST_F(HostileClientTest, UploadCancelledMidStreamAddsNothingToAnExistingSet) {
  const std::string existing = UploadImages(1);
  const grpc::Status status = UploadThenCancel(*client_, UploadMessages(existing, 2));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED) << status.error_message();

  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  absl::StatusOr<v1::ImageSet> set = client_->GetImageSet(existing);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->images_size(), 1) << set->DebugString();
  // A completed upload of the same files still works and adds both.
  grpc::ClientContext c;
  v1::UploadImagesResponse response;
  auto writer = client_->stub().UploadImages(&c, &response);
  for (const auto& m : UploadMessages(existing, 2)) ASSERT_TRUE(writer->Write(m));
  writer->WritesDone();
  const grpc::Status done = writer->Finish();
  ASSERT_TRUE(done.ok()) << done.error_message();
  EXPECT_EQ(response.image_set().images_size(), 3);
}

// A daemon whose Sample tasks wait at most a second for a worker.
class SampleQueueTimeoutTest : public E2eTest {
 protected:
  void SetUp() override { StartDaemon({"--sample-queue-timeout=1s", "--sweep-interval=100ms"}); }
};

TEST_F(SampleQueueTimeoutTest, SampleNoWorkerTakesFailsUnavailableNamingWhy) {
  // A job with a sampleable checkpoint, committed by a scripted trainer.
  const std::string set = UploadImages(1);
  absl::StatusOr<v1::Job> job = client_->CreateJob(MinimalSpec(set));
  ASSERT_TRUE(job.ok()) << job.status();
  TestWorker trainer(workers_.get(), "trainer");
  std::optional<v1::Task> train = trainer.Lease();
  ASSERT_TRUE(train.has_value());
  ASSERT_TRUE(
      trainer.CommitCheckpoint(train->lease_token(), 5, v1::CHECKPOINT_KIND_SAMPLEABLE).ok());

  // No worker leases SAMPLE tasks: the call ends well before its own deadline.
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  v1::SampleRequest request;
  request.set_job_id(job->id());
  request.set_prompt("a photo of sks dog");
  const auto start = std::chrono::steady_clock::now();
  auto reader = client_->stub().Sample(&c, request);
  std::vector<v1::SampleResponse> received;
  v1::SampleResponse response;
  while (reader->Read(&response)) received.push_back(response);
  const grpc::Status status = reader->Finish();
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_NE(status.error_message().find("no worker took the sample task within 1s"),
            std::string::npos)
      << status.error_message();
  EXPECT_LT(took, std::chrono::seconds(10));
  ASSERT_FALSE(received.empty());
  EXPECT_EQ(received[0].progress().message(), "queued; waiting for a worker");

  // The task left the queue: a worker that comes later finds nothing to sample.
  TestWorker sampler(workers_.get(), "sampler");
  EXPECT_FALSE(sampler.Lease(0, {}, {v1::TASK_KIND_SAMPLE}).has_value());
}

TEST_F(HostileClientTest, StorageErrorsReachTheClientWithoutSqlAndTheLogWithIt) {
  UploadImages(1);
  // Damage the schema under the running daemon: its next read of image_sets fails in SQLite.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.Join("data/db.sqlite").c_str(), &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  ASSERT_EQ(sqlite3_exec(db, "ALTER TABLE image_sets RENAME TO image_sets_moved", nullptr, nullptr,
                         nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);

  grpc::ClientContext c;
  v1::ListImageSetsRequest request;
  v1::ListImageSetsResponse response;
  const grpc::Status status = client_->stub().ListImageSets(&c, request, &response);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::INTERNAL) << status.error_message();
  const std::string& message = status.error_message();
  for (const char* leak : {"SELECT", "select", "FROM", "image_sets", "sqlite", "no such table"}) {
    EXPECT_EQ(message.find(leak), std::string::npos) << "'" << leak << "' in: " << message;
  }
  const std::string prefix = "internal storage error (SQL logic error); see the server log (ref ";
  ASSERT_EQ(message.rfind(prefix, 0), 0u) << message;
  ASSERT_EQ(message.back(), ')') << message;
  const std::string ref = message.substr(prefix.size(), message.size() - prefix.size() - 1);
  EXPECT_EQ(ref.size(), 12u) << message;

  // The server log has the detail under that reference.
  const std::string log = daemon_->Log();
  const size_t at = log.find(absl::StrCat("storage error (ref ", ref, "): sqlite: no such table"));
  ASSERT_NE(at, std::string::npos) << log;
  const std::string line = log.substr(at, log.find('\n', at) - at);
  EXPECT_NE(line.find("SELECT"), std::string::npos) << line;
  // The service keeps serving what does not touch the damaged table.
  EXPECT_TRUE(client_->ListJobs(10, "").ok());
}

// `message` serialized, with its string `placeholder` (which it must hold once) replaced by as
// many bytes that are not UTF-8: what a client that skips protobuf's checks can send.
std::string WithInvalidUtf8(const google::protobuf::Message& message,
                            const std::string& placeholder) {
  std::string bytes = message.SerializeAsString();
  const size_t at = bytes.find(placeholder);
  EXPECT_NE(at, std::string::npos);
  EXPECT_EQ(bytes.find(placeholder, at + 1), std::string::npos);
  for (size_t i = 0; i < placeholder.size(); ++i) bytes[at + i] = static_cast<char>(0xFF - i);
  return bytes;
}

grpc::ByteBuffer Buffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

// A unary call of `method` whose request is `bytes` as they are.
template <typename Response>
grpc::Status RawUnary(grpc::ChannelInterface* channel, const std::string& method,
                      const std::string& bytes) {
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  Response response;
  return grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, Response>(
      channel, grpc::internal::RpcMethod(method.c_str(), grpc::internal::RpcMethod::NORMAL_RPC), &c,
      Buffer(bytes), &response);
}

// A server-streaming call of `method` whose request is `bytes`; reads to the end.
template <typename Response>
grpc::Status RawServerStreaming(grpc::ChannelInterface* channel, const std::string& method,
                                const std::string& bytes) {
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  std::unique_ptr<grpc::ClientReader<Response>> reader(
      grpc::internal::ClientReaderFactory<Response>::Create(
          channel,
          grpc::internal::RpcMethod(method.c_str(), grpc::internal::RpcMethod::SERVER_STREAMING),
          &c, Buffer(bytes)));
  Response response;
  while (reader->Read(&response)) {
  }
  return reader->Finish();
}

TEST_F(HostileClientTest, InvalidUtf8InAStringFieldIsInvalidArgumentNamingTheField) {
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(daemon_->address(), grpc::InsecureChannelCredentials());
  const std::string placeholder = "PLACEHOLDER";

  v1::GetJobRequest get;
  get.set_job_id(placeholder);
  grpc::Status status = RawUnary<v1::Job>(channel.get(), "/dreambooth.v1.DreamBooth/GetJob",
                                          WithInvalidUtf8(get, placeholder));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_EQ(status.error_message(),
            "request is not a valid dreambooth.v1.GetJobRequest: field 'job_id' is not valid "
            "UTF-8 (string fields must be UTF-8 text; send binary data as bytes)");

  // A nested field is named by its path.
  v1::CreateJobRequest create;
  *create.mutable_spec() = MinimalSpec(UploadImages(1));
  create.mutable_spec()->set_instance_prompt(placeholder);
  status = RawUnary<v1::Job>(channel.get(), "/dreambooth.v1.DreamBooth/CreateJob",
                             WithInvalidUtf8(create, placeholder));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_NE(status.error_message().find("field 'spec.instance_prompt' is not valid UTF-8"),
            std::string::npos)
      << status.error_message();

  // Server-streaming calls too.
  v1::WatchJobRequest watch;
  watch.set_job_id(placeholder);
  status = RawServerStreaming<v1::JobEvent>(channel.get(), "/dreambooth.v1.DreamBooth/WatchJob",
                                            WithInvalidUtf8(watch, placeholder));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_NE(status.error_message().find("dreambooth.v1.WatchJobRequest: field 'job_id'"),
            std::string::npos)
      << status.error_message();

  // Bytes that are no protobuf message at all.
  status = RawUnary<v1::Job>(channel.get(), "/dreambooth.v1.DreamBooth/GetJob",
                             std::string("\x0a\xff\xff\xff\xff\x0f", 6));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_EQ(status.error_message(),
            "request is not a valid dreambooth.v1.GetJobRequest: malformed protobuf wire format");

  // Nothing of that disturbed the server, and nothing was created.
  absl::StatusOr<v1::ListJobsResponse> jobs = client_->ListJobs(10, "");
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_EQ(jobs->jobs_size(), 0);
}

TEST_F(HostileClientTest, TheWorkerServiceAnswersUndecodableRequestsLikeThePublicOne) {
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(daemon_->worker_address(), grpc::InsecureChannelCredentials());
  const std::string placeholder = "PLACEHOLDER";
  v1::HeartbeatRequest beat;
  beat.set_lease_token(placeholder);
  grpc::Status status = RawUnary<v1::HeartbeatResponse>(
      channel.get(), "/dreambooth.v1.WorkerGateway/Heartbeat", WithInvalidUtf8(beat, placeholder));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_NE(status.error_message().find(
                "dreambooth.v1.HeartbeatRequest: field 'lease_token' is not valid UTF-8"),
            std::string::npos)
      << status.error_message();
  v1::ReadBlobRequest read;
  read.set_digest(placeholder);
  status = RawServerStreaming<v1::ReadBlobResponse>(
      channel.get(), "/dreambooth.v1.WorkerGateway/ReadBlob", WithInvalidUtf8(read, placeholder));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  // A well-formed call still works.
  v1::LeaseTaskRequest lease;
  lease.set_worker_id("w");
  status = RawUnary<v1::LeaseTaskResponse>(channel.get(), "/dreambooth.v1.WorkerGateway/LeaseTask",
                                           lease.SerializeAsString());
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(HostileClientTest, AnUploadMessageThatDoesNotParseFailsTheUploadAndStoresNothing) {
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(daemon_->address(), grpc::InsecureChannelCredentials());
  // A complete first file, then a second whose name is not UTF-8, then a clean half-close.
  std::vector<v1::UploadImagesRequest> messages = UploadMessages("", 2);
  messages[3].mutable_file()->set_name("PLACEHOLDER");
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::UploadImagesResponse response;
  std::unique_ptr<grpc::ClientWriter<grpc::ByteBuffer>> writer(
      grpc::internal::ClientWriterFactory<grpc::ByteBuffer>::Create(
          channel.get(),
          grpc::internal::RpcMethod("/dreambooth.v1.DreamBooth/UploadImages",
                                    grpc::internal::RpcMethod::CLIENT_STREAMING),
          &c, &response));
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string bytes =
        i == 3 ? WithInvalidUtf8(messages[i], "PLACEHOLDER") : messages[i].SerializeAsString();
    if (!writer->Write(Buffer(bytes))) break;
  }
  writer->WritesDone();
  const grpc::Status status = writer->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_EQ(status.error_message(),
            "message 4 of the stream is not a valid dreambooth.v1.UploadImagesRequest: field "
            "'file.name' is not valid UTF-8 (string fields must be UTF-8 text; send binary data "
            "as bytes)");

  absl::StatusOr<v1::ListImageSetsResponse> sets = client_->ListImageSets(100, "");
  ASSERT_TRUE(sets.ok()) << sets.status();
  EXPECT_EQ(sets->image_sets_size(), 0) << sets->DebugString();
}

TEST_F(HostileClientTest, AWriteBlobMessageThatDoesNotParseFailsTheCallAndStoresNothing) {
  const std::string set = UploadImages(1);
  ASSERT_TRUE(client_->CreateJob(MinimalSpec(set)).ok());
  TestWorker worker(workers_.get(), "w");
  std::optional<v1::Task> task = worker.Lease();
  ASSERT_TRUE(task.has_value());
  auto blobs = [&] {
    int n = 0;
    for (const auto& f :
         std::filesystem::recursive_directory_iterator(dir_.Join("data/blobs/sha256"))) {
      n += f.is_regular_file() ? 1 : 0;
    }
    return n;
  };
  const int before = blobs();
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(daemon_->worker_address(), grpc::InsecureChannelCredentials());
  // A header and a chunk, then a header whose digest is not UTF-8, then a clean half-close.
  std::vector<v1::WriteBlobRequest> messages(3);
  messages[0].mutable_header()->set_lease_token(task->lease_token());
  messages[1].set_chunk("some bytes");
  messages[2].mutable_header()->set_sha256("PLACEHOLDER");
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::WriteBlobResponse response;
  std::unique_ptr<grpc::ClientWriter<grpc::ByteBuffer>> writer(
      grpc::internal::ClientWriterFactory<grpc::ByteBuffer>::Create(
          channel.get(),
          grpc::internal::RpcMethod("/dreambooth.v1.WorkerGateway/WriteBlob",
                                    grpc::internal::RpcMethod::CLIENT_STREAMING),
          &c, &response));
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string bytes =
        i == 2 ? WithInvalidUtf8(messages[i], "PLACEHOLDER") : messages[i].SerializeAsString();
    if (!writer->Write(Buffer(bytes))) break;
  }
  writer->WritesDone();
  const grpc::Status status = writer->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_NE(status.error_message().find("message 3 of the stream is not a valid "
                                        "dreambooth.v1.WriteBlobRequest: field 'header.sha256'"),
            std::string::npos)
      << status.error_message();
  EXPECT_EQ(blobs(), before);
  // A well-formed write still works.
  grpc::Status ok;
  worker.WriteBlob(task->lease_token(), "some bytes", &ok);
  EXPECT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_EQ(blobs(), before + 1);
}

}  // namespace
}  // namespace dreambooth::testing
