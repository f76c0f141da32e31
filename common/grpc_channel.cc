#include "common/grpc_channel.h"

#include <grpcpp/support/client_interceptor.h>

#include <cstdlib>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/file_io.h"
#include "common/status_macros.h"

namespace dreambooth {
namespace {

// Adds the bearer header to each call's initial metadata.
class BearerInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit BearerInterceptor(const std::string* value) : value_(value) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({kAuthorizationHeader, *value_});
    }
    methods->Proceed();
  }

 private:
  const std::string* const value_;  // owned by the factory, which the channel keeps
};

class BearerInterceptorFactory : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerInterceptorFactory(std::string key) : value_(absl::StrCat(kBearerPrefix, key)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new BearerInterceptor(&value_);
  }

 private:
  const std::string value_;
};

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& target,
                                                           const ChannelSecurity& security,
                                                           const grpc::ChannelArguments& args) {
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (!security.ca_cert_file.empty()) {
    grpc::SslCredentialsOptions ssl;
    absl::StatusOr<std::string> pem = ReadFileToString(security.ca_cert_file);
    if (!pem.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot read the CA bundle ", security.ca_cert_file, ": ", pem.status().message()));
    }
    ssl.pem_root_certs = *std::move(pem);
    credentials = grpc::SslCredentials(ssl);
  } else if (security.tls) {
    credentials = grpc::SslCredentials(grpc::SslCredentialsOptions());
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  if (security.api_key.empty()) return grpc::CreateCustomChannel(target, credentials, args);
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<BearerInterceptorFactory>(security.api_key));
  return grpc::experimental::CreateCustomChannelWithInterceptors(target, credentials, args,
                                                                 std::move(interceptors));
}

absl::StatusOr<std::string> ResolveApiKey(const std::string& flag_value, const char* env_name) {
  std::string value = flag_value;
  if (value.empty()) {
    const char* env = std::getenv(env_name);
    if (env != nullptr) value = env;
  }
  if (!value.empty() && value[0] == '@') {
    absl::StatusOr<std::string> contents = ReadFileToString(value.substr(1));
    if (!contents.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot read the API key file ", value.substr(1), ": ", contents.status().message()));
    }
    value = *std::move(contents);
  }
  return std::string(absl::StripAsciiWhitespace(value));
}

}  // namespace dreambooth
