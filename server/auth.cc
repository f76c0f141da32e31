#include "server/auth.h"

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/grpc_channel.h"
#include "common/status_macros.h"

namespace dreambooth::server {
namespace {

// The bearer credential of the call; "" when there is none.
std::string BearerToken(const grpc::ServerContextBase& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(kAuthorizationHeader);
  if (it == metadata.end()) return "";
  const std::string value(it->second.data(), it->second.size());
  const std::string prefix = kBearerPrefix;
  if (value.compare(0, prefix.size(), prefix) != 0) return "";
  return value.substr(prefix.size());
}

}  // namespace

absl::StatusOr<Caller> Authenticator::Authenticate(const grpc::ServerContextBase& context,
                                                   Listener listener) const {
  const std::string token = BearerToken(context);
  if (listener == Listener::kWorker && !local_worker_key_.empty() &&
      ConstantTimeEquals(token, local_worker_key_)) {
    return Caller{storage::kDefaultTenant, /*admin=*/false};
  }
  if (!require_keys_) {
    return Caller{storage::kDefaultTenant, /*admin=*/listener == Listener::kPublic};
  }
  if (token.empty()) {
    return absl::UnauthenticatedError(
        "this server requires an API key: send the metadata 'authorization: Bearer <key>' "
        "(dbctl --api-key, DREAMBOOTH_API_KEY)");
  }
  ASSIGN_OR_RETURN(storage::ApiKeyRecord key, keys_->Verify(token));
  const bool worker_key = key.role == storage::KeyRole::kWorker;
  if (listener == Listener::kPublic && worker_key) {
    return absl::PermissionDeniedError(
        absl::StrCat("API key ", key.id, " is a worker key: it can call only the worker service"));
  }
  if (listener == Listener::kWorker && !worker_key) {
    return absl::PermissionDeniedError(
        absl::StrCat("API key ", key.id, " is a ", storage::KeyRoleName(key.role),
                     " key: only worker keys can call the worker service"));
  }
  return Caller{key.tenant, key.role == storage::KeyRole::kAdmin};
}

}  // namespace dreambooth::server
