// The shared command-line helpers: durations need a unit, integers are decimal and range-checked
// (overflow included), and a CLI11 app configured by ConfigureApp refuses unknown options and bad
// values with exit status 2, keeps repeatable options in order, and shows defaults in --help.
#include "common/cli_flags.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace dreambooth::cli {
namespace {

using ::testing::internal::CaptureStderr;
using ::testing::internal::CaptureStdout;
using ::testing::internal::GetCapturedStderr;
using ::testing::internal::GetCapturedStdout;

TEST(ParseDurationTest, AcceptsAWholeNumberWithAUnit) {
  EXPECT_EQ(*ParseDuration("500ms"), absl::Milliseconds(500));
  EXPECT_EQ(*ParseDuration("30s"), absl::Seconds(30));
  EXPECT_EQ(*ParseDuration("2m"), absl::Minutes(2));
  EXPECT_EQ(*ParseDuration("1h"), absl::Hours(1));
}

TEST(ParseDurationTest, RefusesABareNumberAndGarbageWithTheReason) {
  absl::StatusOr<absl::Duration> bare = ParseDuration("30");
  ASSERT_FALSE(bare.ok());
  EXPECT_EQ(bare.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bare.status().message().find("'30' has no unit"), std::string::npos) << bare.status();
  for (const char* bad :
       {"", "s", "2x", "2sec", "-5s", "+5s", "1.5s", " 5s", "5 s", "5s ", "ms5"}) {
    absl::StatusOr<absl::Duration> d = ParseDuration(bad);
    EXPECT_FALSE(d.ok()) << "'" << bad << "'";
    EXPECT_NE(d.status().message().find("not a duration"), std::string::npos) << d.status();
  }
  EXPECT_NE(ParseDuration("0s").status().message().find("must be positive"), std::string::npos);
  EXPECT_NE(ParseDuration("9223372036854775807h").status().message().find("too long"),
            std::string::npos);
}

TEST(FormatDurationFlagTest, UsesTheLargestExactUnitAndRoundTrips) {
  EXPECT_EQ(FormatDurationFlag(absl::Seconds(30)), "30s");
  EXPECT_EQ(FormatDurationFlag(absl::Seconds(90)), "90s");
  EXPECT_EQ(FormatDurationFlag(absl::Minutes(2)), "2m");
  EXPECT_EQ(FormatDurationFlag(absl::Hours(168)), "168h");
  EXPECT_EQ(FormatDurationFlag(absl::Milliseconds(1500)), "1500ms");
  for (absl::Duration d : {absl::Milliseconds(1), absl::Seconds(59), absl::Hours(3)}) {
    EXPECT_EQ(*ParseDuration(FormatDurationFlag(d)), d);
  }
}

TEST(ParseIntTest, ReadsDecimalOnlyWithinTheRange) {
  EXPECT_EQ(*ParseInt("42", 0, 100), 42);
  EXPECT_EQ(*ParseInt("-3", -10, 10), -3);
  EXPECT_EQ(*ParseInt("010", 0, 100), 10);  // not octal
  for (const char* bad : {"", "-", "0x10", "+1", " 1", "1 ", "1e3", "12abc"}) {
    EXPECT_FALSE(ParseInt(bad, INT64_MIN, INT64_MAX).ok()) << "'" << bad << "'";
  }
  absl::StatusOr<int64_t> wide = ParseInt("4294967696", INT32_MIN, INT32_MAX);
  ASSERT_FALSE(wide.ok());
  EXPECT_NE(wide.status().message().find("[-2147483648, 2147483647]"), std::string::npos)
      << wide.status();
  EXPECT_FALSE(ParseInt("9223372036854775808", INT64_MIN, INT64_MAX).ok());  // overflow
  EXPECT_FALSE(ParseInt("0", 1, 10).ok());
}

TEST(ParseUintTest, RefusesASignAndOverflow) {
  EXPECT_EQ(*ParseUint("18446744073709551615", 0, UINT64_MAX), UINT64_MAX);
  EXPECT_FALSE(ParseUint("-1", 0, UINT64_MAX).ok());
  EXPECT_FALSE(ParseUint("18446744073709551616", 0, UINT64_MAX).ok());
}

TEST(ParseDoubleTest, ReadsFiniteNumbersOnly) {
  EXPECT_DOUBLE_EQ(*ParseDouble("1e-6"), 1e-6);
  EXPECT_DOUBLE_EQ(*ParseDouble("-0.5"), -0.5);
  for (const char* bad : {"", "inf", "nan", "abc", " 1", "1 ", "1e999"}) {
    EXPECT_FALSE(ParseDouble(bad).ok()) << "'" << bad << "'";
  }
}

// A small two-level command line like dbctl's.
struct Cli {
  CLI::App app{"test tool", "tool"};
  CLI::App* run = nullptr;
  int32_t steps = 400;
  uint64_t seed = 0;
  double lr = 1e-6;
  absl::Duration timeout = absl::Seconds(30);
  std::string name;
  std::vector<std::string> prompts;
  bool json = false;
  bool cached = true;

  Cli() {
    ConfigureApp(app);
    app.require_subcommand(1);
    AddDuration(app, "--timeout", &timeout, "per-call deadline");
    AddSwitch(app, "--json", &json, true, "print JSON");
    run = app.add_subcommand("run", "run something");
    AddInt(*run, "--steps", &steps, "optimizer steps");
    AddInt(*run, "--seed", &seed, "seed");
    AddDouble(*run, "--lr", &lr, "learning rate");
    AddString(*run, "--name", &name, "a label");
    AddRepeated(*run, "--prompt", &prompts, "a prompt (repeatable)");
    AddSwitch(*run, "--no-cache", &cached, false, "skip the cache");
    AddSwitch(*run, "--cache", &cached, true, "use the cache");
  }

  std::optional<int> Parse(std::vector<std::string> args) {
    args.insert(args.begin(), "tool");
    std::vector<const char*> argv;
    for (const std::string& a : args) argv.push_back(a.c_str());
    return ParseCommandLine(app, static_cast<int>(argv.size()), argv.data());
  }
};

TEST(ParseCommandLineTest, ReadsTypedValuesInBothSpellings) {
  Cli cli;
  EXPECT_EQ(cli.Parse({"run", "--steps=20", "--seed", "18446744073709551615", "--lr", "1e-4",
                       "--name=a=b", "--prompt", "x", "--prompt=y", "--no-cache", "--timeout=2m",
                       "--json"}),
            std::nullopt);
  EXPECT_EQ(cli.steps, 20);
  EXPECT_EQ(cli.seed, UINT64_MAX);
  EXPECT_DOUBLE_EQ(cli.lr, 1e-4);
  EXPECT_EQ(cli.name, "a=b");
  EXPECT_EQ(cli.prompts, (std::vector<std::string>{"x", "y"}));
  EXPECT_FALSE(cli.cached);
  EXPECT_EQ(cli.timeout, absl::Minutes(2));  // not 2 seconds
  EXPECT_TRUE(cli.json);                     // a parent's option after the subcommand
}

TEST(ParseCommandLineTest, UntouchedOptionsKeepTheirValuesAndTheLastRepeatWins) {
  Cli cli;
  EXPECT_EQ(cli.Parse({"--timeout=1s", "run", "--steps", "-3", "--steps=5", "--timeout", "5s"}),
            std::nullopt);
  EXPECT_EQ(cli.steps, 5);
  EXPECT_EQ(cli.timeout, absl::Seconds(5));
  EXPECT_EQ(cli.seed, 0u);
  EXPECT_DOUBLE_EQ(cli.lr, 1e-6);
  EXPECT_TRUE(cli.cached);
}

TEST(ParseCommandLineTest, AnEmptyValueAfterTheEqualsSignIsEmpty) {
  Cli cli;
  cli.name = "preset";
  EXPECT_EQ(cli.Parse({"run", "--name="}), std::nullopt);
  EXPECT_EQ(cli.name, "");
  Cli other;  // the next argument is not taken as the value
  CaptureStderr();
  EXPECT_EQ(other.Parse({"run", "--name=", "stray"}), kUsageExitCode);
  EXPECT_NE(GetCapturedStderr().find("not expected: stray"), std::string::npos);
}

TEST(ParseCommandLineTest, UsageErrorsExitTwoNamingTheFlag) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const Case cases[] = {
      {{"run", "--step=100"}, "not expected: --step=100"},
      {{"run", "--steps=4294967696"}, "--steps: '4294967696' is out of range"},
      {{"run", "--steps=0x10"}, "--steps: '0x10' is not an integer"},
      {{"run", "--seed=-1"}, "--seed: '-1' is not a non-negative integer"},
      {{"run", "--lr=fast"}, "--lr: 'fast' is not a finite number"},
      {{"--timeout=2", "run"}, "--timeout: '2' has no unit"},
      {{"run", "--steps"}, "--steps"},
      {{"run", "stray"}, "stray"},
      {{}, "a command is required (commands: run)"},
      {{"walk"}, "unknown command 'walk' (commands: run)"},
  };
  for (const Case& c : cases) {
    Cli cli;
    CaptureStderr();
    const std::optional<int> exit_code = cli.Parse(c.args);
    const std::string err = GetCapturedStderr();
    EXPECT_EQ(exit_code, kUsageExitCode) << c.message;
    EXPECT_NE(err.find(c.message), std::string::npos) << err;
    EXPECT_NE(err.find("--help' for usage"), std::string::npos) << err;
    EXPECT_EQ(cli.steps, 400);  // nothing half-applied that a caller could act on
  }
}

TEST(ParseCommandLineTest, HelpShowsEachCommandsOptionsWithTheirDefaults) {
  Cli cli;
  CaptureStdout();
  EXPECT_EQ(cli.Parse({"run", "--help"}), 0);
  const std::string help = GetCapturedStdout();
  EXPECT_NE(help.find("tool run"), std::string::npos) << help;
  EXPECT_NE(help.find("--steps INT=400"), std::string::npos) << help;
  EXPECT_NE(help.find("--lr FLOAT=1e-06"), std::string::npos) << help;
  EXPECT_NE(help.find("use the cache (default)"), std::string::npos) << help;
  CaptureStdout();
  EXPECT_EQ(cli.Parse({"--help"}), 0);
  const std::string top = GetCapturedStdout();
  EXPECT_NE(top.find("--timeout DURATION=30s"), std::string::npos) << top;
  EXPECT_NE(top.find("run something"), std::string::npos) << top;
}

}  // namespace
}  // namespace dreambooth::cli
