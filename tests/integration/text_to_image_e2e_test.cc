// End-to-end text-to-image training: images with <stem>.txt captions uploaded through the SDK to a
// real dreamboothd on loopback, a TRAINING_MODE_TEXT_TO_IMAGE job trained by a real
// dreambooth-worker on the built-in tiny model, and what CreateJob says about sets that are not
// captioned yet.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/integration/e2e_support.h"
#include "tests/testing/daemon.h"
#include "tests/testing/temp_dir.h"

namespace dreambooth::testing {
namespace {
namespace fs = std::filesystem;

// Over 77 CLIP tokens, so the trainer says it truncated it: proof that the caption reached it.
std::string LongCaption() {
  std::string caption;
  for (int i = 0; i < 20; ++i) absl::StrAppend(&caption, "a round red toy on a soft gradient, ");
  return caption.substr(0, caption.size() - 2);
}

class TextToImageE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_.Join("models"));
    fs::create_directories(dir_.Join("photos"));
    DaemonOptions options;
    options.data_dir = dir_.Join("data");
    options.extra_args = {"--lease-ttl=9s", "--sweep-interval=100ms",
                          "--model-root=" + dir_.Join("models")};
    absl::StatusOr<std::unique_ptr<Daemon>> d = Daemon::Start(options);
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_ = std::move(*d);
    api_ = MakeApiClient(daemon_->address());
  }

  // Writes photos/<stem>.png (and photos/<stem>.txt when `caption` is set); returns the image path.
  std::string Photo(const std::string& stem, int index, const std::string* caption) {
    const std::string path = dir_.Join("photos/" + stem + ".png");
    WriteFile(path, InstancePng(index));
    if (caption != nullptr) WriteFile(dir_.Join("photos/" + stem + ".txt"), *caption);
    return path;
  }

  static v1::JobSpec TextToImageSpec(const std::string& set) {
    v1::JobSpec spec = TinySpec(set, /*max_train_steps=*/2, /*checkpointing_steps=*/0);
    spec.clear_instance_prompt();
    spec.set_training_mode(v1::TRAINING_MODE_TEXT_TO_IMAGE);
    return spec;
  }

  std::string Diagnostics(const WorkerProcess* worker) {
    return ProcessLogs(worker, daemon_ ? daemon_->Log() : "");
  }

  TempDir dir_;
  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<client::Client> api_;
};

TEST_F(TextToImageE2eTest, ACaptionedSetTrainsWithItsCaptionsToSuccess) {
  const std::string short_caption = "  a small blue disc\n";  // trimmed on upload
  const std::string long_caption = LongCaption();
  absl::StatusOr<v1::UploadImagesResponse> uploaded = api_->UploadFiles(
      {Photo("toy0", 0, &short_caption), Photo("toy1", 1, &long_caption)}, "", "captioned toys");
  ASSERT_TRUE(uploaded.ok()) << uploaded.status();
  const std::string set = uploaded->image_set().id();
  absl::StatusOr<v1::ImageSet> stored = api_->GetImageSet(set);
  ASSERT_TRUE(stored.ok()) << stored.status();
  ASSERT_EQ(stored->images_size(), 2);
  EXPECT_EQ(stored->images(0).caption(), "a small blue disc");
  EXPECT_EQ(stored->images(1).caption(), long_caption);

  absl::StatusOr<v1::Job> job = api_->CreateJob(TextToImageSpec(set));
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->spec().training_mode(), v1::TRAINING_MODE_TEXT_TO_IMAGE);
  EXPECT_EQ(job->spec().instance_prompt(), "");

  absl::StatusOr<std::unique_ptr<WorkerProcess>> worker = WorkerProcess::Start(
      {"--server", daemon_->worker_address(), "--cache-dir", dir_.Join("cache"), "--model-root",
       dir_.Join("models"), "--worker-id", "w1", "--threads", "1"},
      dir_.Join("w1.log"));
  ASSERT_TRUE(worker.ok()) << worker.status();
  absl::StatusOr<v1::Job> done = WaitForJob(*api_, job->id(), IsTerminal, 300'000);
  ASSERT_TRUE(done.ok()) << done.status() << Diagnostics(worker->get());
  ASSERT_EQ(done->state(), v1::JOB_STATE_SUCCEEDED) << done->error() << Diagnostics(worker->get());

  // The worker wrote the captions beside the images and the trainer read them: the long one was
  // truncated to 77 tokens, and it says so in the job's log.
  bool long_caption_seen = false;
  bool trained = false;
  absl::Status watched = api_->WatchJob(job->id(), 0, [&](const v1::JobEvent& e) {
    long_caption_seen |= e.kind() == v1::EVENT_KIND_LOG &&
                         absl::StrContains(e.message(), "truncated") &&
                         absl::StrContains(e.message(), long_caption.substr(0, 60));
    // Progress events are coalesced (a 2-step run may leave none); the trainer's summary stays.
    trained |=
        e.kind() == v1::EVENT_KIND_LOG && absl::StrContains(e.message(), "trained steps 0..2");
    return true;
  });
  ASSERT_TRUE(watched.ok()) << watched;
  EXPECT_TRUE(long_caption_seen) << Diagnostics(worker->get());
  EXPECT_TRUE(trained) << Diagnostics(worker->get());
  absl::StatusOr<v1::ListCheckpointsResponse> checkpoints = api_->ListCheckpoints(job->id());
  ASSERT_TRUE(checkpoints.ok()) << checkpoints.status();
  bool final_export = false;
  for (const v1::Checkpoint& c : checkpoints->checkpoints()) {
    final_export |= c.kind() == v1::CHECKPOINT_KIND_FINAL && c.step() == 2;
  }
  EXPECT_TRUE(final_export);
}

TEST_F(TextToImageE2eTest, AnUncaptionedImageHoldsTheJobBackUntilItIsCaptioned) {
  const std::string caption = "a red disc";
  absl::StatusOr<v1::UploadImagesResponse> uploaded = api_->UploadFiles(
      {Photo("toy0", 0, &caption), Photo("toy1", 1, nullptr)}, "", "half captioned");
  ASSERT_TRUE(uploaded.ok()) << uploaded.status();
  const std::string set = uploaded->image_set().id();
  EXPECT_EQ(uploaded->image_set().images(1).caption(), "");

  absl::StatusOr<v1::Job> refused = api_->CreateJob(TextToImageSpec(set));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "image 'toy1.png'"))
      << refused.status();
  EXPECT_TRUE(absl::StrContains(refused.status().message(), set)) << refused.status();
  // The same set is fine for DreamBooth, which has the instance prompt to fall back on.
  v1::JobSpec dreambooth = TinySpec(set, 2, 0);
  dreambooth.set_training_mode(v1::TRAINING_MODE_DREAMBOOTH);
  EXPECT_TRUE(api_->CreateJob(dreambooth).ok());

  // A caption that is too long is refused, naming the file, and changes nothing.
  const std::string too_long(1001, 'x');
  Photo("toy1", 1, &too_long);
  absl::StatusOr<v1::UploadImagesResponse> bad =
      api_->UploadFiles({dir_.Join("photos/toy1.png")}, set, "");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << bad.status();
  EXPECT_TRUE(absl::StrContains(bad.status().message(),
                                "file.caption of 'toy1.png' must be at most 1000 bytes"))
      << bad.status();
  EXPECT_EQ(api_->GetImageSet(set)->images(1).caption(), "");

  // Uploading the image again with its caption captions it in place; then the job is accepted.
  const std::string fixed = "a green disc";
  Photo("toy1", 1, &fixed);
  absl::StatusOr<v1::UploadImagesResponse> recaptioned =
      api_->UploadFiles({dir_.Join("photos/toy1.png")}, set, "");
  ASSERT_TRUE(recaptioned.ok()) << recaptioned.status();
  ASSERT_EQ(recaptioned->image_set().images_size(), 2);
  EXPECT_EQ(recaptioned->image_set().images(1).caption(), "a green disc");
  absl::StatusOr<v1::Job> accepted = api_->CreateJob(TextToImageSpec(set));
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  EXPECT_EQ(accepted->state(), v1::JOB_STATE_QUEUED);

  // Prior preservation has no meaning without a subject prompt: both fields are named.
  v1::JobSpec prior = TextToImageSpec(set);
  prior.set_with_prior_preservation(true);
  prior.set_regularization_prompt("a photo of a toy");
  absl::StatusOr<v1::Job> conflict = api_->CreateJob(prior);
  EXPECT_EQ(conflict.status().code(), absl::StatusCode::kInvalidArgument) << conflict.status();
  EXPECT_TRUE(absl::StrContains(conflict.status().message(), "spec.with_prior_preservation"));
  EXPECT_TRUE(absl::StrContains(conflict.status().message(), "spec.training_mode"));
}

}  // namespace
}  // namespace dreambooth::testing
