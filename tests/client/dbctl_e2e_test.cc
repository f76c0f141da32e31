// dbctl against a real dreamboothd: the README flow (upload a folder, submit, list, get, watch,
// cancel), JSON output, exit status 3 with readable messages on failed requests, and a strict
// command line (a misspelt flag, an integer its field cannot hold or a duration without a unit is
// a usage error, exit status 2, and sends nothing).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "tests/server/e2e_util.h"
#include "tests/testing/command_run.h"
#include "tests/testing/image_files.h"

#ifndef DB_DBCTL_PATH
#define DB_DBCTL_PATH "dbctl"
#endif

namespace dreambooth::testing {
namespace {

class DbctlTest : public E2eTest {
 protected:
  CommandRun Dbctl(const std::string& args) {
    return RunCommand(absl::StrCat(DB_DBCTL_PATH, " --server=", daemon_->address(), " ", args));
  }

  // The value of "field":"value" in a JSON line (enough for ids).
  static std::string JsonField(const std::string& json, const std::string& field) {
    const std::string key = "\"" + field + "\":\"";
    const size_t at = json.find(key);
    if (at == std::string::npos) return "";
    const size_t start = at + key.size();
    return json.substr(start, json.find('"', start) - start);
  }
};

TEST_F(DbctlTest, UploadSubmitListWatchCancel) {
  const std::string photos = dir_.Join("photos");
  std::filesystem::create_directories(photos);
  for (int i = 0; i < 3; ++i) {
    WriteFile(photos + "/p" + std::to_string(i) + ".jpg",
              MakeJpeg(Noise(48, 40, static_cast<uint32_t>(i + 7)), JpegColor::kRgb));
  }
  WriteFile(photos + "/notes.txt", "not an image");  // skipped by the folder scan

  CommandRun health = Dbctl("health");
  EXPECT_EQ(health.exit_code, 0) << health.out;
  EXPECT_NE(health.out.find("SERVING"), std::string::npos);

  CommandRun upload = Dbctl("--json upload --name=dog " + photos);
  ASSERT_EQ(upload.exit_code, 0) << upload.out;
  const std::string set = JsonField(upload.out, "id");
  ASSERT_EQ(set.rfind("is_", 0), 0u) << upload.out;
  EXPECT_EQ(client_->GetImageSet(set)->images_size(), 3);

  CommandRun submit = Dbctl("jobs submit --base-model=tiny --image-set=" + set +
                            " --prompt='a photo of sks dog' --steps=20");
  ASSERT_EQ(submit.exit_code, 0) << submit.out;
  EXPECT_NE(submit.out.find("QUEUED"), std::string::npos) << submit.out;
  const std::string job = submit.out.substr(0, submit.out.find(' '));
  ASSERT_EQ(job.rfind("job_", 0), 0u) << submit.out;
  EXPECT_EQ(client_->GetJob(job)->spec().max_train_steps(), 20);

  CommandRun list = Dbctl("jobs list --state=queued");
  EXPECT_EQ(list.exit_code, 0);
  EXPECT_NE(list.out.find(job), std::string::npos) << list.out;
  CommandRun get = Dbctl("--json jobs get " + job);
  EXPECT_EQ(get.exit_code, 0);
  EXPECT_EQ(JsonField(get.out, "state"), "JOB_STATE_QUEUED") << get.out;

  CommandRun cancel = Dbctl("jobs cancel " + job);
  EXPECT_EQ(cancel.exit_code, 0);
  EXPECT_NE(cancel.out.find("CANCELLED"), std::string::npos) << cancel.out;
  // Not a terminal, so plain lines: one per event, ending with the terminal state; a cancelled
  // job is not a success (exit status 1).
  CommandRun watch = Dbctl("jobs watch " + job);
  EXPECT_EQ(watch.exit_code, 1) << watch.out;
  EXPECT_NE(watch.out.find("#1 QUEUED STATE_CHANGED"), std::string::npos) << watch.out;
  EXPECT_NE(watch.out.find("#2 CANCELLED STATE_CHANGED"), std::string::npos) << watch.out;
}

TEST_F(DbctlTest, UploadSendsCaptionFilesAndSubmitTakesATrainingMode) {
  const std::string photos = dir_.Join("captioned");
  std::filesystem::create_directories(photos);
  for (int i = 0; i < 2; ++i) {
    WriteFile(photos + "/p" + std::to_string(i) + ".png",
              MakePng(Noise(40, 40, static_cast<uint32_t>(i + 3)), PngVariant::kRgb8));
  }
  WriteFile(photos + "/p0.txt", "a red toy on a table\n");

  CommandRun upload = Dbctl("upload --name=toys " + photos);
  ASSERT_EQ(upload.exit_code, 0) << upload.out;
  EXPECT_NE(upload.out.find("2 images (1 captioned)"), std::string::npos) << upload.out;
  const std::string set = upload.out.substr(upload.out.find("is_"), 19);
  absl::StatusOr<v1::ImageSet> stored = client_->GetImageSet(set);
  ASSERT_TRUE(stored.ok()) << stored.status() << upload.out;
  EXPECT_EQ(stored->images(0).caption(), "a red toy on a table");
  EXPECT_EQ(stored->images(1).caption(), "");

  const std::string submit =
      "jobs submit --base-model=tiny --image-set=" + set + " --mode=text-to-image --steps=5";
  CommandRun refused = Dbctl(submit);
  EXPECT_EQ(refused.exit_code, 3) << refused.out;
  EXPECT_NE(refused.out.find("FAILED_PRECONDITION"), std::string::npos) << refused.out;
  EXPECT_NE(refused.out.find("image 'p1.png'"), std::string::npos) << refused.out;

  // Captioning the other image (uploading it again with its .txt) lets the job through.
  WriteFile(photos + "/p1.txt", "a blue toy");
  CommandRun again = Dbctl("upload --set=" + set + " " + photos + "/p1.png");
  ASSERT_EQ(again.exit_code, 0) << again.out;
  EXPECT_NE(again.out.find("2 images (2 captioned)"), std::string::npos) << again.out;
  CommandRun ok = Dbctl("--json " + submit);
  ASSERT_EQ(ok.exit_code, 0) << ok.out;
  const v1::JobSpec spec = client_->GetJob(JsonField(ok.out, "id"))->spec();
  EXPECT_EQ(spec.training_mode(), v1::TRAINING_MODE_TEXT_TO_IMAGE);
  EXPECT_EQ(spec.instance_prompt(), "");
  CommandRun get = Dbctl("jobs get " + JsonField(ok.out, "id"));
  EXPECT_NE(get.out.find("mode:        text-to-image"), std::string::npos) << get.out;

  CommandRun bad_mode = Dbctl(submit.substr(0, submit.find("--mode")) + "--mode=pix2pix");
  EXPECT_EQ(bad_mode.exit_code, 2) << bad_mode.out;
  EXPECT_NE(bad_mode.out.find("unknown mode 'pix2pix'; expected dreambooth|text-to-image"),
            std::string::npos)
      << bad_mode.out;
}

TEST_F(DbctlTest, FailuresExitNonZeroWithAReadableMessage) {
  CommandRun missing = Dbctl("jobs get job_0000000000000000");
  EXPECT_EQ(missing.exit_code, 3);
  EXPECT_NE(missing.out.find("NOT_FOUND: job 'job_0000000000000000' not found"), std::string::npos)
      << missing.out;
  CommandRun bad = Dbctl("jobs submit --base-model=tiny --image-set=is_x --prompt=p --steps=-3");
  EXPECT_EQ(bad.exit_code, 3);
  EXPECT_NE(bad.out.find("INVALID_ARGUMENT: spec.max_train_steps"), std::string::npos) << bad.out;
  CommandRun usage = Dbctl("jobs frobnicate");
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_NE(usage.out.find("dbctl jobs: unknown command 'frobnicate'"), std::string::npos)
      << usage.out;
  const std::string bogus = dir_.Join("bogus.png");
  WriteFile(bogus, "PK\x03\x04 this is a zip");
  CommandRun upload = Dbctl("upload " + bogus);
  EXPECT_EQ(upload.exit_code, 3);
  EXPECT_NE(upload.out.find("file 'bogus.png'"), std::string::npos) << upload.out;
  CommandRun down = Dbctl("--server=127.0.0.1:1 --timeout=2s health");
  EXPECT_EQ(down.exit_code, 3);
  EXPECT_NE(down.out.find("UNAVAILABLE"), std::string::npos) << down.out;
}

TEST_F(DbctlTest, BadFlagsAreUsageErrorsAndSubmitNothing) {
  const std::string set = UploadImages(1);
  const std::string submit = "jobs submit --base-model=tiny --image-set=" + set + " --prompt=p ";
  struct Case {
    std::string flags;
    std::string message;
  };
  for (const Case& c : {
           Case{"--step=100", "not expected: --step=100"},  // misspelt, was ignored (400 steps)
           Case{"--steps=4294967696", "--steps: '4294967696' is out of range"},  // was 400
           Case{"--steps 1e3", "--steps: '1e3' is not an integer"},
           Case{"--seed=-1", "--seed: '-1' is not a non-negative integer"},
           Case{"--lr=fast", "--lr: 'fast' is not a finite number"},
           Case{"--timeout=2", "--timeout: '2' has no unit"},
       }) {
    CommandRun run = Dbctl(submit + c.flags);
    EXPECT_EQ(run.exit_code, 2) << c.flags << ": " << run.out;
    EXPECT_NE(run.out.find(c.message), std::string::npos) << run.out;
    EXPECT_NE(run.out.find("Run 'dbctl jobs submit --help' for usage."), std::string::npos)
        << run.out;
  }
  EXPECT_EQ(client_->ListJobs(0, "", v1::JOB_STATE_UNSPECIFIED)->jobs_size(), 0);
  // The same command line without the mistakes goes through, values in either spelling.
  CommandRun ok = Dbctl(submit + "--steps 100 --seed=7 --lr=1e-5 --timeout=2m --json");
  ASSERT_EQ(ok.exit_code, 0) << ok.out;
  const v1::JobSpec spec = client_->GetJob(JsonField(ok.out, "id"))->spec();
  EXPECT_EQ(spec.max_train_steps(), 100);
  EXPECT_EQ(spec.seed(), 7u);
  EXPECT_DOUBLE_EQ(spec.learning_rate(), 1e-5);
}

TEST_F(DbctlTest, TimeoutTakesAUnit) {
  // A server that accepts connections and never answers: each call runs into its deadline.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 16), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::string silent = "--server=127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  CommandRun seconds = Dbctl(silent + " --timeout=2s health");
  EXPECT_EQ(seconds.exit_code, 3) << seconds.out;
  EXPECT_NE(seconds.out.find("DEADLINE_EXCEEDED"), std::string::npos) << seconds.out;
  // Two minutes, not two seconds: still waiting when `timeout` stops it after 5 s.
  const std::string minutes =
      std::string("timeout 5 ") + DB_DBCTL_PATH + " " + silent + " --timeout=2m health 2>&1";
  EXPECT_EQ(WEXITSTATUS(std::system(minutes.c_str())), 124);
  close(fd);
}

}  // namespace
}  // namespace dreambooth::testing
