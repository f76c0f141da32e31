// Process-wide logging of dreamboothd and dreambooth-worker: spdlog's default logger on stderr,
// as text lines or one JSON object per line, with structured fields such as job and worker ids.
//
//   LogInfo("attempt ended: completed", {{"job_id", id}, {"worker_id", w}, {"attempt", 2}});
//
//   json: {"time":"2025-01-02T03:04:05.678+0000","level":"info","thread":42,
//          "msg":"attempt ended: completed","job_id":"job_1","worker_id":"w/train","attempt":2}
//   text: 2025-01-02 03:04:05.678 info [42] attempt ended: completed job_id=job_1
//         worker_id=w/train attempt=2
//
// A field becomes a top-level key of the JSON object (a string value, or a number for an integer
// field); field names must not be time, level, thread, msg or source. Plain spdlog::info(...)
// calls keep working: they log without fields.
//
// Thread-safe: ConfigureLogging once at start, before other threads log; then the Log functions
// from any thread. Lines are whole (one write per line) even with many writers.
#ifndef DREAMBOOTH_COMMON_LOGGING_H_
#define DREAMBOOTH_COMMON_LOGGING_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace dreambooth {

// One structured field of a log line.
struct LogField {
  LogField(std::string_view field_name, std::string_view text)
      : name(field_name), value(text), is_number(false) {}
  LogField(std::string_view field_name, int64_t number)
      : name(field_name), value(std::to_string(number)), is_number(true) {}

  std::string name;
  std::string value;  // the text, or the integer's decimal digits
  bool is_number;     // written unquoted under json
};
using LogFields = std::vector<LogField>;

enum class LogLevel { kDebug, kInfo, kWarn, kError };

// Makes `logger_name` (e.g. "dreamboothd") the default logger: stderr, lines at `level` and above.
// level: trace|debug|info|warn|error|off; format: text|json. INVALID_ARGUMENT naming the flag
// (--log-level, --log-format) otherwise. May be called again (tests); the last call wins.
absl::Status ConfigureLogging(const std::string& logger_name, const std::string& level,
                              const std::string& format);

// Logs `message` with `fields` through the default logger.
void Log(LogLevel level, std::string_view message, const LogFields& fields = {});
inline void LogInfo(std::string_view message, const LogFields& fields = {}) {
  Log(LogLevel::kInfo, message, fields);
}
inline void LogWarn(std::string_view message, const LogFields& fields = {}) {
  Log(LogLevel::kWarn, message, fields);
}
inline void LogError(std::string_view message, const LogFields& fields = {}) {
  Log(LogLevel::kError, message, fields);
}

// Logs one line that another process (a local worker) wrote, `source` naming it ("worker-0").
// Under json a line that is a JSON object is written as it is, as its own line, at the level its
// "level" names, with "source":`source` added when it has no "source" key; every other line (and
// every line under text) is logged at info as "[source] line".
void LogChildLine(std::string_view source, std::string_view line);

// The fields as they end a line: `,"name":"value"...` under json (names and values escaped as
// JSON strings, integers unquoted), ` name=value...` under text (a value that is empty or holds a
// space, '"', '=' or a control character is quoted and escaped like a JSON string).
std::string FormatLogFields(const LogFields& fields, bool json);

// Appends `text` to `out` as the body of a JSON string: '"', '\\' and control characters
// escaped, invalid UTF-8 bytes replaced by U+FFFD, so the result is always valid JSON.
void AppendJsonEscaped(std::string_view text, std::string* out);

}  // namespace dreambooth

#endif  // DREAMBOOTH_COMMON_LOGGING_H_
