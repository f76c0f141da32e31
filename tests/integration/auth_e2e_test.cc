// The service's security, end to end on a real dreamboothd (and real workers): API keys made by
// `dreamboothd keys`, tenants that cannot see each other, worker credentials confined to the
// worker listener, TLS with a test CA (scripts/make_test_certs.sh), and the startup refusals of
// insecure configurations.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/integration/e2e_support.h"
#include "tests/testing/command_run.h"
#include "tests/testing/daemon.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/worker_gateway_client.h"

#ifndef DB_SOURCE_DIR
#define DB_SOURCE_DIR "."
#endif

namespace dreambooth::testing {
namespace {

using ::grpc::StatusCode;

// `dreamboothd keys create` against `data_dir`; returns the key it printed.
std::string CreateKey(const std::string& data_dir, const std::string& tenant,
                      const std::string& role) {
  CommandRun run = RunCommand(absl::StrCat(DreamboothdPath(), " keys create --data-dir=", data_dir,
                                           " --tenant=", tenant, " --role=", role));
  EXPECT_EQ(run.exit_code, 0) << run.out;
  for (absl::string_view line : absl::StrSplit(run.out, '\n')) {
    if (absl::StartsWith(line, "dbk_")) return std::string(line);
  }
  ADD_FAILURE() << "no key in: " << run.out;
  return "";
}

std::unique_ptr<client::Client> ClientFor(const std::string& target, const std::string& key,
                                          const std::string& ca = "") {
  client::ClientOptions options;
  options.target = target;
  options.call_timeout_ms = 10'000;
  options.stream_timeout_ms = 120'000;
  options.max_attempts = 2;
  options.security.api_key = key;
  options.security.ca_cert_file = ca;
  return std::make_unique<client::Client>(options);
}

// A client of the worker listener at `target` with `key`.
std::unique_ptr<WorkerGatewayClient> WorkerFor(const std::string& target, const std::string& key) {
  client::ClientOptions options;
  options.target = target;
  options.call_timeout_ms = 10'000;
  options.max_attempts = 2;
  options.security.api_key = key;
  return std::make_unique<WorkerGatewayClient>(options);
}

grpc::ClientContext* WithDeadline(grpc::ClientContext* c) {
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return c;
}

// Every WorkerGateway RPC once, with harmless arguments; returns each call's status.
std::vector<std::pair<std::string, grpc::Status>> CallEveryWorkerRpc(client::Client& c) {
  const std::unique_ptr<v1::WorkerGateway::Stub> stub = v1::WorkerGateway::NewStub(c.channel());
  v1::WorkerGateway::Stub& g = *stub;
  std::vector<std::pair<std::string, grpc::Status>> out;
  auto unary = [&](const std::string& name,
                   const std::function<grpc::Status(grpc::ClientContext*)>& call) {
    grpc::ClientContext context;
    out.emplace_back(name, call(WithDeadline(&context)));
  };
  const std::string token = "lt_0123456789abcdef";
  unary("LeaseTask", [&](grpc::ClientContext* ctx) {
    v1::LeaseTaskRequest r;
    r.set_worker_id("intruder");
    v1::LeaseTaskResponse resp;
    return g.LeaseTask(ctx, r, &resp);
  });
  unary("Heartbeat", [&](grpc::ClientContext* ctx) {
    v1::HeartbeatRequest r;
    r.set_lease_token(token);
    v1::HeartbeatResponse resp;
    return g.Heartbeat(ctx, r, &resp);
  });
  unary("ReportEvents", [&](grpc::ClientContext* ctx) {
    v1::ReportEventsRequest r;
    r.set_lease_token(token);
    v1::ReportEventsResponse resp;
    return g.ReportEvents(ctx, r, &resp);
  });
  unary("ReadBlob", [&](grpc::ClientContext* ctx) {
    v1::ReadBlobRequest r;
    r.set_digest(std::string(64, 'a'));
    auto reader = g.ReadBlob(ctx, r);
    v1::ReadBlobResponse resp;
    while (reader->Read(&resp)) {
    }
    return reader->Finish();
  });
  unary("WriteBlob", [&](grpc::ClientContext* ctx) {
    v1::WriteBlobResponse resp;
    auto writer = g.WriteBlob(ctx, &resp);
    v1::WriteBlobRequest r;
    r.mutable_header()->set_lease_token(token);
    writer->Write(r);
    writer->WritesDone();
    return writer->Finish();
  });
  unary("CommitCheckpoint", [&](grpc::ClientContext* ctx) {
    v1::CommitCheckpointRequest r;
    r.set_lease_token(token);
    v1::CommitCheckpointResponse resp;
    return g.CommitCheckpoint(ctx, r, &resp);
  });
  unary("CompleteTask", [&](grpc::ClientContext* ctx) {
    v1::CompleteTaskRequest r;
    r.set_lease_token(token);
    v1::CompleteTaskResponse resp;
    return g.CompleteTask(ctx, r, &resp);
  });
  unary("FailTask", [&](grpc::ClientContext* ctx) {
    v1::FailTaskRequest r;
    r.set_lease_token(token);
    r.set_error("x");
    v1::FailTaskResponse resp;
    return g.FailTask(ctx, r, &resp);
  });
  unary("ReleaseTask", [&](grpc::ClientContext* ctx) {
    v1::ReleaseTaskRequest r;
    r.set_lease_token(token);
    v1::ReleaseTaskResponse resp;
    return g.ReleaseTask(ctx, r, &resp);
  });
  unary("ReportSampleOutput", [&](grpc::ClientContext* ctx) {
    v1::ReportSampleOutputRequest r;
    r.set_lease_token(token);
    v1::ReportSampleOutputResponse resp;
    return g.ReportSampleOutput(ctx, r, &resp);
  });
  unary("GetCacheEntry", [&](grpc::ClientContext* ctx) {
    v1::GetCacheEntryRequest r;
    r.set_key("k");
    v1::GetCacheEntryResponse resp;
    return g.GetCacheEntry(ctx, r, &resp);
  });
  unary("PutCacheEntry", [&](grpc::ClientContext* ctx) {
    v1::PutCacheEntryRequest r;
    r.set_key("k");
    r.set_lease_token(token);
    v1::PutCacheEntryResponse resp;
    return g.PutCacheEntry(ctx, r, &resp);
  });
  return out;
}

// Every public RPC once through the SDK; returns each call's status.
std::vector<std::pair<std::string, absl::Status>> CallEveryPublicRpc(client::Client& c,
                                                                     const std::string& set,
                                                                     const std::string& job) {
  v1::SampleRequest sample;
  sample.set_job_id(job);
  sample.set_prompt("a photo of sks toy");
  return {
      {"UploadImages", c.Upload({{"a.png", InstancePng(0)}}, "", "x").status()},
      {"GetImageSet", c.GetImageSet(set).status()},
      {"ListImageSets", c.ListImageSets(10, "").status()},
      {"DeleteImageSet", c.DeleteImageSet(set)},
      {"CreateJob", c.CreateJob(TinySpec(set, 2, 0)).status()},
      {"GetJob", c.GetJob(job).status()},
      {"ListJobs", c.ListJobs(10, "", v1::JOB_STATE_UNSPECIFIED).status()},
      {"CancelJob", c.CancelJob(job).status()},
      {"WatchJob", c.WatchJob(job, 0, [](const v1::JobEvent&) { return false; })},
      {"ListCheckpoints", c.ListCheckpoints(job).status()},
      {"DownloadCheckpoint", c.DownloadCheckpoint("ck_0123456789abcdef", "/nonexistent").status()},
      {"Sample", c.Sample(sample, [](const v1::SampleResponse&) {})},
      {"DeleteCheckpoint", c.DeleteCheckpoint("ck_0123456789abcdef")},
      {"DeleteJob", c.DeleteJob(job)},
  };
}

class AuthE2eTest : public ::testing::Test {
 protected:
  // Keys first (the daemon need not run for `dreamboothd keys`), then a daemon that requires them.
  void SetUp() override {
    data_ = dir_.Join("data");
    key_a_ = CreateKey(data_, "team-a", "tenant");
    key_b_ = CreateKey(data_, "team-b", "tenant");
    admin_ = CreateKey(data_, "ops", "admin");
    worker_key_ = CreateKey(data_, "ops", "worker");
    DaemonOptions options;
    options.data_dir = data_;
    options.extra_args = {"--auth=api-keys", "--lease-ttl=9s", "--sweep-interval=100ms"};
    absl::StatusOr<std::unique_ptr<Daemon>> d = Daemon::Start(options);
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_ = std::move(*d);
    a_ = ClientFor(daemon_->address(), key_a_);
    b_ = ClientFor(daemon_->address(), key_b_);
  }

  // Tenant A's image set and job.
  void MakeTenantAJob() {
    absl::StatusOr<v1::UploadImagesResponse> up =
        a_->Upload({{"s0.png", InstancePng(0)}, {"s1.png", InstancePng(1)}}, "", "subject");
    ASSERT_TRUE(up.ok()) << up.status();
    set_a_ = up->image_set().id();
    absl::StatusOr<v1::Job> job = a_->CreateJob(TinySpec(set_a_, 2, 0), "req-1");
    ASSERT_TRUE(job.ok()) << job.status();
    job_a_ = job->id();
  }

  TempDir dir_;
  std::string data_, key_a_, key_b_, admin_, worker_key_;
  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<client::Client> a_, b_;
  std::string set_a_, job_a_;
};

TEST_F(AuthE2eTest, AnonymousCallersAreUnauthenticatedOnEveryRpcOfBothListeners) {
  MakeTenantAJob();
  std::unique_ptr<client::Client> anonymous = ClientFor(daemon_->address(), "");
  for (const auto& [rpc, status] : CallEveryPublicRpc(*anonymous, set_a_, job_a_)) {
    EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated) << rpc << ": " << status;
    EXPECT_TRUE(absl::StrContains(status.message(), "requires an API key"))
        << rpc << ": " << status;
  }
  std::unique_ptr<client::Client> anonymous_worker = ClientFor(daemon_->worker_address(), "");
  for (const auto& [rpc, status] : CallEveryWorkerRpc(*anonymous_worker)) {
    EXPECT_EQ(status.error_code(), StatusCode::UNAUTHENTICATED)
        << rpc << ": " << status.error_message();
  }
  // A forged key is refused like a missing one; nothing of A's changed.
  std::unique_ptr<client::Client> forged =
      ClientFor(daemon_->address(), "dbk_0123456789abcdef_" + std::string(64, 'f'));
  EXPECT_EQ(forged->GetJob(job_a_).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(a_->GetJob(job_a_)->state(), v1::JOB_STATE_QUEUED);
}

TEST_F(AuthE2eTest, ATenantCannotSeeReadCancelOrSampleAnotherTenantsResources) {
  MakeTenantAJob();
  // Each call B makes on A's ids answers like an id that does not exist.
  const std::string missing_set = "is_00000000deadbeef";
  const std::string missing_job = "job_00000000deadbeef";
  for (const auto& [rpc, status] : CallEveryPublicRpc(*b_, set_a_, job_a_)) {
    if (rpc == "UploadImages" || rpc == "ListImageSets" || rpc == "ListJobs") {
      EXPECT_TRUE(status.ok()) << rpc << ": " << status;  // B's own (new or empty) things
      continue;
    }
    if (rpc == "CreateJob") {  // A's set is not B's to train on
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
      EXPECT_TRUE(absl::StrContains(status.message(), "does not exist")) << status;
      continue;
    }
    EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << rpc << ": " << status;
  }
  EXPECT_EQ(b_->GetJob(job_a_).status().message(), absl::StrCat("job '", job_a_, "' not found"));
  EXPECT_EQ(b_->GetJob(missing_job).status().message(),
            absl::StrCat("job '", missing_job, "' not found"));
  EXPECT_EQ(b_->GetImageSet(missing_set).status().code(), absl::StatusCode::kNotFound);
  // Uploading into A's set is refused too, and B's lists hold only B's upload.
  EXPECT_EQ(b_->Upload({{"x.png", InstancePng(2)}}, set_a_, "").status().code(),
            absl::StatusCode::kNotFound);
  absl::StatusOr<v1::ListImageSetsResponse> b_sets = b_->ListImageSets(100, "");
  ASSERT_TRUE(b_sets.ok());
  for (const v1::ImageSet& s : b_sets->image_sets()) EXPECT_NE(s.id(), set_a_);
  EXPECT_EQ(b_->ListJobs(100, "", v1::JOB_STATE_UNSPECIFIED)->jobs_size(), 0);

  // A's job and set are untouched (B's DeleteImageSet and CancelJob found nothing).
  EXPECT_EQ(a_->GetJob(job_a_)->state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(a_->GetImageSet(set_a_)->images_size(), 2);
  // Request ids are per tenant: B's "req-1" is a new job of B's, not A's job.
  absl::StatusOr<v1::UploadImagesResponse> b_up = b_->Upload({{"b.png", InstancePng(3)}}, "", "b");
  ASSERT_TRUE(b_up.ok());
  absl::StatusOr<v1::Job> b_job = b_->CreateJob(TinySpec(b_up->image_set().id(), 2, 0), "req-1");
  ASSERT_TRUE(b_job.ok()) << b_job.status();
  EXPECT_NE(b_job->id(), job_a_);

  // An admin key sees both tenants.
  std::unique_ptr<client::Client> admin = ClientFor(daemon_->address(), admin_);
  EXPECT_TRUE(admin->GetJob(job_a_).ok());
  EXPECT_TRUE(admin->GetJob(b_job->id()).ok());
  EXPECT_EQ(admin->ListJobs(100, "", v1::JOB_STATE_UNSPECIFIED)->jobs_size(), 2);
  EXPECT_EQ(a_->ListJobs(100, "", v1::JOB_STATE_UNSPECIFIED)->jobs_size(), 1);
}

TEST_F(AuthE2eTest, CredentialsWorkOnlyOnTheirOwnListener) {
  MakeTenantAJob();
  // The worker service is not on the public port at all.
  std::unique_ptr<client::Client> a_on_public = ClientFor(daemon_->address(), key_a_);
  for (const auto& [rpc, status] : CallEveryWorkerRpc(*a_on_public)) {
    EXPECT_EQ(status.error_code(), StatusCode::UNIMPLEMENTED) << rpc;
  }
  // A tenant key on the worker listener, a worker key on the public one: PERMISSION_DENIED.
  std::unique_ptr<client::Client> a_on_worker = ClientFor(daemon_->worker_address(), key_a_);
  for (const auto& [rpc, status] : CallEveryWorkerRpc(*a_on_worker)) {
    EXPECT_EQ(status.error_code(), StatusCode::PERMISSION_DENIED) << rpc;
    EXPECT_TRUE(absl::StrContains(status.error_message(), "only worker keys")) << rpc;
  }
  std::unique_ptr<client::Client> worker_on_public = ClientFor(daemon_->address(), worker_key_);
  for (const auto& [rpc, status] : CallEveryPublicRpc(*worker_on_public, set_a_, job_a_)) {
    EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << rpc << ": " << status;
  }
  // The worker key leases A's job on the worker listener.
  std::unique_ptr<WorkerGatewayClient> worker = WorkerFor(daemon_->worker_address(), worker_key_);
  grpc::ClientContext context;
  v1::LeaseTaskRequest lease;
  lease.set_worker_id("w1");
  lease.add_base_models("tiny");
  v1::LeaseTaskResponse leased;
  ASSERT_TRUE(worker->gateway().LeaseTask(WithDeadline(&context), lease, &leased).ok());
  ASSERT_TRUE(leased.has_task());
  EXPECT_EQ(leased.task().job_id(), job_a_);

  // Revoked keys stop working at once, on the running daemon.
  CommandRun list = RunCommand(absl::StrCat(DreamboothdPath(), " keys list --data-dir=", data_));
  ASSERT_EQ(list.exit_code, 0) << list.out;
  const std::string a_id = key_a_.substr(4, 16);
  EXPECT_TRUE(absl::StrContains(list.out, a_id)) << list.out;
  EXPECT_FALSE(absl::StrContains(list.out, key_a_.substr(21))) << "a secret was listed";
  CommandRun revoke =
      RunCommand(absl::StrCat(DreamboothdPath(), " keys revoke ", a_id, " --data-dir=", data_));
  ASSERT_EQ(revoke.exit_code, 0) << revoke.out;
  absl::StatusOr<v1::Job> after = a_->GetJob(job_a_);
  EXPECT_EQ(after.status().code(), absl::StatusCode::kUnauthenticated) << after.status();
}

// What a worker does under one lease, through the raw WorkerGateway stub.
class LeaseCalls {
 public:
  LeaseCalls(WorkerGatewayClient* worker, std::string token)
      : g_(worker->gateway()), token_(std::move(token)) {}

  grpc::Status Read(const std::string& digest) {
    grpc::ClientContext c;
    v1::ReadBlobRequest r;
    r.set_lease_token(token_);
    r.set_digest(digest);
    auto reader = g_.ReadBlob(WithDeadline(&c), r);
    v1::ReadBlobResponse chunk;
    while (reader->Read(&chunk)) {
    }
    return reader->Finish();
  }
  std::string Write(const std::string& bytes) {
    grpc::ClientContext c;
    v1::WriteBlobResponse response;
    auto writer = g_.WriteBlob(WithDeadline(&c), &response);
    v1::WriteBlobRequest r;
    r.mutable_header()->set_lease_token(token_);
    writer->Write(r);
    r.set_chunk(bytes);
    writer->Write(r);
    writer->WritesDone();
    EXPECT_TRUE(writer->Finish().ok());
    return response.digest();
  }
  grpc::Status Put(const std::string& key, const std::string& digest, int64_t size) {
    grpc::ClientContext c;
    v1::PutCacheEntryRequest r;
    r.set_lease_token(token_);
    r.set_key(key);
    v1::CacheItem* item = r.add_items();
    item->set_name("item");
    item->set_digest(digest);
    item->set_size_bytes(size);
    v1::PutCacheEntryResponse response;
    return g_.PutCacheEntry(WithDeadline(&c), r, &response);
  }
  v1::GetCacheEntryResponse Get(const std::string& key) {
    grpc::ClientContext c;
    v1::GetCacheEntryRequest r;
    r.set_lease_token(token_);
    r.set_key(key);
    v1::GetCacheEntryResponse response;
    EXPECT_TRUE(g_.GetCacheEntry(WithDeadline(&c), r, &response).ok());
    return response;
  }

 private:
  v1::WorkerGateway::Stub& g_;
  const std::string token_;
};

TEST_F(AuthE2eTest, ALeaseReachesOnlyItsOwnJobsBlobsAndItsTenantsCache) {
  MakeTenantAJob();
  absl::StatusOr<v1::UploadImagesResponse> up = b_->Upload({{"b.png", InstancePng(5)}}, "", "b");
  ASSERT_TRUE(up.ok()) << up.status();
  ASSERT_TRUE(b_->CreateJob(TinySpec(up->image_set().id(), 2, 0)).ok());
  std::unique_ptr<WorkerGatewayClient> worker = WorkerFor(daemon_->worker_address(), worker_key_);
  std::vector<v1::Task> tasks;
  for (int i = 0; i < 2; ++i) {
    grpc::ClientContext context;
    v1::LeaseTaskRequest lease;
    lease.set_worker_id("w1");
    v1::LeaseTaskResponse leased;
    ASSERT_TRUE(worker->gateway().LeaseTask(WithDeadline(&context), lease, &leased).ok());
    ASSERT_TRUE(leased.has_task());
    tasks.push_back(leased.task());
  }
  const v1::Task& ta = tasks[0].job_id() == job_a_ ? tasks[0] : tasks[1];
  const v1::Task& tb = tasks[0].job_id() == job_a_ ? tasks[1] : tasks[0];
  LeaseCalls a(worker.get(), ta.lease_token()), b(worker.get(), tb.lease_token());

  // Images: each lease reads its own job's, and the other's answer NOT_FOUND.
  const std::string a_image = ta.instance_images(0).digest();
  const std::string b_image = tb.instance_images(0).digest();
  EXPECT_TRUE(a.Read(a_image).ok());
  EXPECT_TRUE(b.Read(b_image).ok());
  EXPECT_EQ(b.Read(a_image).error_code(), StatusCode::NOT_FOUND);
  EXPECT_EQ(a.Read(b_image).error_code(), StatusCode::NOT_FOUND);

  // A's cache entry is A's: B's lease finds nothing under the same key and cannot overwrite it.
  const std::string a_blob = a.Write("class image of tenant a");
  ASSERT_TRUE(a.Put("classimg/v1/k", a_blob, 23).ok());
  EXPECT_TRUE(a.Get("classimg/v1/k").found());
  EXPECT_FALSE(b.Get("classimg/v1/k").found());
  EXPECT_EQ(b.Read(a_blob).error_code(), StatusCode::NOT_FOUND);
  EXPECT_EQ(b.Put("classimg/v1/k", a_blob, 23).error_code(), StatusCode::FAILED_PRECONDITION);
  const std::string b_blob = b.Write("class image of tenant b");
  ASSERT_TRUE(b.Put("classimg/v1/k", b_blob, 23).ok());
  EXPECT_EQ(a.Get("classimg/v1/k").items(0).digest(), a_blob);
  EXPECT_EQ(b.Get("classimg/v1/k").items(0).digest(), b_blob);
}

TEST_F(AuthE2eTest, AWorkerWithAWorkerKeyTrainsATenantsJobToSuccess) {
  MakeTenantAJob();
  const std::string key_file = dir_.Join("worker.key");
  WriteFile(key_file, worker_key_ + "\n");
  absl::StatusOr<std::unique_ptr<WorkerProcess>> worker = WorkerProcess::Start(
      {"--server", daemon_->worker_address(), "--api-key", "@" + key_file, "--cache-dir",
       dir_.Join("cache"), "--worker-id", "w1", "--threads", "1"},
      dir_.Join("w1.log"));
  ASSERT_TRUE(worker.ok()) << worker.status();
  absl::StatusOr<v1::Job> done = WaitForJob(*a_, job_a_, IsTerminal, 300'000);
  ASSERT_TRUE(done.ok()) << done.status() << (*worker)->Log();
  EXPECT_EQ(done->state(), v1::JOB_STATE_SUCCEEDED) << done->error() << (*worker)->Log();
  EXPECT_GE(a_->ListCheckpoints(job_a_)->checkpoints_size(), 1);
  EXPECT_EQ(b_->ListCheckpoints(job_a_).status().code(), absl::StatusCode::kNotFound);
}

// TLS with a test CA: a client that trusts the CA works; plaintext and a client trusting
// another CA do not reach the service; local workers connect with the daemon's own key.
TEST(TlsE2eTest, ServesTlsToClientsThatTrustItsCaAndItsLocalWorkersTrainThroughIt) {
  TempDir dir;
  const std::string certs = dir.Join("certs");
  const std::string other = dir.Join("other");
  for (const std::string& d : {certs, other}) {
    CommandRun made =
        RunCommand(absl::StrCat("bash ", DB_SOURCE_DIR, "/scripts/make_test_certs.sh ", d));
    ASSERT_EQ(made.exit_code, 0) << made.out;
  }
  const std::string data = dir.Join("data");
  const std::string key = CreateKey(data, "team-a", "tenant");
  DaemonOptions options;
  options.data_dir = data;
  options.ca_cert_file = certs + "/ca.pem";
  options.extra_args = {"--tls-cert=" + certs + "/server.pem",
                        "--tls-key=" + certs + "/server.key",
                        "--tls-ca-cert=" + certs + "/ca.pem",
                        "--auth=api-keys",
                        "--local-workers=1",
                        "--worker-threads=1",
                        "--worker-binary=" + WorkerBinary()};
  absl::StatusOr<std::unique_ptr<Daemon>> daemon = Daemon::Start(options);
  ASSERT_TRUE(daemon.ok()) << daemon.status();

  std::unique_ptr<client::Client> plaintext = ClientFor((*daemon)->address(), key);
  EXPECT_EQ(plaintext->ListJobs(1, "", v1::JOB_STATE_UNSPECIFIED).status().code(),
            absl::StatusCode::kUnavailable);
  std::unique_ptr<client::Client> wrong_ca =
      ClientFor((*daemon)->address(), key, other + "/ca.pem");
  EXPECT_EQ(wrong_ca->ListJobs(1, "", v1::JOB_STATE_UNSPECIFIED).status().code(),
            absl::StatusCode::kUnavailable);
  std::unique_ptr<client::Client> missing_ca =
      ClientFor((*daemon)->address(), key, dir.Join("no-such-ca.pem"));
  EXPECT_EQ(missing_ca->ListJobs(1, "", v1::JOB_STATE_UNSPECIFIED).status().code(),
            absl::StatusCode::kInvalidArgument);

  std::unique_ptr<client::Client> api = ClientFor((*daemon)->address(), key, certs + "/ca.pem");
  absl::StatusOr<v1::UploadImagesResponse> up = api->Upload({{"s.png", InstancePng(0)}}, "", "s");
  ASSERT_TRUE(up.ok()) << up.status();
  absl::StatusOr<v1::Job> job = api->CreateJob(TinySpec(up->image_set().id(), 2, 0));
  ASSERT_TRUE(job.ok()) << job.status();
  absl::StatusOr<v1::Job> done = WaitForJob(*api, job->id(), IsTerminal, 300'000);
  ASSERT_TRUE(done.ok()) << done.status() << (*daemon)->Log();
  EXPECT_EQ(done->state(), v1::JOB_STATE_SUCCEEDED) << done->error() << (*daemon)->Log();

  // dbctl speaks TLS with --ca-cert and takes its key from the environment.
  CommandRun listed = RunCommand(absl::StrCat("DREAMBOOTH_API_KEY=", key, " ", DB_DBCTL_PATH,
                                              " --server=", (*daemon)->address(),
                                              " --ca-cert=", certs, "/ca.pem jobs list"));
  EXPECT_EQ(listed.exit_code, 0) << listed.out;
  EXPECT_TRUE(absl::StrContains(listed.out, job->id())) << listed.out;
}

TEST(InsecureConfigTest, PlaintextOrNoAuthOffLoopbackIsRefusedAtStartup) {
  TempDir dir;
  const std::string data = dir.Join("data");
  struct Case {
    std::string flags;
    std::string message;
  };
  for (const Case& c : {
           Case{"--listen=0.0.0.0:0 --worker-listen=127.0.0.1:0",
                "refusing to serve plaintext on 0.0.0.0:0"},
           Case{"--listen=127.0.0.1:0 --worker-listen=0.0.0.0:0",
                "refusing to serve plaintext on 0.0.0.0:0"},
           Case{"--listen=0.0.0.0:0 --worker-listen=127.0.0.1:0 --allow-insecure --auth=none",
                "--auth=none is allowed only when"},
           Case{"--listen=127.0.0.1:0 --worker-listen=127.0.0.1:0 --auth=sometimes",
                "--auth must be auto, api-keys or none"},
           Case{"--listen=127.0.0.1:0 --worker-listen=127.0.0.1:0 --tls-cert=/nonexistent.pem",
                "--tls-cert and --tls-key must be given together"},
       }) {
    CommandRun run =
        RunCommand(absl::StrCat(DreamboothdPath(), " --data-dir=", data, " ", c.flags));
    EXPECT_EQ(run.exit_code, 2) << c.flags << ": " << run.out;
    EXPECT_TRUE(absl::StrContains(run.out, c.message)) << c.flags << ": " << run.out;
  }
  EXPECT_FALSE(std::filesystem::exists(data));
}

}  // namespace
}  // namespace dreambooth::testing
