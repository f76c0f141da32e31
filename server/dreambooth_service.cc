#include "server/dreambooth_service.h"

#include <google/protobuf/descriptor.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/convert.h"
#include "server/list_filter.h"
#include "server/reactors.h"
#include "server/request_checks.h"
#include "server/request_decoding.h"

namespace dreambooth::server {
namespace {

constexpr int kDefaultPageSize = 50;
constexpr int kDefaultCheckpointPageSize = 100;
constexpr int kDefaultWebhookDeliveryPageSize = 100;
constexpr int kMaxPageSize = 1000;

// A ListImageSets page ends before the set that would take it past this many images: at most
// ~4.4 KB each (a 255-byte name, a 1000-character caption), so a page stays far below the
// 16 MiB message limit however large the sets are.
constexpr int kMaxImagesPerListPage = 2000;

// AIP-158: 0 => default, above max => max, negative => INVALID_ARGUMENT.
absl::StatusOr<int> PageSize(int requested, int default_size = kDefaultPageSize) {
  if (requested < 0) {
    return absl::InvalidArgumentError(absl::StrCat("page_size must be >= 0, got ", requested));
  }
  if (requested == 0) return default_size;
  return std::min(requested, kMaxPageSize);
}

}  // namespace

DreamBoothService::DreamBoothService(ServiceCore* core, const Authenticator* auth)
    : core_(core), auth_(auth) {
  const std::string service = v1::DreamBooth::service_full_name();
  int installed = 0;
  auto install = [&](const char* name, grpc::internal::MethodHandler* handler) {
    MarkMethodCallback(MethodIndex(service, name), handler);
    ++installed;
  };
  install("GetImageSet", StrictUnaryHandler(this, &DreamBoothService::GetImageSet));
  install("ListImageSets", StrictUnaryHandler(this, &DreamBoothService::ListImageSets));
  install("DeleteImageSet", StrictUnaryHandler(this, &DreamBoothService::DeleteImageSet));
  install("CreateJob", StrictUnaryHandler(this, &DreamBoothService::CreateJob));
  install("GetJob", StrictUnaryHandler(this, &DreamBoothService::GetJob));
  install("ListJobs", StrictUnaryHandler(this, &DreamBoothService::ListJobs));
  install("CancelJob", StrictUnaryHandler(this, &DreamBoothService::CancelJob));
  install("DeleteJob", StrictUnaryHandler(this, &DreamBoothService::DeleteJob));
  install("DeleteCheckpoint", StrictUnaryHandler(this, &DreamBoothService::DeleteCheckpoint));
  install("ListCheckpoints", StrictUnaryHandler(this, &DreamBoothService::ListCheckpoints));
  install("GetCheckpoint", StrictUnaryHandler(this, &DreamBoothService::GetCheckpoint));
  install("GetValidationImage", StrictUnaryHandler(this, &DreamBoothService::GetValidationImage));
  install("ListBaseModels", StrictUnaryHandler(this, &DreamBoothService::ListBaseModels));
  install("ListWebhookDeliveries",
          StrictUnaryHandler(this, &DreamBoothService::ListWebhookDeliveries));
  install("WatchJob", StrictServerStreamingHandler(this, &DreamBoothService::WatchJob));
  install("DownloadCheckpoint",
          StrictServerStreamingHandler(this, &DreamBoothService::DownloadCheckpoint));
  install("Sample", StrictServerStreamingHandler(this, &DreamBoothService::Sample));
  install("UploadImages",
          new grpc::internal::CallbackClientStreamingHandler<grpc::ByteBuffer,
                                                             v1::UploadImagesResponse>(
              [this](grpc::CallbackServerContext* context, v1::UploadImagesResponse* response) {
                return UploadImagesRaw(context, response);
              }));
  // Every method must answer undecodable requests itself (a programming error otherwise).
  const int methods = google::protobuf::DescriptorPool::generated_pool()
                          ->FindServiceByName(service)
                          ->method_count();
  if (installed != methods) {
    spdlog::critical("DreamBoothService installs {} of its {} methods' handlers", installed,
                     methods);
    std::abort();
  }
}

absl::StatusOr<Caller> DreamBoothService::Authenticate(grpc::CallbackServerContext* context) const {
  ASSIGN_OR_RETURN(Caller caller, auth_->Authenticate(*context, Listener::kPublic));
  RETURN_IF_ERROR(RequestDecodeError());
  return caller;
}

grpc::ServerReadReactor<grpc::ByteBuffer>* DreamBoothService::UploadImagesRaw(
    grpc::CallbackServerContext* context, v1::UploadImagesResponse* response) {
  return NewUploadReactor(core_, Authenticate(context), response);
}

grpc::ServerUnaryReactor* DreamBoothService::GetImageSet(grpc::CallbackServerContext* context,
                                                         const v1::GetImageSetRequest* request,
                                                         v1::ImageSet* response) {
  return Respond(context, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(Caller caller, Authenticate(context));
    RETURN_IF_ERROR(CheckId("image_set_id", request->image_set_id()));
    ASSIGN_OR_RETURN(storage::ImageSetRecord set,
                     core_->GetImageSetFor(caller, request->image_set_id()));
    *response = ToProto(set);
    return absl::OkStatus();
  }());
}

grpc::ServerUnaryReactor* DreamBoothService::ListImageSets(grpc::CallbackServerContext* context,
                                                           const v1::ListImageSetsRequest* request,
                                                           v1::ListImageSetsResponse* response) {
  return Respond(context, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(Caller caller, Authenticate(context));
    ASSIGN_OR_RETURN(int page_size, PageSize(request->page_size()));
    // A page token is scoped to the tenant filter it was issued for.
    ASSIGN_OR_RETURN(LabelFilter filter, ParseLabelFilter(request->filter()));
    const std::string kind =
        absl::StrCat("image_sets/tenant=", caller.ListFilter(), "/filter=", request->filter());
    int64_t cursor = 0;
    if (!request->page_token().empty()) {
      ASSIGN_OR_RETURN(cursor, core_->DecodePageToken(kind, request->page_token()));
    }
    ASSIGN_OR_RETURN(
        storage::CatalogStore::ImageSetPage page,
        core_->catalog().ListImageSets(caller.ListFilter(), page_size, cursor,
                                       kMaxImagesPerListPage, filter.labels, filter.keys));
    for (const auto& set : page.sets) *response->add_image_sets() = ToProto(set);
    if (page.next_before_seq != 0) {
      response->set_next_page_token(core_->EncodePageToken(kind, page.next_before_seq));
    }
    return absl::OkStatus();
  }());
}

grpc::ServerUnaryReactor* DreamBoothService::DeleteImageSet(
    grpc::CallbackServerContext* context, const v1::DeleteImageSetRequest* request,
    v1::DeleteImageSetResponse*) {
  return Respond(context, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(Caller caller, Authenticate(context));
    RETURN_IF_ERROR(CheckId("image_set_id", request->image_set_id()));
    return core_->DeleteImageSet(caller, request->image_set_id());
  }());
}

grpc::ServerUnaryReactor* DreamBoothService::CreateJob(grpc::CallbackServerContext* context,
                                                       const v1::CreateJobRequest* request,
                                                       v1::Job* response) {
  return Respond(context, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(Caller caller, Authenticate(context));
    if (!request->has_spec()) return absl::InvalidArgumentError("spec is required");
    ASSIGN_OR_RETURN(
        storage::JobRecord job,
        core_->CreateJob(caller, request->spec(), request->request_id(),
                         storage::Labels(request->labels().begin(), request->labels().end()),
                         request->webhook()));
    ASSIGN_OR_RETURN(*response, ToProto(job));
    return absl::OkStatus();
  }());
}

grpc::ServerUnaryReactor* DreamBoothService::GetJob(grpc::CallbackServerContext* context,
                                                    const v1::GetJobRequest* request,
                                                    v1::Job* response) {
  return Respond(context, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(Caller caller, Authenticate(context));
    RETURN_IF_ERROR(CheckId("job_id", request->job_id()));
    ASSIGN_OR_RETURN(storage::JobRecord job, core_->GetJobFor(caller, request->job_id()));
    ASSIGN_OR_RETURN(*response, ToProto(job));
    return absl::OkStatus();
  }());
}

grpc::ServerUnaryReactor* DreamBoothService::ListJobs(grpc::CallbackServerContext* context,
                                                      const v1::ListJobsRequest* request,
                                                      v1::ListJobsResponse* response) {
  return Respond(context, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(Caller caller, Authenticate(context));
    ASSIGN_OR_RETURN(int page_size, PageSize(request->page_size()));
    if (!v1::JobState_IsValid(request->state())) {
      return absl::InvalidArgumentError(
          absl::StrCat("state must be a known JobState, got ", request->state()));
    }
    ASSIGN_OR_RETURN(storage::JobStore::Query query,
                     ParseJobQuery(request->filter(), request->order_by()));
    if (request->state() != v1::JOB_STATE_UNSPECIFIED) {
      // `state` and the filter's states both hold: their intersection (nothing matches an empty
      // one, so it is the unused state 0).
      const auto state = static_cast<storage::JobState>(request->state());
      const bool in_filter =
          std::find(query.states.begin(), query.states.end(), state) != query.states.end();
      query.states = {query.states.empty() || in_filter ? state : storage::JobState::kUnspecified};
    }
    // A page token is bound to the request it was issued for.
    const std::string kind =
        absl::StrCat("jobs/state=", request->state(), "/tenant=", caller.ListFilter(),
                     "/filter=", request->filter(), "/order_by=", request->order_by());
    int64_t cursor = 0;
    if (!request->page_token().empty()) {
      ASSIGN_OR_RETURN(cursor, core_->DecodePageToken(kind, request->page_token()));
    }
    ASSIGN_OR_RETURN(storage::JobStore::Page page,
                     core_->jobs().List(caller.ListFilter(), query, page_size, cursor));
    for (const auto& job : page.jobs) {
      ASSIGN_OR_RETURN(*response->add_jobs(), ToProto(job));
    }
    if (page.next_cursor != 0) {
      response->set_next_page_token(core_->EncodePageToken(kind, page.next_cursor));
    }
    return absl::OkStatus();
  }());
}

grpc::ServerUnaryReactor* DreamBoothService::CancelJob(grpc::CallbackServerContext* context,
                                                       const v1::CancelJobRequest* request,
                                                       v1::Job* response) {
  return Respond(context, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(Caller caller, Authenticate(context));
    RETURN_IF_ERROR(CheckId("job_id", request->job_id()));
    ASSIGN_OR_RETURN(storage::JobRecord job, core_->CancelJob(caller, request->job_id()));
    ASSIGN_OR_RETURN(*response, ToProto(job));
    return absl::OkStatus();
  }());
}

grpc::ServerUnaryReactor* DreamBoothService::DeleteJob(grpc::CallbackServerContext* context,
                                                       const v1::DeleteJobRequest* request,
                                                       v1::DeleteJobResponse*) {
  return Respond(context, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(Caller caller, Authenticate(context));
    RETURN_IF_ERROR(CheckId("job_id", request->job_id()));
    return core_->DeleteJob(caller, request->job_id());
  }());
}

grpc::ServerUnaryReactor* DreamBoothService::DeleteCheckpoint(
    grpc::CallbackServerContext* context, const v1::DeleteCheckpointRequest* request,
    v1::DeleteCheckpointResponse*) {
  return Respond(context, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(Caller caller, Authenticate(context));
    RETURN_IF_ERROR(CheckId("checkpoint_id", request->checkpoint_id()));
    return core_->DeleteCheckpoint(caller, request->checkpoint_id());
  }());
}

grpc::ServerWriteReactor<v1::JobEvent>* DreamBoothService::WatchJob(
    grpc::CallbackServerContext* context, const v1::WatchJobRequest* request) {
  return NewWatchReactor(core_, Authenticate(context), *request);
}

grpc::ServerUnaryReactor* DreamBoothService::ListCheckpoints(
    grpc::CallbackServerContext* context, const v1::ListCheckpointsRequest* request,
    v1::ListCheckpointsResponse* response) {
  return Respond(context, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(Caller caller, Authenticate(context));
    RETURN_IF_ERROR(CheckId("job_id", request->job_id()));
    RETURN_IF_ERROR(core_->GetJobFor(caller, request->job_id()).status());
    ASSIGN_OR_RETURN(int page_size, PageSize(request->page_size(), kDefaultCheckpointPageSize));
    if (!v1::CheckpointKind_IsValid(request->kind())) {
      return absl::InvalidArgumentError(
          absl::StrCat("kind must be a known CheckpointKind, got ", request->kind()));
    }
    const std::string kind_key =
        absl::StrCat("checkpoints/job=", request->job_id(), "/kind=", request->kind());
    int64_t after_seq = 0;
    if (!request->page_token().empty()) {
      ASSIGN_OR_RETURN(after_seq, core_->DecodePageToken(kind_key, request->page_token()));
    }
    ASSIGN_OR_RETURN(std::vector<storage::CheckpointRecord> ckpts,
                     core_->jobs().ListCheckpoints(request->job_id()));
    for (const auto& c : ckpts) {
      if (c.seq <= after_seq) continue;
      if (request->kind() != v1::CHECKPOINT_KIND_UNSPECIFIED &&
          static_cast<int>(c.kind) != request->kind()) {
        continue;
      }
      if (response->checkpoints_size() == page_size) {
        response->set_next_page_token(core_->EncodePageToken(kind_key, after_seq));
        break;
      }
      *response->add_checkpoints() = ToProto(c);
      after_seq = c.seq;
    }
    return absl::OkStatus();
  }());
}

grpc::ServerUnaryReactor* DreamBoothService::GetCheckpoint(grpc::CallbackServerContext* context,
                                                           const v1::GetCheckpointRequest* request,
                                                           v1::Checkpoint* response) {
  return Respond(context, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(Caller caller, Authenticate(context));
    RETURN_IF_ERROR(CheckId("checkpoint_id", request->checkpoint_id()));
    ASSIGN_OR_RETURN(storage::CheckpointRecord ckpt,
                     core_->GetCheckpointFor(caller, request->checkpoint_id()));
    *response = ToProto(ckpt);
    return absl::OkStatus();
  }());
}

grpc::ServerUnaryReactor* DreamBoothService::GetValidationImage(
    grpc::CallbackServerContext* context, const v1::GetValidationImageRequest* request,
    v1::ValidationImage* response) {
  return Respond(context, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(Caller caller, Authenticate(context));
    RETURN_IF_ERROR(CheckId("job_id", request->job_id()));
    if (request->sequence() < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence must be >= 1, got ", request->sequence()));
    }
    ASSIGN_OR_RETURN(*response,
                     core_->GetValidationImage(caller, request->job_id(), request->sequence()));
    return absl::OkStatus();
  }());
}

grpc::ServerUnaryReactor* DreamBoothService::ListWebhookDeliveries(
    grpc::CallbackServerContext* context, const v1::ListWebhookDeliveriesRequest* request,
    v1::ListWebhookDeliveriesResponse* response) {
  return Respond(context, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(Caller caller, Authenticate(context));
    RETURN_IF_ERROR(CheckId("job_id", request->job_id()));
    RETURN_IF_ERROR(core_->GetJobFor(caller, request->job_id()).status());
    ASSIGN_OR_RETURN(int page_size,
                     PageSize(request->page_size(), kDefaultWebhookDeliveryPageSize));
    const std::string kind = absl::StrCat("webhook_deliveries/job=", request->job_id());
    int64_t cursor = 0;
    if (!request->page_token().empty()) {
      ASSIGN_OR_RETURN(cursor, core_->DecodePageToken(kind, request->page_token()));
    }
    ASSIGN_OR_RETURN(storage::WebhookStore::Page page,
                     core_->webhooks().List(request->job_id(), page_size, cursor));
    for (const auto& d : page.deliveries) *response->add_deliveries() = ToProto(d);
    if (page.next_cursor != 0) {
      response->set_next_page_token(core_->EncodePageToken(kind, page.next_cursor));
    }
    return absl::OkStatus();
  }());
}

grpc::ServerUnaryReactor* DreamBoothService::ListBaseModels(grpc::CallbackServerContext* context,
                                                            const v1::ListBaseModelsRequest*,
                                                            v1::ListBaseModelsResponse* response) {
  return Respond(context, [&]() -> absl::Status {
    RETURN_IF_ERROR(Authenticate(context).status());
    ASSIGN_OR_RETURN(*response, core_->ListBaseModels());
    return absl::OkStatus();
  }());
}

grpc::ServerWriteReactor<v1::DownloadCheckpointResponse>* DreamBoothService::DownloadCheckpoint(
    grpc::CallbackServerContext* context, const v1::DownloadCheckpointRequest* request) {
  return NewDownloadReactor(core_, Authenticate(context), *request);
}

grpc::ServerWriteReactor<v1::SampleResponse>* DreamBoothService::Sample(
    grpc::CallbackServerContext* context, const v1::SampleRequest* request) {
  return NewSampleReactor(core_, Authenticate(context), *request);
}

}  // namespace dreambooth::server
