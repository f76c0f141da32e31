// End-to-end: a real dreamboothd and real dreambooth-worker processes on loopback, training the
// built-in tiny model at resolution 64 for a few steps.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/image/image.h"
#include "dreambooth/v1/worker_gateway.grpc.pb.h"
#include "tests/integration/e2e_support.h"
#include "tests/testing/daemon.h"
#include "tests/testing/temp_dir.h"
#include "worker/diffusion/io/model_loader.h"
#include "worker/diffusion/io/safetensors.h"

namespace dreambooth::testing {
namespace {
namespace fs = std::filesystem;

class WorkerE2eTest : public ::testing::Test {
 protected:
  void StartDaemon(const std::vector<std::string>& extra = {"--lease-ttl=9s",
                                                            "--sweep-interval=100ms"}) {
    DaemonOptions options;
    options.data_dir = dir_.Join("data");
    options.port = port_;
    options.worker_port = worker_port_;  // a restart keeps both ports: workers reconnect
    options.extra_args = extra;
    options.extra_args.push_back("--model-root=" + dir_.Join("models"));
    fs::create_directories(dir_.Join("models"));
    absl::StatusOr<std::unique_ptr<Daemon>> d = Daemon::Start(options);
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_ = std::move(*d);
    port_ = daemon_->port();
    worker_port_ = daemon_->options().worker_port;
    api_ = MakeApiClient(daemon_->address());
  }

  std::unique_ptr<WorkerProcess> StartWorker(const std::string& name,
                                             std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--server",     daemon_->worker_address(),
                                     "--cache-dir",  dir_.Join("cache-" + name),
                                     "--model-root", dir_.Join("models"),
                                     "--worker-id",  name,
                                     "--threads",    "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    absl::StatusOr<std::unique_ptr<WorkerProcess>> w =
        WorkerProcess::Start(args, dir_.Join(name + ".log"));
    EXPECT_TRUE(w.ok()) << w.status();
    return w.ok() ? std::move(*w) : nullptr;
  }

  std::string UploadInstances(int n = 2) {
    std::vector<client::UploadFile> files;
    for (int i = 0; i < n; ++i) files.push_back({absl::StrCat("toy", i, ".png"), InstancePng(i)});
    absl::StatusOr<v1::UploadImagesResponse> uploaded = api_->Upload(files, "", "test set");
    EXPECT_TRUE(uploaded.ok()) << uploaded.status();
    return uploaded.ok() ? uploaded->image_set().id() : "";
  }

  std::vector<v1::JobEvent> AllEvents(const std::string& job_id) {
    std::vector<v1::JobEvent> events;
    absl::Status s = api_->WatchJob(job_id, 0, [&](const v1::JobEvent& e) {
      events.push_back(e);
      return true;
    });
    EXPECT_TRUE(s.ok()) << s;
    return events;
  }

  // Shared-cache entries as server key -> (item name -> digest).
  using CacheEntries = std::map<std::string, std::map<std::string, std::string>>;

  // The entries a worker's local caches hold, under the server keys of worker/shared_cache.h:
  // <cache>/class_images/<store key>/NNNNNN.png and <cache>/latents/xx/<key sha>.safetensors.
  static CacheEntries LocalCacheEntries(const std::string& cache_dir) {
    CacheEntries entries;
    for (const auto& store : fs::directory_iterator(cache_dir + "/class_images")) {
      auto& items = entries["classimg/v1/" + store.path().filename().string()];
      for (const auto& file : fs::directory_iterator(store.path())) {
        if (file.path().extension() != ".png") continue;
        items[file.path().filename().string()] = Sha256File(file.path()).value_or("");
      }
    }
    for (const auto& file : fs::recursive_directory_iterator(cache_dir + "/latents")) {
      if (file.path().extension() != ".safetensors") continue;
      entries["latent/v1/" + file.path().stem().string()]["posterior.safetensors"] =
          Sha256File(file.path()).value_or("");
    }
    return entries;
  }

  // The server's entries under the keys of `like`, read the way a worker reads them: under the
  // lease of a probe job (`spec`) this test leases itself, so no worker may be running.
  CacheEntries ServerCacheEntries(const CacheEntries& like, const v1::JobSpec& spec) {
    CacheEntries entries;
    absl::StatusOr<v1::Job> probe = api_->CreateJob(spec);
    EXPECT_TRUE(probe.ok()) << probe.status();
    const std::unique_ptr<v1::WorkerGateway::Stub> gateway =
        v1::WorkerGateway::NewStub(MakeApiClient(daemon_->worker_address())->channel());
    v1::LeaseTaskResponse leased;
    {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      v1::LeaseTaskRequest lease;
      lease.set_worker_id("cache-probe");
      const grpc::Status status = gateway->LeaseTask(&context, lease, &leased);
      EXPECT_TRUE(status.ok() && leased.has_task()) << status.error_message();
    }
    for (const auto& [key, unused] : like) {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      v1::GetCacheEntryRequest request;
      request.set_key(key);
      request.set_lease_token(leased.task().lease_token());
      v1::GetCacheEntryResponse response;
      const grpc::Status status = gateway->GetCacheEntry(&context, request, &response);
      EXPECT_TRUE(status.ok()) << key << ": " << status.error_message();
      if (!response.found()) continue;
      for (const v1::CacheItem& item : response.items()) {
        entries[key][item.name()] = item.digest();
      }
    }
    return entries;
  }

  // The stream of a DownloadCheckpoint call from `read_offset` (raw stub: no resumption).
  struct RawDownload {
    v1::Checkpoint manifest;
    std::string data;
    absl::Status status;
  };
  RawDownload Download(const std::string& checkpoint_id, int64_t read_offset,
                       v1::CheckpointFormat format) {
    grpc::ClientContext context;
    v1::DownloadCheckpointRequest request;
    request.set_checkpoint_id(checkpoint_id);
    request.set_read_offset(read_offset);
    request.set_format(format);
    auto reader = api_->stub().DownloadCheckpoint(&context, request);
    RawDownload out;
    v1::DownloadCheckpointResponse message;
    while (reader->Read(&message)) {
      if (message.has_checkpoint()) out.manifest = message.checkpoint();
      if (message.data().empty()) continue;
      EXPECT_EQ(message.offset(), read_offset + static_cast<int64_t>(out.data.size()));
      out.data += message.data();
    }
    const grpc::Status status = reader->Finish();
    out.status =
        absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
    return out;
  }

  // A FINAL checkpoint as one LDM .safetensors: the manifest's one file and its digest, the same
  // bytes from a middle read_offset, the folder's weights; FAILED_PRECONDITION for RESUME.
  void ExpectSingleFileDownloads(const std::string& job_id, const std::string& final_id,
                                 const std::string& folder,
                                 const google::protobuf::RepeatedPtrField<v1::Checkpoint>& all) {
    const std::string dir = dir_.Join("single");
    absl::StatusOr<v1::Checkpoint> manifest =
        api_->DownloadCheckpoint(final_id, dir, v1::CHECKPOINT_FORMAT_SINGLE_FILE);
    ASSERT_TRUE(manifest.ok()) << manifest.status();
    ASSERT_EQ(manifest->files_size(), 1);
    const v1::CheckpointFile& file = manifest->files(0);
    EXPECT_EQ(file.path(), absl::StrCat(job_id, "-step4.safetensors"));
    EXPECT_EQ(manifest->total_bytes(), file.size_bytes());
    const std::string path = dir + "/" + file.path();
    EXPECT_EQ(Sha256File(path).value_or(""), file.digest());

    RawDownload whole = Download(final_id, 0, v1::CHECKPOINT_FORMAT_SINGLE_FILE);
    ASSERT_TRUE(whole.status.ok()) << whole.status;
    ASSERT_EQ(static_cast<int64_t>(whole.data.size()), file.size_bytes());
    const int64_t middle = file.size_bytes() / 2 + 7;
    RawDownload rest = Download(final_id, middle, v1::CHECKPOINT_FORMAT_SINGLE_FILE);
    ASSERT_TRUE(rest.status.ok()) << rest.status;
    EXPECT_EQ(rest.manifest.files(0).digest(), file.digest());
    EXPECT_TRUE(rest.data == whole.data.substr(middle));

    absl::StatusOr<diffusion::StableDiffusion> from_file = diffusion::LoadStableDiffusion(path);
    absl::StatusOr<diffusion::StableDiffusion> from_folder = diffusion::LoadStableDiffusion(folder);
    ASSERT_TRUE(from_file.ok()) << from_file.status();
    ASSERT_TRUE(from_folder.ok()) << from_folder.status();
    const diffusion::TensorMap a = diffusion::ModuleStateDict(*from_file->unet);
    const diffusion::TensorMap b = diffusion::ModuleStateDict(*from_folder->unet);
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [name, tensor] : b) EXPECT_TRUE(at::equal(a.at(name), tensor)) << name;
    std::map<std::string, std::string> metadata;
    ASSERT_TRUE(diffusion::ReadSafetensorsHeader(path, &metadata).ok());
    EXPECT_EQ(metadata["dreambooth.job_id"], job_id);
    EXPECT_EQ(metadata["dreambooth.step"], "4");

    for (const v1::Checkpoint& c : all) {
      if (c.kind() != v1::CHECKPOINT_KIND_RESUME) continue;
      RawDownload refused = Download(c.id(), 0, v1::CHECKPOINT_FORMAT_SINGLE_FILE);
      EXPECT_TRUE(absl::IsFailedPrecondition(refused.status)) << refused.status;
      EXPECT_TRUE(absl::StrContains(refused.status.message(), "RESUME")) << refused.status;
    }
  }

  std::string Diagnostics(const WorkerProcess* worker) {
    return ProcessLogs(worker, daemon_ ? daemon_->Log() : "");
  }

  TempDir dir_;
  int port_ = 0;
  int worker_port_ = 0;
  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<client::Client> api_;
};

v1::JobSpec PriorSpec(const std::string& set) {
  v1::JobSpec spec = TinySpec(set, 4, 2);
  spec.set_with_prior_preservation(true);
  spec.set_regularization_prompt("a photo of a toy");
  spec.set_num_reg_images(2);
  spec.set_num_images_per_prompt(2);
  spec.mutable_class_sampler()->set_scheduler(v1::SCHEDULER_KIND_DDIM);
  spec.mutable_class_sampler()->set_num_inference_steps(2);
  return spec;
}

TEST_F(WorkerE2eTest, FullJobRunsEveryStageCommitsCheckpointsAndSamples) {
  StartDaemon();
  auto worker = StartWorker("w1");
  ASSERT_NE(worker, nullptr);
  absl::StatusOr<v1::Job> job = api_->CreateJob(PriorSpec(UploadInstances()));
  ASSERT_TRUE(job.ok()) << job.status();
  absl::StatusOr<v1::Job> done = WaitForJob(*api_, job->id(), IsTerminal, 300'000);
  ASSERT_TRUE(done.ok()) << done.status() << Diagnostics(worker.get());
  ASSERT_EQ(done->state(), v1::JOB_STATE_SUCCEEDED) << done->error() << Diagnostics(worker.get());

  // Every stage's events, in order, and sequence numbers without gaps.
  std::vector<v1::JobEvent> events = AllEvents(job->id());
  std::vector<v1::JobStage> stages;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].sequence(), static_cast<int64_t>(i + 1));
    if (events[i].kind() != v1::EVENT_KIND_PROGRESS) continue;
    if (stages.empty() || stages.back() != events[i].stage()) stages.push_back(events[i].stage());
  }
  EXPECT_EQ(stages,
            (std::vector<v1::JobStage>{
                v1::JOB_STAGE_PREPARING, v1::JOB_STAGE_GENERATING_CLASS_IMAGES,
                v1::JOB_STAGE_CACHING_LATENTS, v1::JOB_STAGE_TRAINING, v1::JOB_STAGE_EXPORTING}))
      << Diagnostics(worker.get());
  int64_t last_training_step = 0;
  for (const v1::JobEvent& e : events) {
    if (e.kind() == v1::EVENT_KIND_PROGRESS && e.stage() == v1::JOB_STAGE_TRAINING) {
      EXPECT_GE(e.step(), last_training_step);
      last_training_step = e.step();
      EXPECT_EQ(e.total(), 4);
    }
  }
  EXPECT_EQ(last_training_step, 4);
  EXPECT_EQ(events.back().state(), v1::JOB_STATE_SUCCEEDED);

  // Checkpoints: sampleable weights at step 2, the final export at step 4, and only the newest
  // resume state (step 4; step 2's was pruned: resume_checkpoints_to_keep defaults to 1).
  absl::StatusOr<v1::ListCheckpointsResponse> checkpoints = api_->ListCheckpoints(job->id());
  ASSERT_TRUE(checkpoints.ok()) << checkpoints.status();
  std::set<std::pair<int64_t, v1::CheckpointKind>> kinds;
  std::string final_id;
  for (const v1::Checkpoint& c : checkpoints->checkpoints()) {
    kinds.insert({c.step(), c.kind()});
    if (c.kind() == v1::CHECKPOINT_KIND_FINAL) final_id = c.id();
  }
  EXPECT_FALSE(kinds.count({2, v1::CHECKPOINT_KIND_RESUME}));
  EXPECT_TRUE(kinds.count({4, v1::CHECKPOINT_KIND_RESUME}));
  EXPECT_TRUE(kinds.count({2, v1::CHECKPOINT_KIND_SAMPLEABLE}));
  EXPECT_TRUE(kinds.count({4, v1::CHECKPOINT_KIND_FINAL}));
  ASSERT_FALSE(final_id.empty());

  // The final checkpoint downloads, and every file matches its digest.
  const std::string out = dir_.Join("download");
  absl::StatusOr<v1::Checkpoint> manifest = api_->DownloadCheckpoint(final_id, out);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  ASSERT_GT(manifest->files_size(), 0);
  EXPECT_TRUE(fs::is_regular_file(out + "/model_index.json"));
  EXPECT_TRUE(fs::is_regular_file(out + "/unet/diffusion_pytorch_model.safetensors"));
  for (const v1::CheckpointFile& f : manifest->files()) {
    const std::string path = out + "/" + f.path();
    EXPECT_EQ(Sha256File(path).value_or(""), f.digest()) << f.path();
    EXPECT_EQ(static_cast<int64_t>(fs::file_size(path)), f.size_bytes()) << f.path();
  }
  ExpectSingleFileDownloads(job->id(), final_id, out, checkpoints->checkpoints());

  // Sample from the final checkpoint: valid PNGs of the requested size.
  v1::SampleRequest sample;
  sample.set_job_id(job->id());
  sample.set_checkpoint_id(final_id);
  sample.set_prompt("a photo of sks toy");
  sample.set_num_images(2);
  sample.set_width(64);
  sample.set_height(64);
  sample.mutable_sampler()->set_num_inference_steps(3);
  sample.set_seed(7);
  int progress = 0;
  std::vector<v1::SampleImage> images;
  absl::Status sampled = api_->Sample(sample, [&](const v1::SampleResponse& r) {
    if (r.has_image()) images.push_back(r.image());
    if (r.has_progress()) ++progress;
  });
  ASSERT_TRUE(sampled.ok()) << sampled << Diagnostics(worker.get());
  ASSERT_EQ(images.size(), 2u);
  EXPECT_GT(progress, 0);
  for (int i = 0; i < 2; ++i) {
    const v1::SampleImage& img = images[i];
    EXPECT_EQ(img.index(), i);
    EXPECT_EQ(img.seed(), 7u + i);
    absl::StatusOr<image::ImageInfo> info = image::Probe(img.png(), image::DecodeLimits());
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->format, "png");
    EXPECT_EQ(info->width, 64);
    EXPECT_EQ(info->height, 64);
    EXPECT_TRUE(image::DecodeRgb(img.png(), image::DecodeLimits()).ok());
  }
}

TEST_F(WorkerE2eTest, SecondJobReusesClassImagesAndLatents) {
  StartDaemon();
  auto worker = StartWorker("w1");
  const std::string set = UploadInstances();
  absl::StatusOr<v1::Job> first = api_->CreateJob(PriorSpec(set));
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(WaitForJob(*api_, first->id(), IsTerminal, 300'000)->state(), v1::JOB_STATE_SUCCEEDED)
      << Diagnostics(worker.get());
  // A different worker with an empty local cache: reuse must come from the server's entries.
  worker->Stop(SIGKILL);
  auto other = StartWorker("w2");
  v1::JobSpec spec = PriorSpec(set);
  spec.set_max_train_steps(2);  // a different job on the same model and class prompt
  absl::StatusOr<v1::Job> second = api_->CreateJob(spec);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(WaitForJob(*api_, second->id(), IsTerminal, 300'000)->state(), v1::JOB_STATE_SUCCEEDED)
      << Diagnostics(other.get());

  // Everything the first worker produced was published to the server's shared cache, and the
  // second worker, which started empty, ended up holding exactly those entries; neither job
  // replaced or added to them.
  const CacheEntries produced = LocalCacheEntries(dir_.Join("cache-w1"));
  ASSERT_EQ(produced.size(), 1u + 4u) << "one class-image store, four posteriors";
  EXPECT_EQ(produced.begin()->second.size(), 2u) << produced.begin()->first;
  EXPECT_EQ(LocalCacheEntries(dir_.Join("cache-w2")), produced);
  other->Stop(SIGTERM);
  EXPECT_EQ(ServerCacheEntries(produced, spec), produced);

  // Whether the second worker fetched those entries or produced identical ones itself (both
  // are deterministic) is only reported in the stage's LOG line: the job's events carry no
  // structured cache counts yet.
  auto log_of = [&](const std::string& job_id, const std::string& prefix) {
    for (const v1::JobEvent& e : AllEvents(job_id)) {
      if (e.kind() == v1::EVENT_KIND_LOG && absl::StartsWith(e.message(), prefix)) {
        return e.message();
      }
    }
    return std::string();
  };
  const std::string second_class = log_of(second->id(), "class images:");
  EXPECT_NE(second_class.find("2 reused from the shared cache (2 fetched from the server), 0 "
                              "generated"),
            std::string::npos)
      << second_class;
  const std::string second_latents = log_of(second->id(), "latents:");
  EXPECT_NE(second_latents.find("4 reused from the shared cache (4 fetched from the server), 0 "
                                "encoded"),
            std::string::npos)
      << second_latents;
}

TEST_F(WorkerE2eTest, CancelStopsTrainingAndTheWorkerTakesTheNextJob) {
  StartDaemon();
  auto worker = StartWorker("w1");
  const std::string set = UploadInstances();
  absl::StatusOr<v1::Job> long_job = api_->CreateJob(TinySpec(set, 100000, 0));
  ASSERT_TRUE(long_job.ok()) << long_job.status();
  ASSERT_TRUE(
      WaitForJob(
          *api_, long_job->id(),
          [](const v1::Job& j) { return j.stage() == v1::JOB_STAGE_TRAINING && j.step() > 0; },
          60'000)
          .ok())
      << Diagnostics(worker.get());
  const auto cancel_time = std::chrono::steady_clock::now();
  ASSERT_TRUE(api_->CancelJob(long_job->id()).ok());
  absl::StatusOr<v1::Job> cancelled = WaitForJob(*api_, long_job->id(), IsTerminal, 120'000);
  ASSERT_TRUE(cancelled.ok()) << cancelled.status() << Diagnostics(worker.get());
  EXPECT_EQ(cancelled->state(), v1::JOB_STATE_CANCELLED);
  // The worker learns of the cancel on its next heartbeat (TTL/3 = 3 s) and stops before the
  // next training step (a few tenths of a second here), then saves a resume state: CANCELLED
  // within a few seconds. The step count is not a measure (steps are faster than heartbeats).
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - cancel_time).count();
  EXPECT_LT(seconds, 15.0);
  EXPECT_LT(cancelled->step(), 100000);

  absl::StatusOr<v1::Job> next = api_->CreateJob(TinySpec(set, 2, 0));
  ASSERT_TRUE(next.ok());
  absl::StatusOr<v1::Job> next_done = WaitForJob(*api_, next->id(), IsTerminal, 300'000);
  ASSERT_TRUE(next_done.ok()) << next_done.status();
  EXPECT_EQ(next_done->state(), v1::JOB_STATE_SUCCEEDED) << Diagnostics(worker.get());
}

}  // namespace
}  // namespace dreambooth::testing
