// The internal dreambooth.v1.WorkerGateway service used by dreambooth-worker processes: leases,
// heartbeats, events, blobs, checkpoints, sample outputs and the shared cache index. Every write
// is fenced by the caller's lease token (see worker_gateway.proto). Served on its own listener;
// only worker credentials may call it (auth.h). Thread-safe.
#ifndef DREAMBOOTH_SERVER_WORKER_GATEWAY_SERVICE_H_
#define DREAMBOOTH_SERVER_WORKER_GATEWAY_SERVICE_H_

#include <memory>

#include "common/status_macros.h"
#include "dreambooth/v1/worker_gateway.grpc.pb.h"
#include "server/auth.h"
#include "server/lease_waiters.h"
#include "server/request_decoding.h"
#include "server/service_core.h"

namespace dreambooth::server {

class WorkerGatewayService final : public v1::WorkerGateway::CallbackService {
 public:
  // `core` and `auth` must outlive the service.
  WorkerGatewayService(ServiceCore* core, const Authenticator* auth);

  // Finishes parked long-poll LeaseTask calls (empty) and parks no more; call before shutting
  // the gRPC server down.
  void StopLongPolls() { waiters_->Close(); }
  // Retries parked long-poll LeaseTask calls now (a task may have become available).
  void WakeLongPolls() { waiters_->Wake(); }

  grpc::ServerUnaryReactor* LeaseTask(grpc::CallbackServerContext* context,
                                      const v1::LeaseTaskRequest* request,
                                      v1::LeaseTaskResponse* response) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* context,
                                      const v1::HeartbeatRequest* request,
                                      v1::HeartbeatResponse* response) override;
  grpc::ServerUnaryReactor* ReportEvents(grpc::CallbackServerContext* context,
                                         const v1::ReportEventsRequest* request,
                                         v1::ReportEventsResponse* response) override;
  grpc::ServerWriteReactor<v1::ReadBlobResponse>* ReadBlob(
      grpc::CallbackServerContext* context, const v1::ReadBlobRequest* request) override;
  grpc::ServerUnaryReactor* CommitCheckpoint(grpc::CallbackServerContext* context,
                                             const v1::CommitCheckpointRequest* request,
                                             v1::CommitCheckpointResponse* response) override;
  grpc::ServerUnaryReactor* CompleteTask(grpc::CallbackServerContext* context,
                                         const v1::CompleteTaskRequest* request,
                                         v1::CompleteTaskResponse* response) override;
  grpc::ServerUnaryReactor* FailTask(grpc::CallbackServerContext* context,
                                     const v1::FailTaskRequest* request,
                                     v1::FailTaskResponse* response) override;
  grpc::ServerUnaryReactor* ReleaseTask(grpc::CallbackServerContext* context,
                                        const v1::ReleaseTaskRequest* request,
                                        v1::ReleaseTaskResponse* response) override;
  grpc::ServerUnaryReactor* ReportSampleOutput(grpc::CallbackServerContext* context,
                                               const v1::ReportSampleOutputRequest* request,
                                               v1::ReportSampleOutputResponse* response) override;
  grpc::ServerUnaryReactor* GetCacheEntry(grpc::CallbackServerContext* context,
                                          const v1::GetCacheEntryRequest* request,
                                          v1::GetCacheEntryResponse* response) override;
  grpc::ServerUnaryReactor* PutCacheEntry(grpc::CallbackServerContext* context,
                                          const v1::PutCacheEntryRequest* request,
                                          v1::PutCacheEntryResponse* response) override;

 private:
  // WriteBlob, whose handler hands over the messages unparsed (a message that does not parse
  // fails the call).
  grpc::ServerReadReactor<grpc::ByteBuffer>* WriteBlobRaw(grpc::CallbackServerContext* context,
                                                          v1::WriteBlobResponse* response);
  // One lease attempt; true when `response` holds a task.
  absl::StatusOr<bool> TryLease(const v1::LeaseTaskRequest& request,
                                v1::LeaseTaskResponse* response);

  // OK for a worker credential.
  // The caller's credentials, then whether the request parsed (RequestDecodeError).
  absl::Status Authenticate(grpc::CallbackServerContext* context) const {
    RETURN_IF_ERROR(auth_->Authenticate(*context, Listener::kWorker).status());
    return RequestDecodeError();
  }

  ServiceCore* const core_;
  const Authenticator* const auth_;
  std::unique_ptr<LeaseWaiters> waiters_;
};

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_WORKER_GATEWAY_SERVICE_H_
