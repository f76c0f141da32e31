// Configures spdlog's default logger for dreamboothd: level and text or JSON lines on stderr.
#ifndef DREAMBOOTH_SERVER_LOGGING_H_
#define DREAMBOOTH_SERVER_LOGGING_H_

#include <string>

#include "absl/status/status.h"

namespace dreambooth::server {

// level: trace|debug|info|warn|error; format: text|json. INVALID_ARGUMENT naming the flag.
absl::Status ConfigureLogging(const std::string& level, const std::string& format);

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_LOGGING_H_
