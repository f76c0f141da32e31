// A plain HTTP(S) POST client (libcurl) for webhook deliveries. Thread-safe.
#ifndef DREAMBOOTH_SERVER_HTTP_POST_H_
#define DREAMBOOTH_SERVER_HTTP_POST_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace dreambooth::server {

struct HttpPostRequest {
  std::string url;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // name, value
  int64_t timeout_ms = 10'000;                               // connect + transfer
};

// POSTs `request` without following redirects and returns the answer's HTTP status (any
// status, 3xx included). UNAVAILABLE naming the URL and libcurl's reason when no answer came
// (DNS, refused connection, TLS, timeout). The answer's body is read and dropped (at most 64 KiB).
absl::StatusOr<int> HttpPost(const HttpPostRequest& request);

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_HTTP_POST_H_
