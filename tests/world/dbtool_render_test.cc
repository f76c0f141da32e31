// `dbtool render` as a process: it writes a small dataset and a grid, prints its summary, and
// rejects an unknown attribute name or impossible constraints as usage errors (exit 2).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "tests/testing/command_run.h"
#include "tests/testing/temp_dir.h"

#ifndef DB_DBTOOL_PATH
#define DB_DBTOOL_PATH "dbtool"
#endif

namespace dreambooth::testing {
namespace {

CommandRun Render(const std::string& args) {
  return RunCommand(absl::StrCat(DB_DBTOOL_PATH, " render ", args));
}

TEST(DbtoolRenderTest, WritesADataset) {
  TempDir dir;
  const std::string out = dir.Join("set");
  CommandRun run = Render("--out " + out + " --count 5 --seed 3 --background snow --grid " +
                          dir.Join("grid.png"));
  ASSERT_EQ(run.exit_code, 0) << run.out;
  EXPECT_NE(run.out.find("rendered 5 images to " + out), std::string::npos) << run.out;
  for (const char* name :
       {"00000.png", "00004.png", "00000.txt", "00004.txt", "metadata.jsonl", "labels.jsonl"}) {
    EXPECT_TRUE(std::filesystem::exists(out + "/" + name)) << name;
  }
  EXPECT_FALSE(std::filesystem::exists(out + "/00005.png"));
  EXPECT_TRUE(std::filesystem::exists(dir.Join("grid.png")));
  EXPECT_NE(ReadFile(out + "/labels.jsonl").find("\"background\":\"snow\""), std::string::npos);

  CommandRun subject = Render("--out " + dir.Join("subject") +
                              " --count 2 --subject only --captions full --size 32");
  ASSERT_EQ(subject.exit_code, 0) << subject.out;
  EXPECT_EQ(ReadFile(dir.Join("subject/00001.txt")).rfind("a photo of a blue striped heart", 0),
            0u);
}

TEST(DbtoolRenderTest, UnknownNameIsAUsageError) {
  TempDir dir;
  CommandRun run = Render("--out " + dir.Join("x") + " --count 1 --shape blob");
  EXPECT_EQ(run.exit_code, 2) << run.out;
  EXPECT_NE(run.out.find("circle, square, triangle"), std::string::npos) << run.out;
  EXPECT_FALSE(std::filesystem::exists(dir.Join("x")));
  EXPECT_EQ(Render("--out " + dir.Join("x") + " --count 1 --captions some").exit_code, 2);
}

TEST(DbtoolRenderTest, ImpossibleConstraintsAreAUsageError) {
  TempDir dir;
  CommandRun run = Render("--out " + dir.Join("x") + " --count 1 --subject only --shape circle");
  EXPECT_EQ(run.exit_code, 2) << run.out;
  EXPECT_NE(run.out.find("held-out subject"), std::string::npos) << run.out;
}

}  // namespace
}  // namespace dreambooth::testing
