// dreamboothd's command line, on the real binary: a duration without a unit, a misspelt flag or an
// integer out of range exits with status 2 and the reason before anything starts (the data folder
// is not even created); --help lists each option with its default.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "tests/testing/command_run.h"
#include "tests/testing/temp_dir.h"

#ifndef DB_DREAMBOOTHD_PATH
#define DB_DREAMBOOTHD_PATH "dreamboothd"
#endif

namespace dreambooth::testing {
namespace {

CommandRun Dreamboothd(const std::string& args) {
  return RunCommand(absl::StrCat(DB_DREAMBOOTHD_PATH, " ", args));
}

TEST(DaemonFlagsTest, RefusesALeaseTtlWithoutAUnit) {
  TempDir dir;
  const std::string data = dir.Join("data");
  // Seconds or minutes? A bare number is refused, with the reason, rather than guessed.
  CommandRun run = Dreamboothd("--listen=127.0.0.1:0 --data-dir=" + data + " --lease-ttl=30");
  EXPECT_EQ(run.exit_code, 2) << run.out;
  EXPECT_NE(run.out.find("dreamboothd: --lease-ttl: '30' has no unit"), std::string::npos)
      << run.out;
  EXPECT_FALSE(std::filesystem::exists(data));
}

TEST(DaemonFlagsTest, RefusesUnknownFlagsAndValuesOutOfRange) {
  TempDir dir;
  const std::string data = dir.Join("data");
  struct Case {
    std::string flag;
    std::string message;
  };
  for (const Case& c : {
           Case{"--lease-tll=30s", "not expected: --lease-tll=30s"},
           Case{"--max-images-per-set=4294967297", "--max-images-per-set: '4294967297' is out"},
           Case{"--max-upload-bytes=0", "--max-upload-bytes: '0' is out of range"},
           Case{"--shutdown-grace=10", "--shutdown-grace: '10' has no unit"},
           Case{"--local-workers=two", "dreamboothd: "},
       }) {
    CommandRun run = Dreamboothd("--listen=127.0.0.1:0 --data-dir=" + data + " " + c.flag);
    EXPECT_EQ(run.exit_code, 2) << c.flag << ": " << run.out;
    EXPECT_NE(run.out.find(c.message), std::string::npos) << run.out;
  }
  EXPECT_FALSE(std::filesystem::exists(data));
}

// Options also come from DREAMBOOTHD_<NAME> variables and a --config TOML file, checked the same
// way; the command line wins over the file, the file over the environment.
TEST(DaemonFlagsTest, ReadsOptionsFromTheEnvironmentAndAConfigFile) {
  TempDir dir;
  const std::string data = dir.Join("data");
  CommandRun env = RunCommand(absl::StrCat("DREAMBOOTHD_LEASE_TTL=30 ", DB_DREAMBOOTHD_PATH,
                                           " --listen=127.0.0.1:0 --data-dir=", data));
  EXPECT_EQ(env.exit_code, 2) << env.out;
  EXPECT_NE(env.out.find("--lease-ttl: '30' has no unit"), std::string::npos) << env.out;

  const std::string config = dir.Join("dreamboothd.toml");
  FILE* f = std::fopen(config.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("lease-ttl = \"31\"\n", f);
  std::fclose(f);
  CommandRun file =
      Dreamboothd(absl::StrCat("--config=", config, " --listen=127.0.0.1:0 --data-dir=", data));
  EXPECT_EQ(file.exit_code, 2) << file.out;
  EXPECT_NE(file.out.find("--lease-ttl: '31' has no unit"), std::string::npos) << file.out;

  // The environment's listen address is used (it cannot be bound: the daemon says so).
  CommandRun listen = RunCommand(
      absl::StrCat("DREAMBOOTHD_LISTEN=256.0.0.1:1 ", DB_DREAMBOOTHD_PATH, " --data-dir=", data));
  EXPECT_NE(listen.exit_code, 0) << listen.out;
  EXPECT_NE(listen.out.find("256.0.0.1:1"), std::string::npos) << listen.out;

  // A good --lease-ttl on the command line overrides the file's bad one and the environment's:
  // the daemon gets past its options (and then fails on a data dir that is a file).
  const std::string not_a_dir = dir.Join("file");
  f = std::fopen(not_a_dir.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  CommandRun cli = RunCommand(absl::StrCat("DREAMBOOTHD_LEASE_TTL=32 ", DB_DREAMBOOTHD_PATH,
                                           " --config=", config, " --lease-ttl=30s",
                                           " --listen=127.0.0.1:0 --data-dir=", not_a_dir));
  EXPECT_NE(cli.exit_code, 0) << cli.out;
  EXPECT_NE(cli.exit_code, 2) << cli.out;
  EXPECT_EQ(cli.out.find("has no unit"), std::string::npos) << cli.out;
}

TEST(DaemonFlagsTest, HelpListsTheOptionsWithTheirDefaults) {
  CommandRun run = Dreamboothd("--help");
  EXPECT_EQ(run.exit_code, 0) << run.out;
  for (const char* line : {"--listen TEXT=127.0.0.1:50051", "DREAMBOOTHD_LISTEN", "--config",
                           "--lease-ttl DURATION=30s", "--shutdown-grace DURATION=10s",
                           "--max-upload-bytes INT=52428800"}) {
    EXPECT_NE(run.out.find(line), std::string::npos) << line << "\n" << run.out;
  }
}

}  // namespace
}  // namespace dreambooth::testing
