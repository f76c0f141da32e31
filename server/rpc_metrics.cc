#include "server/rpc_metrics.h"

#include <grpcpp/server_context.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <string>

namespace dreambooth::server {
namespace {

using grpc::experimental::InterceptionHookPoints;

class RpcMetricsInterceptor : public grpc::experimental::Interceptor {
 public:
  RpcMetricsInterceptor(Metrics* metrics, bool access_log, std::string method, std::string peer)
      : metrics_(metrics),
        access_log_(access_log),
        method_(std::move(method)),
        peer_(std::move(peer)),
        start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      const int code = static_cast<int>(methods->GetSendStatus().error_code());
      if (metrics_ != nullptr) metrics_->ObserveRpc(method_, code, seconds);
      if (access_log_) {
        spdlog::info("rpc {} {} {:.1f} ms peer {}", method_, RpcCodeName(code), seconds * 1e3,
                     peer_);
      }
    }
    methods->Proceed();
  }

 private:
  Metrics* const metrics_;
  const bool access_log_;
  const std::string method_;
  const std::string peer_;
  const std::chrono::steady_clock::time_point start_;
};

class RpcMetricsFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  RpcMetricsFactory(Metrics* metrics, bool access_log)
      : metrics_(metrics), access_log_(access_log) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    std::string peer;
    if (access_log_ && info->server_context() != nullptr) peer = info->server_context()->peer();
    return new RpcMetricsInterceptor(metrics_, access_log_,
                                     info->method() ? info->method() : "unknown", peer);
  }

 private:
  Metrics* const metrics_;
  const bool access_log_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewRpcMetricsFactory(
    Metrics* metrics, bool access_log) {
  return std::make_unique<RpcMetricsFactory>(metrics, access_log);
}

}  // namespace dreambooth::server
