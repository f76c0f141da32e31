// Command-line parsing shared by every binary: CLI11 with this project's conventions, plus the
// typed options CLI11 lacks or gets wrong (its integers read "010" as octal and clamp on overflow;
// it has no durations).
//
// Conventions, set by ConfigureApp on the root before anything is added (subcommands inherit
// them): long options in dash style (--data-dir), a value as --flag=value or --flag value; an
// unknown option, a stray argument, a missing value or a bad value is a usage error; a
// single-value option given twice keeps the last value; options of a parent command may also
// follow a subcommand's words; -h/--help prints the generated help of the innermost command.
// ParseCommandLine reports usage errors with exit status 2 (kUsageExitCode).
//
// The Add* functions store into caller-owned variables, which must outlive the parse; an option's
// callback runs only when the option is given, so a variable keeps its initial value otherwise
// and that value is what --help shows as the default.
#ifndef DREAMBOOTH_COMMON_CLI_FLAGS_H_
#define DREAMBOOTH_COMMON_CLI_FLAGS_H_

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace dreambooth::cli {

// Exit status of a command line that cannot be parsed.
inline constexpr int kUsageExitCode = 2;

// A positive duration written as a whole number and one unit: ms, s, m or h ("500ms", "30s",
// "2m", "1h"). INVALID_ARGUMENT, with the reason, for a bare number ("30"), another unit, a sign,
// a fraction, spaces, zero, or more milliseconds than an int64 holds.
absl::StatusOr<absl::Duration> ParseDuration(absl::string_view text);
// `duration` in the largest of h, m, s, ms that divides it ("30s", "2m", "1500ms"); parses back
// to the same value for any positive whole number of milliseconds.
std::string FormatDurationFlag(absl::Duration duration);

// A base-10 integer: an optional '-' then digits ("010" is ten; no '+', spaces or "0x").
// INVALID_ARGUMENT names the range [min, max] when the value lies outside it, overflow included.
absl::StatusOr<int64_t> ParseInt(absl::string_view text, int64_t min, int64_t max);
// Likewise for unsigned values (no '-').
absl::StatusOr<uint64_t> ParseUint(absl::string_view text, uint64_t min, uint64_t max);
// A finite decimal number ("0.5", "1e-6"); INVALID_ARGUMENT for anything else (inf, nan, spaces).
absl::StatusOr<double> ParseDouble(absl::string_view text);

// Applies the conventions above to a root command; call before adding options or subcommands.
void ConfigureApp(CLI::App& app);

// Parses argv into `app`. Returns nullopt when the program should go on; otherwise the exit status
// after printing: 0 for --help (help of the innermost command given, on stdout), kUsageExitCode
// for a usage error ("<command path>: <reason>" and where to find the help, on stderr).
std::optional<int> ParseCommandLine(CLI::App& app, int argc, const char* const* argv);

// Prints a usage error found after parsing ("<command path>: <message>" and where to find the
// help, on stderr) and returns kUsageExitCode.
int UsageError(const CLI::App& command, absl::string_view message);

// Adds an option taking one value per occurrence, handed to `set`; a non-OK status from `set` is a
// usage error "<name>: <message>". `type_name` (e.g. "INT") and `default_text` (when not empty)
// are shown in --help. The building block of the typed options below.
CLI::Option* AddValue(CLI::App& app, const std::string& name, const std::string& help,
                      const std::string& type_name, const std::string& default_text,
                      std::function<absl::Status(const std::string&)> set);

// An integer option in [min, max] (default: T's whole range) stored in *value.
template <typename T>
CLI::Option* AddInt(CLI::App& app, const std::string& name, T* value, const std::string& help,
                    std::type_identity_t<T> min = std::numeric_limits<T>::lowest(),
                    std::type_identity_t<T> max = std::numeric_limits<T>::max()) {
  static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>);
  return AddValue(app, name, help, "INT", absl::StrCat(*value),
                  [value, min, max](const std::string& text) -> absl::Status {
                    if constexpr (std::is_signed_v<T>) {
                      absl::StatusOr<int64_t> parsed = ParseInt(text, min, max);
                      if (!parsed.ok()) return parsed.status();
                      *value = static_cast<T>(*parsed);
                    } else {
                      absl::StatusOr<uint64_t> parsed = ParseUint(text, min, max);
                      if (!parsed.ok()) return parsed.status();
                      *value = static_cast<T>(*parsed);
                    }
                    return absl::OkStatus();
                  });
}

// A finite floating-point option stored in *value.
CLI::Option* AddDouble(CLI::App& app, const std::string& name, double* value,
                       const std::string& help);
// A ParseDuration option stored in *value (shown in --help with FormatDurationFlag).
CLI::Option* AddDuration(CLI::App& app, const std::string& name, absl::Duration* value,
                         const std::string& help);
// A text option stored in *value (its default shown when not empty).
CLI::Option* AddString(CLI::App& app, const std::string& name, std::string* value,
                       const std::string& help);
// A repeatable text option: each occurrence appends one value to *values, in order.
CLI::Option* AddRepeated(CLI::App& app, const std::string& name, std::vector<std::string>* values,
                         const std::string& help);
// A switch without a value: when given, *value becomes `when_given`; the help says "(default)"
// when *value already holds it.
CLI::Option* AddSwitch(CLI::App& app, const std::string& name, bool* value, bool when_given,
                       const std::string& help);

// An option whose text is turned into a T by `parse` (any callable from const std::string& to
// absl::StatusOr<T>), e.g. an enum or a device name.
template <typename T, typename Parse>
CLI::Option* AddParsed(CLI::App& app, const std::string& name, T* value, Parse parse,
                       const std::string& help, const std::string& type_name = "TEXT",
                       const std::string& default_text = "") {
  return AddValue(app, name, help, type_name, default_text,
                  [value, parse = std::move(parse)](const std::string& text) -> absl::Status {
                    absl::StatusOr<T> parsed = parse(text);
                    if (!parsed.ok()) return parsed.status();
                    *value = *std::move(parsed);
                    return absl::OkStatus();
                  });
}

}  // namespace dreambooth::cli

#endif  // DREAMBOOTH_COMMON_CLI_FLAGS_H_
