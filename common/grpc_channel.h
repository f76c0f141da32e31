// Client channels to dreamboothd with its transport security: TLS (a CA bundle, or the system
// roots) or plaintext, and an API key sent as "authorization: Bearer <key>" on every call.
#ifndef DREAMBOOTH_COMMON_GRPC_CHANNEL_H_
#define DREAMBOOTH_COMMON_GRPC_CHANNEL_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace dreambooth {

struct ChannelSecurity {
  // PEM file of the CA(s) that signed the server's certificate; non-empty => TLS.
  std::string ca_cert_file;
  // TLS with the system's root CAs (ignored when ca_cert_file is set).
  bool tls = false;
  // Sent on every call when non-empty (an API key, or a worker key).
  std::string api_key;
};

// The metadata key and value prefix of a bearer credential.
inline constexpr char kAuthorizationHeader[] = "authorization";
inline constexpr char kBearerPrefix[] = "Bearer ";

// A channel to `target` with `security` and `args`. INVALID_ARGUMENT when the CA file cannot be
// read.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& target,
                                                           const ChannelSecurity& security,
                                                           const grpc::ChannelArguments& args);

// The API key from `flag_value`, else from the environment variable `env_name` ("" when neither
// is set). A value starting with '@' names a file holding the key (trailing whitespace dropped).
absl::StatusOr<std::string> ResolveApiKey(const std::string& flag_value, const char* env_name);

}  // namespace dreambooth

#endif  // DREAMBOOTH_COMMON_GRPC_CHANNEL_H_
