// The public dreambooth.v1.DreamBooth service: a thin adapter (authenticate, parse, call the
// ServiceCore, map the status) on gRPC's callback API. Every call acts as its caller's tenant.
// Thread-safe.
#ifndef DREAMBOOTH_SERVER_DREAMBOOTH_SERVICE_H_
#define DREAMBOOTH_SERVER_DREAMBOOTH_SERVICE_H_

#include "dreambooth/v1/service.grpc.pb.h"
#include "server/auth.h"
#include "server/service_core.h"

namespace dreambooth::server {

class DreamBoothService final : public v1::DreamBooth::CallbackService {
 public:
  // `core` and `auth` must outlive the service. A unary or server-streaming request that does
  // not parse gets INVALID_ARGUMENT naming the problem (server/request_decoding.h).
  DreamBoothService(ServiceCore* core, const Authenticator* auth);

  grpc::ServerUnaryReactor* GetImageSet(grpc::CallbackServerContext* context,
                                        const v1::GetImageSetRequest* request,
                                        v1::ImageSet* response) override;
  grpc::ServerUnaryReactor* ListImageSets(grpc::CallbackServerContext* context,
                                          const v1::ListImageSetsRequest* request,
                                          v1::ListImageSetsResponse* response) override;
  grpc::ServerUnaryReactor* DeleteImageSet(grpc::CallbackServerContext* context,
                                           const v1::DeleteImageSetRequest* request,
                                           v1::DeleteImageSetResponse* response) override;
  grpc::ServerUnaryReactor* CreateJob(grpc::CallbackServerContext* context,
                                      const v1::CreateJobRequest* request,
                                      v1::Job* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const v1::GetJobRequest* request, v1::Job* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context,
                                     const v1::ListJobsRequest* request,
                                     v1::ListJobsResponse* response) override;
  grpc::ServerUnaryReactor* DeleteJob(grpc::CallbackServerContext* context,
                                      const v1::DeleteJobRequest* request,
                                      v1::DeleteJobResponse* response) override;
  grpc::ServerUnaryReactor* DeleteCheckpoint(grpc::CallbackServerContext* context,
                                             const v1::DeleteCheckpointRequest* request,
                                             v1::DeleteCheckpointResponse* response) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* context,
                                      const v1::CancelJobRequest* request,
                                      v1::Job* response) override;
  grpc::ServerWriteReactor<v1::JobEvent>* WatchJob(grpc::CallbackServerContext* context,
                                                   const v1::WatchJobRequest* request) override;
  grpc::ServerUnaryReactor* ListCheckpoints(grpc::CallbackServerContext* context,
                                            const v1::ListCheckpointsRequest* request,
                                            v1::ListCheckpointsResponse* response) override;
  grpc::ServerUnaryReactor* GetCheckpoint(grpc::CallbackServerContext* context,
                                          const v1::GetCheckpointRequest* request,
                                          v1::Checkpoint* response) override;
  grpc::ServerUnaryReactor* GetValidationImage(grpc::CallbackServerContext* context,
                                               const v1::GetValidationImageRequest* request,
                                               v1::ValidationImage* response) override;
  grpc::ServerUnaryReactor* ListBaseModels(grpc::CallbackServerContext* context,
                                           const v1::ListBaseModelsRequest* request,
                                           v1::ListBaseModelsResponse* response) override;
  grpc::ServerUnaryReactor* ListWebhookDeliveries(
      grpc::CallbackServerContext* context, const v1::ListWebhookDeliveriesRequest* request,
      v1::ListWebhookDeliveriesResponse* response) override;
  grpc::ServerWriteReactor<v1::DownloadCheckpointResponse>* DownloadCheckpoint(
      grpc::CallbackServerContext* context, const v1::DownloadCheckpointRequest* request) override;
  grpc::ServerWriteReactor<v1::SampleResponse>* Sample(grpc::CallbackServerContext* context,
                                                       const v1::SampleRequest* request) override;

 private:
  // UploadImages, whose handler hands over the messages unparsed (see NewUploadReactor).
  grpc::ServerReadReactor<grpc::ByteBuffer>* UploadImagesRaw(grpc::CallbackServerContext* context,
                                                             v1::UploadImagesResponse* response);
  // The caller; then the request's parse error, if it did not parse (RequestDecodeError).
  absl::StatusOr<Caller> Authenticate(grpc::CallbackServerContext* context) const;

  ServiceCore* const core_;
  const Authenticator* const auth_;
};

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_DREAMBOOTH_SERVICE_H_
