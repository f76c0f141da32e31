#include "server/worker_gateway_service.h"

#include <chrono>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/convert.h"
#include "server/request_checks.h"

namespace dreambooth::server {
namespace {

constexpr int kMaxWaitMs = 60'000;
constexpr int kMaxEventsPerCall = 1000;
constexpr size_t kMaxMessageBytes = 64 * 1024;

// Parses the events of a ReportEvents request.
absl::StatusOr<std::vector<storage::EventRecord>> ParseEvents(
    const v1::ReportEventsRequest& request) {
  if (request.events_size() > kMaxEventsPerCall) {
    return absl::InvalidArgumentError(absl::StrCat("events must hold at most ", kMaxEventsPerCall,
                                                   " events, got ", request.events_size()));
  }
  std::vector<storage::EventRecord> events;
  for (int i = 0; i < request.events_size(); ++i) {
    const v1::JobEvent& e = request.events(i);
    if (e.kind() != v1::EVENT_KIND_PROGRESS && e.kind() != v1::EVENT_KIND_LOG &&
        e.kind() != v1::EVENT_KIND_VALIDATION_IMAGE) {
      return absl::InvalidArgumentError(absl::StrCat(
          "events[", i, "].kind must be PROGRESS, LOG or VALIDATION_IMAGE, got ", e.kind()));
    }
    if (!v1::JobStage_IsValid(e.stage())) {
      return absl::InvalidArgumentError(absl::StrCat("events[", i, "].stage is unknown"));
    }
    if (e.message().size() > kMaxMessageBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("events[", i, "].message must be at most 64 KiB"));
    }
    storage::EventRecord r;
    r.kind = static_cast<storage::EventKind>(e.kind());
    r.stage = e.stage();
    r.step = e.step();
    r.total = e.total();
    r.loss = e.loss();
    r.learning_rate = e.learning_rate();
    r.images_per_second = e.images_per_second();
    r.eta_seconds = e.eta_seconds();
    r.message = e.message();
    events.push_back(std::move(r));
  }
  return events;
}

// Parses the files of a CommitCheckpoint request.
absl::StatusOr<std::vector<storage::CheckpointFileRecord>> ParseCheckpointFiles(
    const v1::CommitCheckpointRequest& request) {
  if (request.files().empty() || request.files_size() > 10000) {
    return absl::InvalidArgumentError("files must list 1 to 10000 files");
  }
  std::vector<storage::CheckpointFileRecord> files;
  std::set<std::string> paths;
  for (const auto& f : request.files()) {
    RETURN_IF_ERROR(CheckRelativePath("files.path", f.path()));
    if (!paths.insert(f.path()).second) {
      return absl::InvalidArgumentError(absl::StrCat("files.path '", f.path(), "' is repeated"));
    }
    files.push_back({f.path(), f.digest(), f.size_bytes()});
  }
  return files;
}

}  // namespace

absl::StatusOr<bool> WorkerGatewayService::TryLease(const v1::LeaseTaskRequest& request,
                                                    v1::LeaseTaskResponse* response) {
  ASSIGN_OR_RETURN(std::optional<v1::Task> task, core_->TryLeaseTask(request));
  if (!task.has_value()) return false;
  *response->mutable_task() = *std::move(task);
  return true;
}

WorkerGatewayService::WorkerGatewayService(ServiceCore* core, const Authenticator* auth)
    : core_(core),
      auth_(auth),
      waiters_(std::make_unique<LeaseWaiters>(
          [this](const v1::LeaseTaskRequest& request, v1::LeaseTaskResponse* response) {
            return TryLease(request, response);
          },
          core->options().max_parked_leases_per_peer)) {
  // Requests that do not parse are INVALID_ARGUMENT naming the problem (request_decoding.h);
  // WriteBlob, a client stream, parses its messages itself.
  const std::string service = v1::WorkerGateway::service_full_name();
  using S = WorkerGatewayService;
  for (const auto& [name, handler] :
       std::vector<std::pair<const char*, grpc::internal::MethodHandler*>>{
           {"LeaseTask", StrictUnaryHandler(this, &S::LeaseTask)},
           {"Heartbeat", StrictUnaryHandler(this, &S::Heartbeat)},
           {"ReportEvents", StrictUnaryHandler(this, &S::ReportEvents)},
           {"ReadBlob", StrictServerStreamingHandler(this, &S::ReadBlob)},
           {"CommitCheckpoint", StrictUnaryHandler(this, &S::CommitCheckpoint)},
           {"CompleteTask", StrictUnaryHandler(this, &S::CompleteTask)},
           {"FailTask", StrictUnaryHandler(this, &S::FailTask)},
           {"ReleaseTask", StrictUnaryHandler(this, &S::ReleaseTask)},
           {"ReportSampleOutput", StrictUnaryHandler(this, &S::ReportSampleOutput)},
           {"GetCacheEntry", StrictUnaryHandler(this, &S::GetCacheEntry)},
           {"PutCacheEntry", StrictUnaryHandler(this, &S::PutCacheEntry)},
           {"WriteBlob",
            new grpc::internal::CallbackClientStreamingHandler<grpc::ByteBuffer,
                                                               v1::WriteBlobResponse>(
                [this](grpc::CallbackServerContext*context, v1::WriteBlobResponse*response) {
                  return WriteBlobRaw(context, response);
                })},
       }) {
    MarkMethodCallback(MethodIndex(service, name), handler);
  }
}

grpc::ServerUnaryReactor* WorkerGatewayService::LeaseTask(grpc::CallbackServerContext* context,
                                                          const v1::LeaseTaskRequest* request,
                                                          v1::LeaseTaskResponse* response) {
  absl::Status status = [&]() -> absl::Status {
    RETURN_IF_ERROR(Authenticate(context));
    RETURN_IF_ERROR(CheckRequired("worker_id", request->worker_id(), 255));
    if (request->wait_ms() < 0 || request->wait_ms() > kMaxWaitMs) {
      return absl::InvalidArgumentError(
          absl::StrCat("wait_ms must be in [0, ", kMaxWaitMs, "], got ", request->wait_ms()));
    }
    if (request->base_models_size() > 100) {
      return absl::InvalidArgumentError("base_models must list at most 100 names");
    }
    for (int kind : request->kinds()) {
      if (kind != v1::TASK_KIND_TRAIN && kind != v1::TASK_KIND_SAMPLE) {
        return absl::InvalidArgumentError(absl::StrCat("kinds has an unknown TaskKind ", kind));
      }
    }
    for (const std::string& m : request->base_models()) {
      RETURN_IF_ERROR(CheckRequired("base_models", m, 128));
    }
    if (request->device_count() < 0 || request->device_count() > 1024) {
      return absl::InvalidArgumentError(
          absl::StrCat("device_count must be in [0, 1024], got ", request->device_count()));
    }
    if (request->device_memory_bytes() < 0 || request->device_free_memory_bytes() < 0) {
      return absl::InvalidArgumentError("device memory sizes must be >= 0");
    }
    if (!request->gang_address().empty()) {
      RETURN_IF_ERROR(CheckHostPort("gang_address", request->gang_address()));
    }
    if (request->device_kind().size() > 32) {
      return absl::InvalidArgumentError("device_kind must be at most 32 bytes");
    }
    return core_->RegisterWorker(*request);
  }();
  if (!status.ok()) return Respond(context, status);
  absl::StatusOr<bool> granted = TryLease(*request, response);
  if (!granted.ok() || *granted || request->wait_ms() == 0) {
    return Respond(context, granted.status());
  }
  // Nothing now: park the call instead of blocking a callback thread.
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  waiters_->Park(context, reactor, request, response,
                 std::chrono::steady_clock::now() + std::chrono::milliseconds(request->wait_ms()));
  return reactor;
}

grpc::ServerUnaryReactor* WorkerGatewayService::Heartbeat(grpc::CallbackServerContext* context,
                                                          const v1::HeartbeatRequest* request,
                                                          v1::HeartbeatResponse* response) {
  return Respond(context, [&]() -> absl::Status {
    RETURN_IF_ERROR(Authenticate(context));
    RETURN_IF_ERROR(CheckLeaseToken(request->lease_token()));
    if (!v1::JobStage_IsValid(request->stage())) {
      return absl::InvalidArgumentError(
          absl::StrCat("stage must be a known JobStage, got ", request->stage()));
    }
    ASSIGN_OR_RETURN(ServiceCore::HeartbeatResult result,
                     core_->Heartbeat(request->lease_token(), request->stage(), request->step(),
                                      request->total()));
    response->set_cancel_requested(result.cancel_requested);
    response->set_lease_expire_time_ms(result.expires_ms);
    return absl::OkStatus();
  }());
}

grpc::ServerUnaryReactor* WorkerGatewayService::ReportEvents(grpc::CallbackServerContext* context,
                                                             const v1::ReportEventsRequest* request,
                                                             v1::ReportEventsResponse* response) {
  return Respond(context, [&]() -> absl::Status {
    RETURN_IF_ERROR(Authenticate(context));
    RETURN_IF_ERROR(CheckLeaseToken(request->lease_token()));
    ASSIGN_OR_RETURN(std::vector<storage::EventRecord> events, ParseEvents(*request));
    ASSIGN_OR_RETURN(int64_t last, core_->ReportEvents(request->lease_token(), std::move(events)));
    response->set_last_sequence(last);
    return absl::OkStatus();
  }());
}

grpc::ServerUnaryReactor* WorkerGatewayService::CommitCheckpoint(
    grpc::CallbackServerContext* context, const v1::CommitCheckpointRequest* request,
    v1::CommitCheckpointResponse* response) {
  return Respond(context, [&]() -> absl::Status {
    RETURN_IF_ERROR(Authenticate(context));
    RETURN_IF_ERROR(CheckLeaseToken(request->lease_token()));
    if (request->kind() == v1::CHECKPOINT_KIND_UNSPECIFIED ||
        !v1::CheckpointKind_IsValid(request->kind())) {
      return absl::InvalidArgumentError("kind must be SAMPLEABLE, RESUME or FINAL");
    }
    if (request->step() < 0) {
      return absl::InvalidArgumentError(absl::StrCat("step must be >= 0, got ", request->step()));
    }
    ASSIGN_OR_RETURN(std::vector<storage::CheckpointFileRecord> files,
                     ParseCheckpointFiles(*request));
    ASSIGN_OR_RETURN(
        storage::CheckpointRecord ckpt,
        core_->CommitCheckpoint(request->lease_token(), request->step(),
                                static_cast<storage::CheckpointKind>(request->kind()), files));
    response->set_checkpoint_id(ckpt.id);
    return absl::OkStatus();
  }());
}

grpc::ServerUnaryReactor* WorkerGatewayService::CompleteTask(grpc::CallbackServerContext* context,
                                                             const v1::CompleteTaskRequest* request,
                                                             v1::CompleteTaskResponse* response) {
  return Respond(context, [&]() -> absl::Status {
    RETURN_IF_ERROR(Authenticate(context));
    RETURN_IF_ERROR(CheckLeaseToken(request->lease_token()));
    ASSIGN_OR_RETURN(storage::JobState state, core_->CompleteTask(request->lease_token()));
    response->set_state(static_cast<v1::JobState>(state));
    return absl::OkStatus();
  }());
}

grpc::ServerUnaryReactor* WorkerGatewayService::FailTask(grpc::CallbackServerContext* context,
                                                         const v1::FailTaskRequest* request,
                                                         v1::FailTaskResponse* response) {
  return Respond(context, [&]() -> absl::Status {
    RETURN_IF_ERROR(Authenticate(context));
    RETURN_IF_ERROR(CheckLeaseToken(request->lease_token()));
    RETURN_IF_ERROR(CheckRequired("error", request->error(), kMaxMessageBytes));
    ASSIGN_OR_RETURN(
        storage::JobState state,
        core_->FailTask(request->lease_token(), request->error(), request->retryable()));
    response->set_state(static_cast<v1::JobState>(state));
    return absl::OkStatus();
  }());
}

grpc::ServerUnaryReactor* WorkerGatewayService::ReleaseTask(grpc::CallbackServerContext* context,
                                                            const v1::ReleaseTaskRequest* request,
                                                            v1::ReleaseTaskResponse* response) {
  return Respond(context, [&]() -> absl::Status {
    RETURN_IF_ERROR(Authenticate(context));
    RETURN_IF_ERROR(CheckLeaseToken(request->lease_token()));
    if (request->reason().size() > kMaxMessageBytes) {
      return absl::InvalidArgumentError("reason must be at most 64 KiB");
    }
    const std::string reason = request->reason().empty() ? "no reason given" : request->reason();
    ASSIGN_OR_RETURN(storage::JobState state, core_->ReleaseTask(request->lease_token(), reason));
    response->set_state(static_cast<v1::JobState>(state));
    return absl::OkStatus();
  }());
}

grpc::ServerUnaryReactor* WorkerGatewayService::ReportSampleOutput(
    grpc::CallbackServerContext* context, const v1::ReportSampleOutputRequest* request,
    v1::ReportSampleOutputResponse* response) {
  return Respond(context, [&]() -> absl::Status {
    RETURN_IF_ERROR(Authenticate(context));
    RETURN_IF_ERROR(CheckLeaseToken(request->lease_token()));
    if (request->output().payload_case() == v1::SampleResponse::PAYLOAD_NOT_SET) {
      return absl::InvalidArgumentError("output must hold progress or an image");
    }
    ASSIGN_OR_RETURN(bool connected,
                     core_->ReportSampleOutput(request->lease_token(), request->output()));
    response->set_caller_connected(connected);
    return absl::OkStatus();
  }());
}

grpc::ServerUnaryReactor* WorkerGatewayService::GetCacheEntry(
    grpc::CallbackServerContext* context, const v1::GetCacheEntryRequest* request,
    v1::GetCacheEntryResponse* response) {
  return Respond(context, [&]() -> absl::Status {
    RETURN_IF_ERROR(Authenticate(context));
    RETURN_IF_ERROR(CheckRequired("key", request->key(), 1024));
    RETURN_IF_ERROR(CheckLeaseToken(request->lease_token()));
    ASSIGN_OR_RETURN(std::optional<storage::CacheEntryRecord> entry,
                     core_->GetCacheEntry(request->lease_token(), request->key()));
    if (!entry.has_value()) return absl::OkStatus();
    response->set_found(true);
    response->set_metadata_json(entry->metadata_json);
    for (const auto& item : entry->items) {
      auto* out = response->add_items();
      out->set_name(item.name);
      out->set_digest(item.digest);
      out->set_size_bytes(item.size_bytes);
    }
    return absl::OkStatus();
  }());
}

grpc::ServerUnaryReactor* WorkerGatewayService::PutCacheEntry(
    grpc::CallbackServerContext* context, const v1::PutCacheEntryRequest* request,
    v1::PutCacheEntryResponse* response) {
  return Respond(context, [&]() -> absl::Status {
    RETURN_IF_ERROR(Authenticate(context));
    RETURN_IF_ERROR(CheckRequired("key", request->key(), 1024));
    RETURN_IF_ERROR(CheckLeaseToken(request->lease_token()));
    if (request->metadata_json().size() > kMaxMessageBytes) {
      return absl::InvalidArgumentError("metadata_json must be at most 64 KiB");
    }
    std::vector<storage::CacheItemRecord> items;
    for (const auto& item : request->items()) {
      RETURN_IF_ERROR(CheckRequired("items.name", item.name(), 1024));
      items.push_back({item.name(), item.digest(), item.size_bytes()});
    }
    ASSIGN_OR_RETURN(int count, core_->PutCacheEntry(request->lease_token(), request->key(), items,
                                                     request->append(), request->metadata_json()));
    response->set_item_count(count);
    return absl::OkStatus();
  }());
}

}  // namespace dreambooth::server
