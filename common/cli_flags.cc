#include "common/cli_flags.h"

#include <cmath>
#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"

namespace dreambooth::cli {
namespace {

constexpr char kDurationForm[] = "a whole number with a unit (ms, s, m or h), e.g. 500ms, 30s, 2m";

struct Unit {
  const char* suffix;
  int64_t ms;
};
// Largest first, for FormatDurationFlag.
constexpr Unit kUnits[] = {{"h", 3'600'000}, {"m", 60'000}, {"s", 1'000}, {"ms", 1}};

bool AllDigits(absl::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// The innermost subcommand given on the command line (`app` itself when none).
const CLI::App* Innermost(const CLI::App& app) {
  const CLI::App* command = &app;
  while (!command->get_subcommands().empty()) command = command->get_subcommands().front();
  return command;
}

// "dbctl jobs submit".
std::string CommandPath(const CLI::App& command) {
  std::string path = command.get_name();
  for (const CLI::App* p = command.get_parent(); p != nullptr; p = p->get_parent()) {
    path = p->get_name() + " " + path;
  }
  return path;
}

// A RequiredError for a missing subcommand, told as the words the user may type.
std::string MissingCommandReason(CLI::App& root, const CLI::App& command) {
  std::vector<std::string> names;
  for (const CLI::App* sub : command.get_subcommands({})) names.push_back(sub->get_name());
  const std::string choices = absl::StrJoin(names, ", ");
  for (const std::string& word : root.remaining(true)) {
    if (!word.empty() && word[0] != '-') {
      return absl::StrCat("unknown command '", word, "' (commands: ", choices, ")");
    }
  }
  return absl::StrCat("a command is required (commands: ", choices, ")");
}

}  // namespace

absl::StatusOr<absl::Duration> ParseDuration(absl::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && absl::ascii_isdigit(static_cast<unsigned char>(text[digits]))) {
    ++digits;
  }
  const absl::string_view number = text.substr(0, digits);
  const absl::string_view suffix = text.substr(digits);
  if (!number.empty() && suffix.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' has no unit; expected ", kDurationForm));
  }
  const Unit* unit = nullptr;
  for (const Unit& u : kUnits) {
    if (suffix == u.suffix) unit = &u;
  }
  if (number.empty() || unit == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a duration; expected ", kDurationForm));
  }
  int64_t value = 0;
  if (!absl::SimpleAtoi(number, &value) || value > std::numeric_limits<int64_t>::max() / unit->ms) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is too long a duration"));
  }
  if (value == 0) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "': the duration must be positive"));
  }
  return absl::Milliseconds(value * unit->ms);
}

std::string FormatDurationFlag(absl::Duration duration) {
  const int64_t ms = absl::ToInt64Milliseconds(duration);
  for (const Unit& u : kUnits) {
    if (ms != 0 && ms % u.ms == 0) return absl::StrCat(ms / u.ms, u.suffix);
  }
  return absl::StrCat(ms, "ms");
}

absl::StatusOr<int64_t> ParseInt(absl::string_view text, int64_t min, int64_t max) {
  const absl::string_view digits = text.substr(!text.empty() && text[0] == '-' ? 1 : 0);
  int64_t value = 0;
  if (!AllDigits(digits)) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not an integer"));
  }
  if (!absl::SimpleAtoi(text, &value) || value < min || value > max) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", text, "' is out of range; expected an integer in [", min, ", ", max, "]"));
  }
  return value;
}

absl::StatusOr<uint64_t> ParseUint(absl::string_view text, uint64_t min, uint64_t max) {
  uint64_t value = 0;
  if (!AllDigits(text)) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not a non-negative integer"));
  }
  if (!absl::SimpleAtoi(text, &value) || value < min || value > max) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", text, "' is out of range; expected an integer in [", min, ", ", max, "]"));
  }
  return value;
}

absl::StatusOr<double> ParseDouble(absl::string_view text) {
  double value = 0;
  const bool spaced =
      !text.empty() && (absl::ascii_isspace(static_cast<unsigned char>(text[0])) ||
                        absl::ascii_isspace(static_cast<unsigned char>(text.back())));
  if (spaced || !absl::SimpleAtod(text, &value) || !std::isfinite(value)) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not a finite number"));
  }
  return value;
}

void ConfigureApp(CLI::App& app) {
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.fallthrough();
  app.get_formatter()->column_width(36);  // most "--flag TYPE=default" fit beside their help
}

std::optional<int> ParseCommandLine(CLI::App& app, int argc, const char* const* argv) {
  // CLI11 reads "--flag=" as "--flag" and takes the next argument as its value; here it is an
  // empty value, as the two spellings promise.
  std::vector<std::string> args;
  bool options_end = false;
  for (int i = 0; i < argc; ++i) {
    const std::string arg = argv[i];
    options_end = options_end || arg == "--";
    if (!options_end && i > 0 && arg.size() > 3 && arg.rfind("--", 0) == 0 &&
        arg.find('=') == arg.size() - 1) {
      args.push_back(arg.substr(0, arg.size() - 1));
      args.emplace_back();
    } else {
      args.push_back(arg);
    }
  }
  std::vector<const char*> pointers;
  for (const std::string& arg : args) pointers.push_back(arg.c_str());
  try {
    app.parse(static_cast<int>(pointers.size()), pointers.data());
    return std::nullopt;
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    const CLI::App* command = Innermost(app);
    std::string reason = e.what();
    if (dynamic_cast<const CLI::RequiredError*>(&e) != nullptr &&
        command->get_require_subcommand_min() > 0) {
      reason = MissingCommandReason(app, *command);
    }
    return UsageError(*command, reason);
  }
}

int UsageError(const CLI::App& command, absl::string_view message) {
  const std::string path = CommandPath(command);
  std::cerr << path << ": " << message << "\nRun '" << path << " --help' for usage.\n";
  return kUsageExitCode;
}

CLI::Option* AddValue(CLI::App& app, const std::string& name, const std::string& help,
                      const std::string& type_name, const std::string& default_text,
                      std::function<absl::Status(const std::string&)> set) {
  CLI::Option* option = app.add_option(
      name,
      [name, set = std::move(set)](const CLI::results_t& results) {
        for (const std::string& text : results) {
          if (absl::Status status = set(text); !status.ok()) {
            throw CLI::ValidationError(name, std::string(status.message()));
          }
        }
        return true;
      },
      help);
  option->type_name(type_name)->type_size(1)->expected(1);
  if (!default_text.empty()) option->default_str(default_text);
  return option;
}

CLI::Option* AddDouble(CLI::App& app, const std::string& name, double* value,
                       const std::string& help) {
  return AddParsed(app, name, value, ParseDouble, help, "FLOAT", absl::StrCat(*value));
}

CLI::Option* AddDuration(CLI::App& app, const std::string& name, absl::Duration* value,
                         const std::string& help) {
  return AddParsed(app, name, value, ParseDuration, help, "DURATION", FormatDurationFlag(*value));
}

CLI::Option* AddString(CLI::App& app, const std::string& name, std::string* value,
                       const std::string& help) {
  return AddValue(app, name, help, "TEXT", *value, [value](const std::string& text) {
    *value = text;
    return absl::OkStatus();
  });
}

CLI::Option* AddRepeated(CLI::App& app, const std::string& name, std::vector<std::string>* values,
                         const std::string& help) {
  return AddValue(app, name, help, "TEXT", "",
                  [values](const std::string& text) {
                    values->push_back(text);
                    return absl::OkStatus();
                  })
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
}

CLI::Option* AddSwitch(CLI::App& app, const std::string& name, bool* value, bool when_given,
                       const std::string& help) {
  return app.add_flag_callback(
      name, [value, when_given] { *value = when_given; },
      *value == when_given ? help + " (default)" : help);
}

}  // namespace dreambooth::cli
