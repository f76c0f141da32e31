// common/logging.h: structured fields under text and JSON, escaping, and local workers' lines
// passed through the daemon's stream.
#include "common/logging.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"

namespace dreambooth {
namespace {

// The lines `log` writes to stderr.
template <typename F>
std::vector<std::string> CaptureLines(F log) {
  ::testing::internal::CaptureStderr();
  log();
  const std::string out = ::testing::internal::GetCapturedStderr();
  return absl::StrSplit(out, '\n', absl::SkipEmpty());
}

nlohmann::json Parse(const std::string& line) {
  nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  EXPECT_TRUE(j.is_object()) << "not a JSON object: " << line;
  return j;
}

TEST(LogFieldsTest, JsonFieldsAreEscapedKeysOfTheObject) {
  const LogFields fields = {{"job_id", "job_1"},
                            {"error", "bad \"quote\" \\ back\nline\ttab\x01"},
                            {"attempt", 3},
                            {"name", "caf\xC3\xA9 \xFF\xC3"}};
  const nlohmann::json j = Parse("{\"k\":0" + FormatLogFields(fields, /*json=*/true) + "}");
  EXPECT_EQ(j["job_id"], "job_1");
  EXPECT_EQ(j["error"], "bad \"quote\" \\ back\nline\ttab\x01");
  EXPECT_EQ(j["attempt"], 3);  // a number, not a string
  // Valid UTF-8 is kept; invalid bytes become U+FFFD.
  EXPECT_EQ(j["name"], "caf\xC3\xA9 \xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(LogFieldsTest, TextFieldsAreAppendedAsKeyValue) {
  EXPECT_EQ(FormatLogFields({{"job_id", "job_1"}, {"worker_id", "w/train"}, {"attempt", 2}},
                            /*json=*/false),
            " job_id=job_1 worker_id=w/train attempt=2");
  // Values that would be ambiguous are quoted and escaped.
  EXPECT_EQ(FormatLogFields({{"error", "out of \"memory\"\n"}, {"empty", ""}, {"eq", "a=b"}},
                            /*json=*/false),
            R"( error="out of \"memory\"\n" empty="" eq="a=b")");
}

TEST(LoggingTest, RejectsUnknownLevelAndFormat) {
  EXPECT_TRUE(absl::IsInvalidArgument(ConfigureLogging("t", "loud", "text")));
  const absl::Status format = ConfigureLogging("t", "info", "xml");
  EXPECT_TRUE(absl::IsInvalidArgument(format));
  EXPECT_TRUE(absl::StrContains(format.message(), "--log-format")) << format;
}

TEST(LoggingTest, JsonLinesCarryTheFields) {
  ASSERT_TRUE(ConfigureLogging("t", "info", "json").ok());
  const std::vector<std::string> lines = CaptureLines([] {
    LogInfo("attempt \"ended\"\n", {{"job_id", "job_1"}, {"attempt", 1}});
    LogWarn("no fields");
    Log(LogLevel::kDebug, "below the level", {{"job_id", "job_1"}});
  });
  ASSERT_EQ(lines.size(), 2u);
  const nlohmann::json first = Parse(lines[0]);
  EXPECT_EQ(first["msg"], "attempt \"ended\"\n");
  EXPECT_EQ(first["level"], "info");
  EXPECT_EQ(first["job_id"], "job_1");
  EXPECT_EQ(first["attempt"], 1);
  EXPECT_TRUE(first.contains("time") && first.contains("thread")) << lines[0];
  const nlohmann::json second = Parse(lines[1]);
  EXPECT_EQ(second["level"], "warning");
  EXPECT_FALSE(second.contains("job_id")) << lines[1];
}

TEST(LoggingTest, TextLinesEndWithTheFields) {
  ASSERT_TRUE(ConfigureLogging("t", "debug", "text").ok());
  const std::vector<std::string> lines = CaptureLines([] {
    LogInfo("job leased", {{"job_id", "job_1"}, {"worker_id", "w/train"}});
  });
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(absl::StrContains(lines[0], " info [")) << lines[0];
  EXPECT_TRUE(absl::EndsWith(lines[0], "] job leased job_id=job_1 worker_id=w/train")) << lines[0];
}

TEST(LoggingTest, ChildJsonLinesPassThroughWithTheirSource) {
  ASSERT_TRUE(ConfigureLogging("t", "info", "json").ok());
  const std::vector<std::string> lines = CaptureLines([] {
    LogChildLine("worker-0", R"({"time":"t","level":"info","msg":"m","job_id":"job_1"})");
    LogChildLine("worker-0", R"({"level":"debug","msg":"filtered by the daemon's level"})");
    LogChildLine("worker-1", R"({"msg":"has one","source":"mine"})");
    LogChildLine("worker-0", "plain text from a library");
    LogChildLine("worker-0", R"({"msg": "truncated)");
  });
  ASSERT_EQ(lines.size(), 4u);
  const nlohmann::json passed = Parse(lines[0]);
  EXPECT_EQ(passed["source"], "worker-0");
  EXPECT_EQ(passed["job_id"], "job_1");
  EXPECT_EQ(passed["msg"], "m");
  EXPECT_EQ(Parse(lines[1])["source"], "mine");
  EXPECT_EQ(Parse(lines[2])["msg"], "[worker-0] plain text from a library");
  EXPECT_EQ(Parse(lines[3])["msg"], R"([worker-0] {"msg": "truncated)");
}

TEST(LoggingTest, ChildLinesUnderTextArePrefixed) {
  ASSERT_TRUE(ConfigureLogging("t", "info", "text").ok());
  const std::vector<std::string> lines =
      CaptureLines([] { LogChildLine("worker-2", R"({"msg":"m"})"); });
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(absl::EndsWith(lines[0], R"(] [worker-2] {"msg":"m"})")) << lines[0];
}

}  // namespace
}  // namespace dreambooth
