// Factories for the streaming calls of the public service (gRPC callback API). Each reactor
// owns its per-call state and deletes itself when the call is done. `caller` is the call's
// identity, or the authentication error the call finishes with.
#ifndef DREAMBOOTH_SERVER_REACTORS_H_
#define DREAMBOOTH_SERVER_REACTORS_H_

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "dreambooth/v1/service.pb.h"
#include "server/caller.h"
#include "server/service_core.h"

namespace dreambooth::server {

// UploadImages: validates, hashes, stores and records each file; atomic per call. Reads the
// messages raw (UploadImagesRequest bytes) and parses them itself (ReadLoopReactor).
grpc::ServerReadReactor<grpc::ByteBuffer>* NewUploadReactor(ServiceCore* core,
                                                            absl::StatusOr<Caller> caller,
                                                            v1::UploadImagesResponse* response);

// WatchJob: stored events after after_sequence, then live ones; ends at a terminal state.
grpc::ServerWriteReactor<v1::JobEvent>* NewWatchReactor(ServiceCore* core,
                                                        const absl::StatusOr<Caller>& caller,
                                                        const v1::WatchJobRequest& request);

// DownloadCheckpoint: manifest, then the files' bytes from read_offset.
grpc::ServerWriteReactor<v1::DownloadCheckpointResponse>* NewDownloadReactor(
    ServiceCore* core, const absl::StatusOr<Caller>& caller,
    const v1::DownloadCheckpointRequest& request);

// Sample: queues a SAMPLE task and relays the worker's outputs.
grpc::ServerWriteReactor<v1::SampleResponse>* NewSampleReactor(ServiceCore* core,
                                                               const absl::StatusOr<Caller>& caller,
                                                               const v1::SampleRequest& request);

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_REACTORS_H_
