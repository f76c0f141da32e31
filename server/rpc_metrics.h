// A gRPC server interceptor that records every call's method, status code and duration in
// Metrics (dreambooth_rpc_duration_seconds) and, with the access log on, logs one line per call
// ("rpc <method> <code> <ms> ms peer <peer>") at info level.
#ifndef DREAMBOOTH_SERVER_RPC_METRICS_H_
#define DREAMBOOTH_SERVER_RPC_METRICS_H_

#include <grpcpp/support/server_interceptor.h>

#include <memory>

#include "server/metrics.h"

namespace dreambooth::server {

// For ServerBuilder::experimental().SetInterceptorCreators. `metrics` (may be null: none) must
// outlive the server.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewRpcMetricsFactory(
    Metrics* metrics, bool access_log);

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_RPC_METRICS_H_
