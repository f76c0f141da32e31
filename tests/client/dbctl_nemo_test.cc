// `dbctl jobs submit --nemo-config FILE --dry-run`, run as a process without a server: the JobSpec
// it would submit (proto JSON on stdout), the unmapped keys on stderr, other flags overriding the
// config, and a bad config refused as a usage error.
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_io.h"
#include "tests/testing/command_run.h"
#include "tests/testing/temp_dir.h"

#ifndef DB_DBCTL_PATH
#define DB_DBCTL_PATH "dbctl"
#endif
#ifndef DB_SOURCE_DIR
#define DB_SOURCE_DIR "."
#endif

namespace dreambooth::testing {
namespace {

struct DryRun {
  int exit_code = -1;
  std::string json;  // stdout
  std::string err;   // stderr
};

// A server nobody listens on: --dry-run must not need one.
DryRun Submit(const std::string& args) {
  TempDir dir;
  const std::string out = dir.Join("out.json");
  const std::string err = dir.Join("err.txt");
  CommandRun run = RunCommand(absl::StrCat("{ env -u DREAMBOOTH_SERVER -u DREAMBOOTH_API_KEY ",
                                           DB_DBCTL_PATH, " --server=127.0.0.1:1 jobs submit ",
                                           args, " >", out, " 2>", err, "; }"));
  return {run.exit_code, ReadFileToString(out).value_or(""), ReadFileToString(err).value_or("")};
}

std::string Data(const std::string& name) {
  return absl::StrCat(DB_SOURCE_DIR, "/tests/data/nemo/", name);
}

TEST(DbctlNemoTest, DryRunPrintsTheMappedSpecAndListsUnmappedKeys) {
  DryRun run = Submit(absl::StrCat("--base-model tiny --image-set is_abc --nemo-config ",
                                   Data("dreambooth_full.yaml"), " --dry-run"));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  for (const char* field :
       {"\"base_model\":\"tiny\"", "\"instance_image_set\":\"is_abc\"",
        "\"instance_prompt\":\"a photo of a zwx cat\"", "\"max_train_steps\":800",
        "\"train_batch_size\":2", "\"gradient_accumulation_steps\":2",
        "\"mixed_precision\":\"MIXED_PRECISION_FP16\"", "\"use_cached_latents\":false",
        "\"num_devices\":2", "\"seed\":\"4321\""}) {
    EXPECT_TRUE(absl::StrContains(run.json, field)) << field << " in " << run.json;
  }
  EXPECT_TRUE(absl::StrContains(
      run.err,
      "dbctl: --nemo-config: not mapped: model.text_embedding_dropout_rate: no equivalent"))
      << run.err;
  EXPECT_TRUE(absl::StrContains(run.err, "not mapped: model.data.instance_dir: no equivalent"))
      << run.err;
}

TEST(DbctlNemoTest, FlagsOverrideTheNemoConfig) {
  DryRun run = Submit(absl::StrCat("--base-model tiny --image-set is_abc --nemo-config ",
                                   Data("dreambooth_full.yaml"),
                                   " --steps 50 --prompt 'a photo of qwe cat' --dry-run"));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(absl::StrContains(run.json, "\"max_train_steps\":50")) << run.json;
  EXPECT_TRUE(absl::StrContains(run.json, "\"instance_prompt\":\"a photo of qwe cat\""));
  EXPECT_TRUE(absl::StrContains(run.json, "\"resolution\":256")) << run.json;  // from the YAML
}

TEST(DbctlNemoTest, BadConfigIsAUsageErrorNamingTheKey) {
  DryRun run = Submit(
      absl::StrCat("--base-model tiny --nemo-config ", Data("bad_resolution.yaml"), " --dry-run"));
  EXPECT_EQ(run.exit_code, 2) << run.err;
  EXPECT_TRUE(absl::StrContains(run.err, "model.data.resolution")) << run.err;
  EXPECT_EQ(run.json, "");
}

TEST(DbctlNemoTest, BaseModelStaysRequired) {
  DryRun run = Submit(absl::StrCat("--nemo-config ", Data("dreambooth_full.yaml"), " --dry-run"));
  EXPECT_EQ(run.exit_code, 2) << run.err;
  EXPECT_TRUE(absl::StrContains(run.err, "--base-model is required")) << run.err;
}

}  // namespace
}  // namespace dreambooth::testing
