// Checks of request fields shared by the gRPC services and their reactors; each returns
// INVALID_ARGUMENT naming `field`.
#ifndef DREAMBOOTH_SERVER_REQUEST_CHECKS_H_
#define DREAMBOOTH_SERVER_REQUEST_CHECKS_H_

#include <cstddef>
#include <map>
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
// Labels (AIP-style): at most 64; keys 1..63 bytes of lower-case letters, digits, '_' and '-'
// starting with a letter; values 0..63 bytes of the same characters.
absl::Status CheckLabels(const std::string& field,
                         const std::map<std::string, std::string>& labels);
// An idempotency key: "" or 1..255 printable ASCII characters without spaces.
absl::Status CheckRequestId(const std::string& field, const std::string& request_id);
// "host:port" (IPv6 hosts in brackets): at most 255 bytes, host letters, digits, '.', '-', ':'
// (in brackets) or '_', port 1..65535.
absl::Status CheckHostPort(const std::string& field, const std::string& address);

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_REQUEST_CHECKS_H_
