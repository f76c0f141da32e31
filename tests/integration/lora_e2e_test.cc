// End-to-end DreamBooth-LoRA: a real dreamboothd on loopback, a job with a `lora` block trained by
// a real dreambooth-worker on the built-in tiny model; its LoRA checkpoints in both layouts and its
// merged FINAL are listed and downloaded, Sample renders with the adapter (at two scales, and with
// none), and bad LoRA requests are refused naming the field.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "tests/integration/e2e_support.h"
#include "tests/testing/daemon.h"
#include "tests/testing/temp_dir.h"
#include "worker/diffusion/io/safetensors.h"

namespace dreambooth::testing {
namespace {
namespace fs = std::filesystem;

class LoraE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_.Join("models"));
    DaemonOptions options;
    options.data_dir = dir_.Join("data");
    options.extra_args = {"--lease-ttl=9s", "--sweep-interval=100ms",
                          "--model-root=" + dir_.Join("models")};
    absl::StatusOr<std::unique_ptr<Daemon>> d = Daemon::Start(options);
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_ = std::move(*d);
    api_ = MakeApiClient(daemon_->address());
  }

  std::string UploadInstances() {
    std::vector<std::string> paths;
    for (int i = 0; i < 2; ++i) {
      paths.push_back(dir_.Join(absl::StrCat("toy", i, ".png")));
      WriteFile(paths.back(), InstancePng(i));
    }
    absl::StatusOr<v1::UploadImagesResponse> up = api_->UploadFiles(paths, "", "toys");
    EXPECT_TRUE(up.ok()) << up.status();
    return up.ok() ? up->image_set().id() : "";
  }

  static v1::JobSpec LoraSpec(const std::string& set) {
    v1::JobSpec spec = TinySpec(set, /*max_train_steps=*/4, /*checkpointing_steps=*/2);
    spec.mutable_lora()->set_rank(2);
    spec.mutable_lora()->set_learning_rate(1e-2);
    spec.add_validation_prompts("a photo of sks toy");
    spec.set_validation_steps(2);
    spec.mutable_validation_sampler()->set_num_inference_steps(2);
    return spec;
  }

  // PNG bytes of one Sample call (3 steps, 64x64, seed 7).
  absl::StatusOr<std::string> SampleOnce(const std::string& job_id,
                                         const std::string& checkpoint_id,
                                         std::optional<float> scale) {
    v1::SampleRequest sample;
    sample.set_job_id(job_id);
    sample.set_checkpoint_id(checkpoint_id);
    sample.set_prompt("a photo of sks toy");
    sample.set_width(64);
    sample.set_height(64);
    sample.mutable_sampler()->set_num_inference_steps(3);
    sample.set_seed(7);
    if (scale.has_value()) sample.set_lora_scale(*scale);
    std::string png;
    absl::Status st = api_->Sample(sample, [&](const v1::SampleResponse& r) {
      if (r.has_image()) png = r.image().png();
    });
    if (!st.ok()) return st;
    if (png.empty()) return absl::InternalError("no image");
    return png;
  }

  std::string Diagnostics(const WorkerProcess* worker) {
    return ProcessLogs(worker, daemon_ ? daemon_->Log() : "");
  }

  TempDir dir_;
  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<client::Client> api_;
};

TEST_F(LoraE2eTest, ALoraJobTrainsListsDownloadsAndSamplesWithItsAdapter) {
  const std::string set = UploadInstances();
  ASSERT_FALSE(set.empty());
  absl::StatusOr<v1::Job> job = api_->CreateJob(LoraSpec(set));
  ASSERT_TRUE(job.ok()) << job.status();
  // The resolved spec carries the LoRA defaults.
  EXPECT_EQ(job->spec().lora().rank(), 2);
  EXPECT_EQ(job->spec().lora().alpha(), 2.0f);
  EXPECT_EQ(job->spec().lora().target_modules_size(), 4);
  EXPECT_EQ(job->spec().text_encoder_learning_rate(), 1e-2);

  absl::StatusOr<std::unique_ptr<WorkerProcess>> worker = WorkerProcess::Start(
      {"--server", daemon_->worker_address(), "--cache-dir", dir_.Join("cache"), "--model-root",
       dir_.Join("models"), "--worker-id", "w1", "--threads", "1"},
      dir_.Join("w1.log"));
  ASSERT_TRUE(worker.ok()) << worker.status();
  absl::StatusOr<v1::Job> done = WaitForJob(*api_, job->id(), IsTerminal, 300'000);
  ASSERT_TRUE(done.ok()) << done.status() << Diagnostics(worker->get());
  ASSERT_EQ(done->state(), v1::JOB_STATE_SUCCEEDED) << done->error() << Diagnostics(worker->get());

  absl::StatusOr<v1::ListCheckpointsResponse> listed = api_->ListCheckpoints(job->id());
  ASSERT_TRUE(listed.ok()) << listed.status();
  std::set<std::pair<int64_t, v1::CheckpointKind>> kinds;
  std::map<v1::CheckpointKind, std::string> newest;
  for (const v1::Checkpoint& c : listed->checkpoints()) {
    kinds.insert({c.step(), c.kind()});
    if (c.step() == 4) newest[c.kind()] = c.id();
  }
  for (int64_t step : {2, 4}) {
    EXPECT_TRUE(kinds.count({step, v1::CHECKPOINT_KIND_LORA_DIFFUSERS})) << step;
    EXPECT_TRUE(kinds.count({step, v1::CHECKPOINT_KIND_LORA_KOHYA})) << step;
  }
  EXPECT_TRUE(kinds.count({4, v1::CHECKPOINT_KIND_FINAL}));
  EXPECT_FALSE(kinds.count({2, v1::CHECKPOINT_KIND_SAMPLEABLE}));  // no full-model checkpoints

  // Downloads: each format is what its tools expect.
  const std::string d = dir_.Join("dl-diffusers");
  const std::string k = dir_.Join("dl-kohya");
  const std::string m = dir_.Join("dl-merged");
  ASSERT_TRUE(api_->DownloadCheckpoint(newest[v1::CHECKPOINT_KIND_LORA_DIFFUSERS], d).ok());
  ASSERT_TRUE(api_->DownloadCheckpoint(newest[v1::CHECKPOINT_KIND_LORA_KOHYA], k).ok());
  ASSERT_TRUE(api_->DownloadCheckpoint(newest[v1::CHECKPOINT_KIND_FINAL], m).ok());
  EXPECT_TRUE(fs::is_regular_file(d + "/pytorch_lora_weights.safetensors"));
  EXPECT_TRUE(fs::is_regular_file(k + "/lora.safetensors"));
  EXPECT_TRUE(fs::is_regular_file(m + "/model_index.json"));
  EXPECT_TRUE(fs::is_regular_file(m + "/unet/diffusion_pytorch_model.safetensors"));
  EXPECT_TRUE(fs::is_regular_file(m + "/merged.safetensors"));
  // A LoRA file is a small fraction of the merged model.
  EXPECT_LT(fs::file_size(k + "/lora.safetensors") * 10,
            fs::file_size(m + "/unet/diffusion_pytorch_model.safetensors"));
  // As one .safetensors: the merged model's file for the FINAL, the adapter file otherwise.
  absl::StatusOr<v1::Checkpoint> single = api_->DownloadCheckpoint(
      newest[v1::CHECKPOINT_KIND_FINAL], dir_.Join("sf-merged"), v1::CHECKPOINT_FORMAT_SINGLE_FILE);
  ASSERT_TRUE(single.ok()) << single.status();
  ASSERT_EQ(single->files_size(), 1);
  EXPECT_EQ(single->files(0).path(), absl::StrCat(job->id(), "-step4.safetensors"));
  EXPECT_EQ(single->files(0).digest(), Sha256File(m + "/merged.safetensors").value_or(""));
  single = api_->DownloadCheckpoint(newest[v1::CHECKPOINT_KIND_LORA_KOHYA], dir_.Join("sf-kohya"),
                                    v1::CHECKPOINT_FORMAT_SINGLE_FILE);
  ASSERT_TRUE(single.ok()) << single.status();
  ASSERT_EQ(single->files_size(), 1);
  EXPECT_EQ(single->files(0).path(), "lora.safetensors");
  EXPECT_TRUE(fs::is_regular_file(dir_.Join("sf-kohya/lora.safetensors")));
  // The merged model carries the provenance of a full fine-tune's FINAL.
  std::map<std::string, std::string> provenance;
  ASSERT_TRUE(diffusion::ReadSafetensorsHeader(m + "/merged.safetensors", &provenance).ok());
  EXPECT_EQ(provenance["dreambooth.job_id"], job->id());
  EXPECT_TRUE(fs::is_regular_file(m + "/README.md"));

  // Sample with the adapter: the default checkpoint, scales 1 and 0 (= the base model), the
  // kohya file, and the merged model agree where they should.
  absl::StatusOr<std::string> lora =
      SampleOnce(job->id(), newest[v1::CHECKPOINT_KIND_LORA_DIFFUSERS], std::nullopt);
  ASSERT_TRUE(lora.ok()) << lora.status() << Diagnostics(worker->get());
  absl::StatusOr<std::string> kohya =
      SampleOnce(job->id(), newest[v1::CHECKPOINT_KIND_LORA_KOHYA], 1.0f);
  ASSERT_TRUE(kohya.ok()) << kohya.status();
  EXPECT_EQ(*kohya, *lora);  // the same adapters in another layout
  absl::StatusOr<std::string> off =
      SampleOnce(job->id(), newest[v1::CHECKPOINT_KIND_LORA_DIFFUSERS], 0.0f);
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_NE(*off, *lora);  // the adapter changes the image

  // Bad requests name the field and leave the service running.
  absl::StatusOr<std::string> too_big =
      SampleOnce(job->id(), newest[v1::CHECKPOINT_KIND_LORA_DIFFUSERS], 9.0f);
  EXPECT_EQ(too_big.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(too_big.status().message(), "lora_scale")) << too_big.status();
  absl::StatusOr<std::string> not_lora =
      SampleOnce(job->id(), newest[v1::CHECKPOINT_KIND_FINAL], 0.5f);
  EXPECT_EQ(not_lora.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(not_lora.status().message(), "lora_scale")) << not_lora.status();
  absl::StatusOr<std::string> merged =
      SampleOnce(job->id(), newest[v1::CHECKPOINT_KIND_FINAL], std::nullopt);
  ASSERT_TRUE(merged.ok()) << merged.status();
}

TEST_F(LoraE2eTest, BadLoraSpecsAreRefusedNamingTheField) {
  const std::string set = UploadInstances();
  ASSERT_FALSE(set.empty());
  struct Case {
    std::function<void(v1::JobSpec*)> change;
    std::string field;
  };
  const std::vector<Case> cases = {
      {[](v1::JobSpec* s) { s->mutable_lora()->set_rank(0); }, "spec.lora.rank"},
      {[](v1::JobSpec* s) { s->mutable_lora()->set_rank(257); }, "spec.lora.rank"},
      {[](v1::JobSpec* s) { s->mutable_lora()->set_alpha(-1); }, "spec.lora.alpha"},
      {[](v1::JobSpec* s) { s->mutable_lora()->set_dropout(1.0f); }, "spec.lora.dropout"},
      {[](v1::JobSpec* s) {
         s->mutable_lora()->set_dropout(0.1f);
         s->set_gradient_checkpointing(true);
       },
       "spec.lora.dropout"},
      {[](v1::JobSpec* s) { s->mutable_lora()->add_target_modules("conv_in"); },
       "spec.lora.target_modules[0]"},
      {[](v1::JobSpec* s) {
         s->mutable_lora()->add_target_modules("to_q");
         s->mutable_lora()->add_target_modules("to_q");
       },
       "spec.lora.target_modules[1]"},
      {[](v1::JobSpec* s) { s->mutable_lora()->add_text_encoder_target_modules("to_q"); },
       "spec.lora.text_encoder_target_modules[0]"},
      {[](v1::JobSpec* s) { s->mutable_lora()->set_learning_rate(2.0); },
       "spec.lora.learning_rate"},
  };
  for (const Case& c : cases) {
    v1::JobSpec spec = LoraSpec(set);
    c.change(&spec);
    absl::StatusOr<v1::Job> job = api_->CreateJob(spec);
    EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_TRUE(absl::StrContains(job.status().message(), c.field)) << job.status();
  }
  absl::StatusOr<v1::ListJobsResponse> jobs = api_->ListJobs(100, "");
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_EQ(jobs->jobs_size(), 0);  // nothing was stored
}

}  // namespace
}  // namespace dreambooth::testing
