// Requests that do not parse: INVALID_ARGUMENT naming the problem, not gRPC's bare UNIMPLEMENTED.
//
// gRPC's callback handlers parse a unary or server-streaming request before the service method
// runs; when that fails (a proto3 string field holding invalid UTF-8, a malformed message) they
// end the call UNIMPLEMENTED with an empty message. The handlers made here delegate to gRPC's,
// but on a failed parse run the method anyway, with an empty request, while RequestDecodeError()
// returns INVALID_ARGUMENT naming the problem; the method's first check (authentication) returns
// that error, so nothing reads the empty request. A service installs them in its constructor
// with grpc::Service::MarkMethodCallback(MethodIndex(...), StrictUnaryHandler(...)).
//
// Client-streaming messages are parsed inside gRPC's reader and are not covered (see
// docs/api.md).
#ifndef DREAMBOOTH_SERVER_REQUEST_DECODING_H_
#define DREAMBOOTH_SERVER_REQUEST_DECODING_H_

#include <google/protobuf/descriptor.h>
#include <grpc/byte_buffer.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/message_allocator.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace dreambooth::server {

// INVALID_ARGUMENT saying why the request of the call whose service method is running on this
// thread did not parse; OK when it did. Valid only during the service method itself.
absl::Status RequestDecodeError();

// Why `bytes` do not parse as a `type`: "field 'spec.instance_prompt' is not valid UTF-8 (...)"
// for the first string field holding invalid UTF-8, else "malformed protobuf wire format".
std::string DescribeUndecodable(const google::protobuf::Descriptor& type, std::string_view bytes);

// The index of method `name` of service `service_full_name` (e.g. "dreambooth.v1.DreamBooth"):
// the generated code's method index. Aborts when there is no such method (a programming error).
int MethodIndex(const std::string& service_full_name, const std::string& name);

namespace internal {

// Makes RequestDecodeError() return `error` on this thread until destroyed.
class DecodeErrorScope {
 public:
  explicit DecodeErrorScope(const absl::Status* error);
  ~DecodeErrorScope();
  DecodeErrorScope(const DecodeErrorScope&) = delete;
  DecodeErrorScope& operator=(const DecodeErrorScope&) = delete;

 private:
  const absl::Status* previous_;
};

// The bytes of `buffer` (null: none).
std::string ReadAll(grpc_byte_buffer* buffer);

// Wraps gRPC's handler `inner` for requests of type Request (responses Response; `kUnary`: a
// unary method, else server streaming).
template <typename Request, typename Response, bool kUnary>
class StrictDecodingHandler : public grpc::internal::MethodHandler {
 public:
  explicit StrictDecodingHandler(grpc::internal::MethodHandler* inner) : inner_(inner) {}

  void* Deserialize(grpc_call* call, grpc_byte_buffer* req, grpc::Status* status,
                    void** handler_data) override {
    // gRPC's Deserialize consumes `req`; keep a reference to its slices to explain a failure.
    grpc_byte_buffer* copy = req != nullptr ? grpc_byte_buffer_copy(req) : nullptr;
    void* request = inner_->Deserialize(call, req, status, handler_data);
    if (!status->ok()) {
      *status = grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          "request is not a valid " + Request::descriptor()->full_name() + ": " +
              DescribeUndecodable(*Request::descriptor(), copy != nullptr ? ReadAll(copy) : ""));
      if constexpr (kUnary) {
        // The unary handler reads the request from its message holder: empty it.
        auto* holder = static_cast<grpc::MessageHolder<Request, Response>*>(*handler_data);
        holder->request()->Clear();
        request = holder->request();
      } else {
        // gRPC destroyed its request; the call's writer destroys this one when the call ends.
        request = new (grpc::g_core_codegen_interface->grpc_call_arena_alloc(call, sizeof(Request)))
            Request();
      }
    }
    if (copy != nullptr) grpc_byte_buffer_destroy(copy);
    return request;
  }

  void RunHandler(const HandlerParameter& param) override {
    if (param.status.ok()) {
      inner_->RunHandler(param);
      return;
    }
    const absl::Status error(absl::StatusCode::kInvalidArgument, param.status.error_message());
    DecodeErrorScope scope(&error);  // gRPC calls the service method before RunHandler returns
    inner_->RunHandler(HandlerParameter(param.call, param.server_context, param.request,
                                        grpc::Status::OK, param.internal_data,
                                        param.call_requester));
  }

 private:
  const std::unique_ptr<grpc::internal::MethodHandler> inner_;
};

}  // namespace internal

// A handler for unary method `method` of `service` (which must outlive it).
template <typename Service, typename Request, typename Response>
grpc::internal::MethodHandler* StrictUnaryHandler(
    Service* service, grpc::ServerUnaryReactor* (Service::*method)(grpc::CallbackServerContext*,
                                                                   const Request*, Response*)) {
  return new internal::StrictDecodingHandler<Request, Response, /*kUnary=*/true>(
      new grpc::internal::CallbackUnaryHandler<Request, Response>(
          [service, method](grpc::CallbackServerContext* context, const Request* request,
                            Response* response) {
            return (service->*method)(context, request, response);
          }));
}

// A handler for server-streaming method `method` of `service` (which must outlive it).
template <typename Service, typename Request, typename Response>
grpc::internal::MethodHandler* StrictServerStreamingHandler(
    Service* service,
    grpc::ServerWriteReactor<Response>* (Service::*method)(grpc::CallbackServerContext*,
                                                           const Request*)) {
  return new internal::StrictDecodingHandler<Request, Response, /*kUnary=*/false>(
      new grpc::internal::CallbackServerStreamingHandler<Request, Response>(
          [service, method](grpc::CallbackServerContext* context, const Request* request) {
            return (service->*method)(context, request);
          }));
}

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_REQUEST_DECODING_H_
