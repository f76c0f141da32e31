// dbctl's resource commands against a real dreamboothd on loopback, with a scripted worker where
// a job needs one: images list/get/delete, models list, labels and filters on uploads and jobs,
// checkpoints list (pages, kinds)/get (loss), jobs validation-image, the three output formats
// (-o table|json|name, --json), the server's error details on a failed request and the exit
// status of each outcome (0 ok, 1 a failed result, 2 usage, 3 a failed request).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/crypto.h"
#include "common/file_io.h"
#include "tests/server/e2e_util.h"
#include "tests/testing/command_run.h"
#include "tests/testing/image_files.h"

#ifndef DB_DBCTL_PATH
#define DB_DBCTL_PATH "dbctl"
#endif

namespace dreambooth::testing {
namespace {

class DbctlResourcesTest : public E2eTest {
 protected:
  CommandRun Dbctl(const std::string& args) {
    return RunCommand(absl::StrCat(DB_DBCTL_PATH, " --server=", daemon_->address(), " ", args));
  }

  // The non-empty lines of `text`.
  static std::vector<std::string> Lines(const std::string& text) {
    return absl::StrSplit(text, '\n', absl::SkipEmpty());
  }

  // A folder holding `n` small JPEGs (seeded by `seed`).
  std::string Photos(const std::string& name, int n, uint32_t seed) {
    const std::string dir = dir_.Join(name);
    std::filesystem::create_directories(dir);
    for (int i = 0; i < n; ++i) {
      WriteFile(absl::StrCat(dir, "/p", i, ".jpg"),
                MakeJpeg(Noise(40, 32, seed + static_cast<uint32_t>(i)), JpegColor::kRgb));
    }
    return dir;
  }
};

TEST_F(DbctlResourcesTest, ImagesListGetDeleteWithLabelsAndEveryOutputFormat) {
  const std::string dogs = Photos("dogs", 2, 1);
  CommandRun upload = Dbctl(
      "upload -o name --name=dogs --label team=vision --label=kind=dog --request-id=r-1 " + dogs);
  ASSERT_EQ(upload.exit_code, 0) << upload.out;
  const std::string set = Lines(upload.out).at(0);
  EXPECT_EQ(Lines(upload.out).size(), 1u) << upload.out;
  EXPECT_EQ(set.rfind("is_", 0), 0u) << upload.out;
  // The same request id again: the set the first upload created.
  CommandRun again = Dbctl("upload -o name --request-id=r-1 " + dogs);
  ASSERT_EQ(again.exit_code, 0) << again.out;
  EXPECT_EQ(Lines(again.out), std::vector<std::string>{set});
  CommandRun other = Dbctl("upload -o name --name=cats " + Photos("cats", 1, 9));
  ASSERT_EQ(other.exit_code, 0) << other.out;
  const std::string other_set = Lines(other.out).at(0);

  CommandRun filtered = Dbctl("images list -o name --filter=labels.team=vision");
  ASSERT_EQ(filtered.exit_code, 0) << filtered.out;
  EXPECT_EQ(Lines(filtered.out), std::vector<std::string>{set});
  CommandRun table = Dbctl("images list");
  ASSERT_EQ(table.exit_code, 0) << table.out;
  const std::vector<std::string> rows = Lines(table.out);
  ASSERT_EQ(rows.size(), 3u) << table.out;
  EXPECT_EQ(rows[0].rfind("ID ", 0), 0u) << table.out;
  EXPECT_NE(table.out.find("kind=dog,team=vision"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find(other_set), std::string::npos) << table.out;
  CommandRun json = Dbctl("images list --json");
  ASSERT_EQ(json.exit_code, 0) << json.out;
  EXPECT_EQ(Lines(json.out).size(), 2u) << json.out;  // one object per set, no header
  EXPECT_EQ(json.out.rfind("{\"id\":\"is_", 0), 0u) << json.out;

  CommandRun get = Dbctl("images get " + set);
  ASSERT_EQ(get.exit_code, 0) << get.out;
  EXPECT_NE(get.out.find("labels:      kind=dog,team=vision"), std::string::npos) << get.out;
  EXPECT_NE(get.out.find("images:      2"), std::string::npos) << get.out;
  EXPECT_NE(get.out.find("p1.jpg"), std::string::npos) << get.out;
  EXPECT_EQ(Dbctl("images get -o name " + set).out, set + "\n");

  CommandRun deleted = Dbctl("images delete " + set + " -o json");
  ASSERT_EQ(deleted.exit_code, 0) << deleted.out;
  EXPECT_EQ(deleted.out, "{\"image_set_id\":\"" + set + "\",\"deleted\":true}\n");
  CommandRun gone = Dbctl("images get " + set);
  EXPECT_EQ(gone.exit_code, 3) << gone.out;
  EXPECT_NE(gone.out.find("dbctl: NOT_FOUND: "), std::string::npos) << gone.out;
  EXPECT_NE(gone.out.find("reason: NOT_FOUND"), std::string::npos) << gone.out;

  CommandRun bad_label = Dbctl("upload --label=team " + dogs);
  EXPECT_EQ(bad_label.exit_code, 2) << bad_label.out;
  EXPECT_NE(bad_label.out.find("--label: 'team' is not KEY=VALUE"), std::string::npos)
      << bad_label.out;
}

TEST_F(DbctlResourcesTest, JobsCarryLabelsAndListByFilterAndOrder) {
  const std::string set = UploadImages(1);
  const std::string submit = "jobs submit -o name --base-model=tiny --image-set=" + set +
                             " --prompt='a photo of sks dog' --steps=5 ";
  CommandRun first = Dbctl(submit + "--label exp=a --label=owner=ml");
  ASSERT_EQ(first.exit_code, 0) << first.out;
  const std::string a = Lines(first.out).at(0);
  CommandRun second = Dbctl(submit + "--label exp=b");
  ASSERT_EQ(second.exit_code, 0) << second.out;
  const std::string b = Lines(second.out).at(0);
  EXPECT_EQ(client_->GetJob(a)->labels().at("owner"), "ml");

  EXPECT_EQ(Lines(Dbctl("jobs list -o name --filter=labels.exp=a").out),
            std::vector<std::string>{a});
  EXPECT_EQ(Lines(Dbctl("jobs list -o name").out), (std::vector<std::string>{b, a}));
  EXPECT_EQ(Lines(Dbctl("jobs list -o name --order-by=create_time").out),
            (std::vector<std::string>{a, b}));
  EXPECT_EQ(Lines(Dbctl("jobs list -o name --filter='labels.owner:* AND state=QUEUED'").out),
            std::vector<std::string>{a});
  CommandRun get = Dbctl("jobs get " + a);
  EXPECT_NE(get.out.find("labels:      exp=a,owner=ml"), std::string::npos) << get.out;

  // A filter the server cannot read: a failed request, with the field it names.
  CommandRun bad = Dbctl("jobs list --filter=colour=blue");
  EXPECT_EQ(bad.exit_code, 3) << bad.out;
  EXPECT_NE(bad.out.find("dbctl: INVALID_ARGUMENT: filter"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("  reason: INVALID_FIELD\n  field: filter"), std::string::npos) << bad.out;
}

TEST_F(DbctlResourcesTest, SubmitTakesAWebhookAndJobsWebhooksListsItsDeliveries) {
  const std::string set = UploadImages(1);
  const std::string secret_file = dir_.Join("hook.secret");
  WriteFile(secret_file, "0123456789abcdef0123\n");
  const std::string submit = "jobs submit -o name --base-model=tiny --image-set=" + set +
                             " --prompt='a photo of sks dog' --steps=5 ";
  // Nothing listens there: the first attempt fails and the delivery waits for its retry.
  const std::string url = absl::StrCat("http://127.0.0.1:", PickFreePort(), "/hook");
  CommandRun created = Dbctl(submit + "--webhook-url=" + url +
                             " --webhook-secret-file=" + secret_file + " --webhook-event=state");
  ASSERT_EQ(created.exit_code, 0) << created.out;
  const std::string job = Lines(created.out).at(0);
  absl::StatusOr<v1::Job> got = client_->GetJob(job);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->webhook().url(), url);
  ASSERT_EQ(got->webhook().events_size(), 1);
  EXPECT_EQ(got->webhook().events(0), v1::WEBHOOK_EVENT_TYPE_JOB_STATE_CHANGED);
  EXPECT_NE(Dbctl("jobs get " + job).out.find("webhook:     " + url), std::string::npos);

  CommandRun listed;
  for (int i = 0; i < 100; ++i) {  // until the first attempt is recorded
    listed = Dbctl("jobs webhooks " + job);
    if (listed.out.find("PENDING    1 ") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(listed.exit_code, 0) << listed.out;
  const std::vector<std::string> lines = Lines(listed.out);
  ASSERT_EQ(lines.size(), 2u) << listed.out;  // the header and the QUEUED delivery
  EXPECT_NE(lines[1].find("job.state_changed"), std::string::npos) << listed.out;
  EXPECT_NE(lines[1].find("PENDING    1 "), std::string::npos) << listed.out;
  CommandRun json = Dbctl("jobs webhooks -o json " + job);
  EXPECT_NE(json.out.find("\"attempts\":[{\"number\":1"), std::string::npos) << json.out;

  // Usage errors send nothing.
  EXPECT_EQ(Dbctl(submit + "--webhook-url=" + url).exit_code, 2);
  EXPECT_EQ(Dbctl(submit + "--webhook-secret-file=" + secret_file).exit_code, 2);
  EXPECT_EQ(Dbctl(submit + "--webhook-url=" + url + " --webhook-secret-file=" + secret_file +
                  " --webhook-event=everything")
                .exit_code,
            2);
  // A bad webhook is the server's INVALID_ARGUMENT naming the field.
  WriteFile(secret_file, "short");
  CommandRun bad = Dbctl(submit + "--webhook-url=" + url + " --webhook-secret-file=" + secret_file);
  EXPECT_EQ(bad.exit_code, 3) << bad.out;
  EXPECT_NE(bad.out.find("field: webhook.secret"), std::string::npos) << bad.out;
  EXPECT_EQ(Lines(Dbctl("jobs list -o name").out).size(), 1u);
}

TEST_F(DbctlResourcesTest, BaseModelIsRequiredAndModelsAreListed) {
  const std::string set = UploadImages(1);
  CommandRun missing = Dbctl("jobs submit --image-set=" + set + " --prompt=p");
  EXPECT_EQ(missing.exit_code, 2) << missing.out;
  EXPECT_NE(missing.out.find("--base-model is required"), std::string::npos) << missing.out;
  EXPECT_NE(missing.out.find("'dbctl models list'"), std::string::npos) << missing.out;
  EXPECT_EQ(client_->ListJobs(0, "")->jobs_size(), 0);

  CommandRun names = Dbctl("models list -o name");
  ASSERT_EQ(names.exit_code, 0) << names.out;
  EXPECT_EQ(Lines(names.out), std::vector<std::string>{"tiny"});
  CommandRun table = Dbctl("models list");
  ASSERT_EQ(table.exit_code, 0) << table.out;
  EXPECT_EQ(table.out.rfind("NAME ", 0), 0u) << table.out;
  CommandRun json = Dbctl("models list --json");
  EXPECT_EQ(json.out.rfind("{\"name\":\"tiny\"", 0), 0u) << json.out;
}

TEST_F(DbctlResourcesTest, CheckpointsPagesKindsLossValidationImagesAndAFailedWatch) {
  absl::StatusOr<v1::Job> job = client_->CreateJob(MinimalSpec(UploadImages(1)));
  ASSERT_TRUE(job.ok()) << job.status();
  TestWorker worker(workers_.get(), "w1");
  std::optional<v1::Task> task = worker.Lease();
  ASSERT_TRUE(task.has_value());
  const std::string token = task->lease_token();
  ASSERT_TRUE(worker.Progress(token, 2, 4, 0.5f).ok());
  std::string resume, sampleable;
  ASSERT_TRUE(worker.CommitCheckpoint(token, 2, v1::CHECKPOINT_KIND_RESUME, &resume).ok());
  ASSERT_TRUE(worker.Progress(token, 4, 4, 0.125f).ok());
  ASSERT_TRUE(worker.CommitCheckpoint(token, 4, v1::CHECKPOINT_KIND_SAMPLEABLE, &sampleable).ok());
  // A validation image: its PNG written under the lease, then its event (message: the digest).
  const std::string png = MakePng(Noise(16, 16, 5), PngVariant::kRgb8);
  const std::string digest = worker.WriteBlob(token, png);
  ASSERT_FALSE(digest.empty());
  v1::ReportEventsRequest report;
  report.set_lease_token(token);
  v1::JobEvent* event = report.add_events();
  event->set_kind(v1::EVENT_KIND_VALIDATION_IMAGE);
  event->set_step(4);
  event->set_message(digest);
  v1::ReportEventsResponse reported;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  ASSERT_TRUE(workers_->gateway().ReportEvents(&context, report, &reported).ok());
  const int64_t sequence = reported.last_sequence();

  CommandRun page = Dbctl("checkpoints list " + job->id() + " --page-size=1");
  ASSERT_EQ(page.exit_code, 0) << page.out;
  EXPECT_NE(page.out.find(resume), std::string::npos) << page.out;
  EXPECT_EQ(page.out.find(sampleable), std::string::npos) << page.out;
  EXPECT_NE(page.out.find("(more: --page-token="), std::string::npos) << page.out;
  EXPECT_EQ(Lines(Dbctl("checkpoints list -o name --page-size=1 --all " + job->id()).out),
            (std::vector<std::string>{resume, sampleable}));
  EXPECT_EQ(Lines(Dbctl("checkpoints list -o name --kind=sampleable " + job->id()).out),
            std::vector<std::string>{sampleable});
  CommandRun bad_kind = Dbctl("checkpoints list --kind=best " + job->id());
  EXPECT_EQ(bad_kind.exit_code, 2) << bad_kind.out;
  EXPECT_NE(bad_kind.out.find("unknown checkpoint kind 'best'"), std::string::npos) << bad_kind.out;

  CommandRun get = Dbctl("checkpoints get " + sampleable);
  ASSERT_EQ(get.exit_code, 0) << get.out;
  EXPECT_NE(get.out.find("step:        4"), std::string::npos) << get.out;
  EXPECT_NE(get.out.find("kind:        SAMPLEABLE"), std::string::npos) << get.out;
  EXPECT_NE(get.out.find("loss:        0.1250"), std::string::npos) << get.out;
  CommandRun get_json = Dbctl("--json checkpoints get " + resume);
  EXPECT_NE(get_json.out.find("\"metrics\":{\"loss\":0.5"), std::string::npos) << get_json.out;

  const std::string path = dir_.Join("validation.png");
  CommandRun image = Dbctl(absl::StrCat("jobs validation-image ", job->id(), " ", sequence,
                                        " --out=", path, " -o json"));
  ASSERT_EQ(image.exit_code, 0) << image.out;
  EXPECT_NE(image.out.find("\"digest\":\"" + digest + "\""), std::string::npos) << image.out;
  absl::StatusOr<std::string> written = ReadFileToString(path);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(*written, png);
  CommandRun not_an_image = Dbctl(absl::StrCat("jobs validation-image ", job->id(), " 1"));
  EXPECT_EQ(not_an_image.exit_code, 3) << not_an_image.out;
  CommandRun bad_sequence = Dbctl("jobs validation-image " + job->id() + " first");
  EXPECT_EQ(bad_sequence.exit_code, 2) << bad_sequence.out;

  // The job fails: watch prints only the final state with -o name, and exits 1.
  ASSERT_TRUE(worker.Fail(token, "boom", /*retryable=*/false).ok());
  CommandRun watch = Dbctl("jobs watch -o name " + job->id());
  EXPECT_EQ(watch.exit_code, 1) << watch.out;
  EXPECT_EQ(watch.out, "FAILED\n");
}

}  // namespace
}  // namespace dreambooth::testing
