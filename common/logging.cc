#include "common/logging.h"

#include <spdlog/details/os.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

namespace dreambooth {
namespace {

// What the formatters below read while a Log call formats its line: spdlog's synchronous sinks
// format on the logging thread, inside the logger call.
thread_local const LogFields* tls_fields = nullptr;
thread_local bool tls_verbatim = false;  // LogChildLine: the payload is the whole line

std::atomic<bool> g_json{false};

// The length of the valid UTF-8 sequence at text[i], 0 when the byte there does not start one.
size_t Utf8SequenceLength(std::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char c = byte(i);
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;  // overlong
    if (c == 0xED) hi = 0x9F;  // surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;  // overlong
    if (c == 0xF4) hi = 0x8F;  // beyond U+10FFFF
  } else {
    return 0;
  }
  if (i + n > text.size() || byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return n;
}

bool NeedsQuotes(std::string_view value) {
  if (value.empty()) return true;
  for (char c : value) {
    if (c == ' ' || c == '"' || c == '=' || static_cast<unsigned char>(c) < 0x20) return true;
  }
  return false;
}

// %* in the JSON pattern: the message as a JSON string body.
class JsonMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    std::string body;
    AppendJsonEscaped(std::string_view(msg.payload.data(), msg.payload.size()), &body);
    dest.append(body.data(), body.data() + body.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

// %& in either pattern: the fields of the Log call being formatted (none for plain spdlog calls).
class FieldsFlag : public spdlog::custom_flag_formatter {
 public:
  explicit FieldsFlag(bool json) : json_(json) {}
  void format(const spdlog::details::log_msg&, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    if (tls_fields == nullptr || tls_fields->empty()) return;
    const std::string text = FormatLogFields(*tls_fields, json_);
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<FieldsFlag>(json_);
  }

 private:
  const bool json_;
};

// The pattern's line, or under LogChildLine the payload as the whole line.
class LineFormatter : public spdlog::formatter {
 public:
  explicit LineFormatter(std::unique_ptr<spdlog::formatter> pattern)
      : pattern_(std::move(pattern)) {}
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    if (!tls_verbatim) return pattern_->format(msg, dest);
    dest.append(msg.payload.data(), msg.payload.data() + msg.payload.size());
    const std::string_view eol = spdlog::details::os::default_eol;
    dest.append(eol.data(), eol.data() + eol.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<LineFormatter>(pattern_->clone());
  }

 private:
  std::unique_ptr<spdlog::formatter> pattern_;
};

spdlog::level::level_enum ToSpdlog(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return spdlog::level::debug;
    case LogLevel::kInfo:
      return spdlog::level::info;
    case LogLevel::kWarn:
      return spdlog::level::warn;
    case LogLevel::kError:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

}  // namespace

void AppendJsonEscaped(std::string_view text, std::string* out) {
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      const size_t n = Utf8SequenceLength(text, i);
      if (n == 0) {
        out->append("\xEF\xBF\xBD");  // U+FFFD
        ++i;
      } else {
        out->append(text.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
          out->append(buf);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
}

std::string FormatLogFields(const LogFields& fields, bool json) {
  std::string out;
  for (const LogField& f : fields) {
    if (json) {
      out.append(",\"");
      AppendJsonEscaped(f.name, &out);
      out.append("\":");
      if (f.is_number) {
        out.append(f.value);
      } else {
        out.push_back('"');
        AppendJsonEscaped(f.value, &out);
        out.push_back('"');
      }
    } else {
      out.push_back(' ');
      out.append(f.name);
      out.push_back('=');
      if (!f.is_number && NeedsQuotes(f.value)) {
        out.push_back('"');
        AppendJsonEscaped(f.value, &out);
        out.push_back('"');
      } else {
        out.append(f.value);
      }
    }
  }
  return out;
}

absl::Status ConfigureLogging(const std::string& logger_name, const std::string& level,
                              const std::string& format) {
  const spdlog::level::level_enum lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") {
    return absl::InvalidArgumentError(
        "--log-level must be trace, debug, info, warn or error, got '" + level + "'");
  }
  auto pattern = std::make_unique<spdlog::pattern_formatter>();
  if (format == "json") {
    pattern->add_flag<JsonMessageFlag>('*').add_flag<FieldsFlag>('&', true).set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","thread":%t,"msg":"%*"%&})");
  } else if (format == "text") {
    pattern->add_flag<FieldsFlag>('&', false).set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ [%t] %v%&");
  } else {
    return absl::InvalidArgumentError("--log-format must be text or json, got '" + format + "'");
  }
  auto logger = std::make_shared<spdlog::logger>(logger_name,
                                                 std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_formatter(std::make_unique<LineFormatter>(std::move(pattern)));
  logger->set_level(lvl);
  spdlog::set_default_logger(logger);
  g_json.store(format == "json");
  return absl::OkStatus();
}

void Log(LogLevel level, std::string_view message, const LogFields& fields) {
  spdlog::logger* logger = spdlog::default_logger_raw();
  const spdlog::level::level_enum lvl = ToSpdlog(level);
  if (!logger->should_log(lvl)) return;
  tls_fields = &fields;
  logger->log(lvl, spdlog::string_view_t(message.data(), message.size()));
  tls_fields = nullptr;
}

void LogChildLine(std::string_view source, std::string_view line) {
  spdlog::logger* logger = spdlog::default_logger_raw();
  if (g_json.load() && !line.empty() && line.front() == '{') {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object()) {
      spdlog::level::level_enum lvl = spdlog::level::info;
      if (auto it = j.find("level"); it != j.end() && it->is_string()) {
        lvl = spdlog::level::from_str(it->get<std::string>());
      }
      std::string out(line);
      if (!j.contains("source")) {
        std::string field = "\"source\":\"";
        AppendJsonEscaped(source, &field);
        field.append(j.empty() ? "\"" : "\",");
        out.insert(1, field);
      }
      if (!logger->should_log(lvl)) return;
      tls_verbatim = true;
      logger->log(lvl, spdlog::string_view_t(out.data(), out.size()));
      tls_verbatim = false;
      return;
    }
  }
  std::string message = "[";
  message.append(source).append("] ").append(line);
  Log(LogLevel::kInfo, message);
}

}  // namespace dreambooth
