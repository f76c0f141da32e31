// A gRPC server interceptor that records every call's method, status code and duration in
// Metrics (dreambooth_rpc_duration_seconds).
#ifndef DREAMBOOTH_SERVER_RPC_METRICS_H_
#define DREAMBOOTH_SERVER_RPC_METRICS_H_

#include <grpcpp/support/server_interceptor.h>

#include <memory>

#include "server/metrics.h"

namespace dreambooth::server {

// For ServerBuilder::experimental().SetInterceptorCreators. `metrics` must outlive the server.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewRpcMetricsFactory(
    Metrics* metrics);

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_RPC_METRICS_H_
