// Who is calling: API keys (bearer tokens) checked against the key store, per listener. The public
// listener accepts tenant and admin keys, the worker listener worker keys and the daemon's own
// local-worker key. Without required keys (loopback-only deployments: the demo, tests) every
// public caller is the admin of the default tenant and every worker caller a worker.
#ifndef DREAMBOOTH_SERVER_AUTH_H_
#define DREAMBOOTH_SERVER_AUTH_H_

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/status/statusor.h"
#include "server/caller.h"
#include "storage/key_store.h"
#include "storage/records.h"

namespace dreambooth::server {

enum class Listener { kPublic, kWorker };

class Authenticator {
 public:
  // `keys` must outlive the authenticator. `local_worker_key`, when not empty, is accepted on the
  // worker listener (the daemon hands it to its --local-workers).
  Authenticator(bool require_keys, storage::KeyStore* keys, std::string local_worker_key)
      : require_keys_(require_keys), keys_(keys), local_worker_key_(std::move(local_worker_key)) {}

  // UNAUTHENTICATED without a valid key (when keys are required); PERMISSION_DENIED for a key
  // of the wrong kind for `listener` (a worker key on the public API, a tenant key on the
  // worker service).
  absl::StatusOr<Caller> Authenticate(const grpc::ServerContextBase& context,
                                      Listener listener) const;

 private:
  const bool require_keys_;
  storage::KeyStore* const keys_;
  const std::string local_worker_key_;
};

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_AUTH_H_
