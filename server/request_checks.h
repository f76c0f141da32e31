// Checks of request fields shared by the gRPC services and their reactors; each returns
// INVALID_ARGUMENT naming `field`.
#ifndef DREAMBOOTH_SERVER_REQUEST_CHECKS_H_
#define DREAMBOOTH_SERVER_REQUEST_CHECKS_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"

namespace dreambooth::server {

// Non-empty and at most `max_bytes` long.
absl::Status CheckRequired(const std::string& field, const std::string& value, size_t max_bytes);
// A resource id (job, image set, checkpoint): non-empty, at most 128 bytes.
absl::Status CheckId(const std::string& field, const std::string& id);
// A lease token: non-empty, at most 128 bytes.
absl::Status CheckLeaseToken(const std::string& token);
// A relative path inside a checkpoint: no leading '/', no '\\' or NUL, no empty, '.' or '..'
// segment, at most 1024 bytes.
absl::Status CheckRelativePath(const std::string& field, const std::string& path);
// A plain file name: 1..255 bytes, no '/', '\\' or NUL, not '.' or '..'.
absl::Status CheckFileName(const std::string& field, const std::string& name);
// "host:port" (IPv6 hosts in brackets): at most 255 bytes, host letters, digits, '.', '-', ':'
// (in brackets) or '_', port 1..65535.
absl::Status CheckHostPort(const std::string& field, const std::string& address);

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_REQUEST_CHECKS_H_
