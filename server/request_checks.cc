#include "server/request_checks.h"

#include <algorithm>
#include <cctype>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace dreambooth::server {

absl::Status CheckRequired(const std::string& field, const std::string& value, size_t max_bytes) {
  if (value.empty()) return absl::InvalidArgumentError(absl::StrCat(field, " is required"));
  if (value.size() > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must be at most ", max_bytes, " bytes, got ", value.size()));
  }
  return absl::OkStatus();
}

absl::Status CheckId(const std::string& field, const std::string& id) {
  return CheckRequired(field, id, 128);
}

absl::Status CheckLeaseToken(const std::string& token) {
  return CheckRequired("lease_token", token, 128);
}

absl::Status CheckRelativePath(const std::string& field, const std::string& path) {
  RETURN_IF_ERROR(CheckRequired(field, path, 1024));
  if (path.front() == '/' || path.find('\\') != std::string::npos ||
      path.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(field, " '", path, "' must be relative"));
  }
  size_t start = 0;
  while (start <= path.size()) {
    const size_t end = std::min(path.find('/', start), path.size());
    const std::string segment = path.substr(start, end - start);
    if (segment.empty() || segment == "." || segment == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " '", path, "' has an empty, '.' or '..' segment"));
    }
    start = end + 1;
  }
  return absl::OkStatus();
}

absl::Status CheckFileName(const std::string& field, const std::string& name) {
  RETURN_IF_ERROR(CheckRequired(field, name, 255));
  if (name == "." || name == ".." ||
      name.find_first_of(std::string("/\\\0", 3)) != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " '", name, "' must be a plain file name (no '/', '\\\\', NUL, '.' or '..')"));
  }
  return absl::OkStatus();
}

absl::Status CheckLabels(const std::string& field,
                         const std::map<std::string, std::string>& labels) {
  constexpr size_t kMaxLabels = 64;
  constexpr size_t kMaxLength = 63;
  if (labels.size() > kMaxLabels) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " has ", labels.size(), " labels, more than ", kMaxLabels));
  }
  const auto allowed = [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
  };
  for (const auto& [key, value] : labels) {
    if (key.empty() || key.size() > kMaxLength || key[0] < 'a' || key[0] > 'z' ||
        !std::all_of(key.begin(), key.end(), allowed)) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, " key '", key.substr(0, 80),
          "' must be 1..63 lower-case letters, digits, '_' or '-', starting with a letter"));
    }
    if (value.size() > kMaxLength || !std::all_of(value.begin(), value.end(), allowed)) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, "['", key, "'] value '", value.substr(0, 80),
                       "' must be 0..63 lower-case letters, digits, '_' or '-'"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckRequestId(const std::string& field, const std::string& request_id) {
  if (request_id.size() > 255) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must be at most 255 bytes, got ", request_id.size()));
  }
  for (char c : request_id) {
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " must be printable ASCII without spaces"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckHostPort(const std::string& field, const std::string& address) {
  RETURN_IF_ERROR(CheckRequired(field, address, 255));
  const auto invalid = [&](const std::string& why) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " '", address, "' is not host:port (", why, ")"));
  };
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) return invalid("no host or no port");
  std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  const bool bracketed = host.size() > 2 && host.front() == '[' && host.back() == ']';
  if (bracketed) host = host.substr(1, host.size() - 2);
  for (char ch : host) {
    const bool ok = std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '-' ||
                    ch == '_' || (bracketed && ch == ':');
    if (!ok) return invalid("the host has a character other than letters, digits, '.', '-', '_'");
  }
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char ch) { return ch >= '0' && ch <= '9'; }) ||
      std::stoi(port) < 1 || std::stoi(port) > 65535) {
    return invalid("the port must be 1..65535");
  }
  return absl::OkStatus();
}

}  // namespace dreambooth::server
