#include "server/worker_gateway_service.h"

#include <chrono>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/status_macros.h"
#include "server/convert.h"
#include "server/sample_broker.h"

namespace dreambooth::server {
namespace {

constexpr int kMaxWaitMs = 60'000;
constexpr int kMaxEventsPerCall = 1000;
constexpr size_t kMaxMessageBytes = 64 * 1024;

grpc::ServerUnaryReactor* Respond(grpc::CallbackServerContext* context,
                                  const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpc(status));
  return reactor;
}

absl::Status CheckName(const std::string& field, const std::string& value, size_t max) {
  if (value.empty()) return absl::InvalidArgumentError(absl::StrCat(field, " is required"));
  if (value.size() > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must be at most ", max, " bytes, got ", value.size()));
  }
  return absl::OkStatus();
}

absl::Status CheckToken(const std::string& token) { return CheckName("lease_token", token, 128); }

// A checkpoint file path: relative, no "..", no empty segments, no NUL or backslash.
absl::Status CheckRelativePath(const std::string& path) {
  RETURN_IF_ERROR(CheckName("files.path", path, 1024));
  if (path.front() == '/' || path.find('\\') != std::string::npos ||
      path.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("files.path '", path, "' must be relative"));
  }
  size_t start = 0;
  while (start <= path.size()) {
    const size_t end = std::min(path.find('/', start), path.size());
    const std::string segment = path.substr(start, end - start);
    if (segment.empty() || segment == "." || segment == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("files.path '", path, "' has an empty, '.' or '..' segment"));
    }
    start = end + 1;
  }
  return absl::OkStatus();
}

absl::Status CheckBlob(Backend* backend, const std::string& field, const std::string& digest,
                       int64_t size) {
  if (!IsSha256Hex(digest)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " '", digest.substr(0, 80), "' is not a hex SHA-256"));
  }
  absl::StatusOr<int64_t> stored = backend->blobs().Size(digest);
  if (absl::IsNotFound(stored.status())) {
    return absl::FailedPreconditionError(
        absl::StrCat(field, " ", digest, " is not in the blob store; WriteBlob it first"));
  }
  if (!stored.ok()) return stored.status();
  if (*stored != size) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " ", digest, " has ", *stored, " bytes, not the declared ", size));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status WorkerGatewayService::CheckAnyLease(const std::string& token) {
  RETURN_IF_ERROR(CheckToken(token));
  if (SampleBroker::IsSampleToken(token)) {
    return backend_->samples().Check(token, backend_->NowMs());
  }
  return backend_->jobs().CheckLease(token, backend_->NowMs()).status();
}

absl::Status WorkerGatewayService::BuildTrainTask(const storage::Lease& lease, v1::Task* task) {
  const storage::JobRecord& job = lease.job;
  task->set_task_id(job.id);
  task->set_kind(v1::TASK_KIND_TRAIN);
  task->set_job_id(job.id);
  task->set_attempt(job.attempt);
  task->set_lease_token(lease.token);
  task->set_lease_expire_time_ms(lease.expires_ms);
  task->set_lease_ttl_ms(backend_->options().lease_ttl_ms);
  ASSIGN_OR_RETURN(*task->mutable_spec(), ParseStoredSpec(job.spec, job.id));
  ASSIGN_OR_RETURN(storage::ImageSetRecord instance,
                   backend_->catalog().GetImageSet(job.instance_set));
  for (const auto& img : instance.images) *task->add_instance_images() = ToProto(img);
  if (!job.regularization_set.empty()) {
    ASSIGN_OR_RETURN(storage::ImageSetRecord reg,
                     backend_->catalog().GetImageSet(job.regularization_set));
    for (const auto& img : reg.images) *task->add_regularization_images() = ToProto(img);
  }
  ASSIGN_OR_RETURN(std::optional<storage::CheckpointRecord> resume,
                   backend_->jobs().LatestCheckpoint(job.id, {storage::CheckpointKind::kResume}));
  if (resume.has_value()) *task->mutable_resume_from() = ToProto(*resume);
  return absl::OkStatus();
}

WorkerGatewayService::WorkerGatewayService(Backend* backend)
    : backend_(backend),
      waiters_(std::make_unique<LeaseWaiters>(
          [this](const v1::LeaseTaskRequest& request, v1::LeaseTaskResponse* response) {
            return TryLease(request, response);
          })) {}

absl::StatusOr<bool> WorkerGatewayService::TryLease(const v1::LeaseTaskRequest& request,
                                                    v1::LeaseTaskResponse* response) {
  bool train = request.kinds().empty();
  bool sample = request.kinds().empty();
  for (int kind : request.kinds()) {
    train |= kind == v1::TASK_KIND_TRAIN;
    sample |= kind == v1::TASK_KIND_SAMPLE;
  }
  std::vector<std::string> models = {"tiny"};
  for (const std::string& m : request.base_models()) {
    if (m != "tiny") models.push_back(m);
  }
  const int64_t ttl = backend_->options().lease_ttl_ms;
  if (sample) {
    std::optional<SampleBroker::Task> t =
        backend_->samples().Lease(request.worker_id(), models, backend_->NowMs(), ttl);
    if (t.has_value()) {
      v1::Task* task = response->mutable_task();
      task->set_task_id(t->id);
      task->set_kind(v1::TASK_KIND_SAMPLE);
      task->set_job_id(t->job_id);
      task->set_attempt(1);
      task->set_lease_token(t->token);
      task->set_lease_expire_time_ms(t->expires_ms);
      task->set_lease_ttl_ms(ttl);
      ASSIGN_OR_RETURN(*task->mutable_spec(), ParseStoredSpec(t->spec, t->job_id));
      *task->mutable_sample() = t->request;
      *task->mutable_sample_checkpoint() = t->checkpoint;
      return true;
    }
  }
  if (train) {
    ASSIGN_OR_RETURN(std::optional<storage::Lease> lease,
                     backend_->jobs().Claim(request.worker_id(), models, backend_->NowMs(), ttl));
    if (lease.has_value()) {
      backend_->hub().Notify(lease->job.id);
      RETURN_IF_ERROR(BuildTrainTask(*lease, response->mutable_task()));
      return true;
    }
  }
  return false;
}

grpc::ServerUnaryReactor* WorkerGatewayService::LeaseTask(grpc::CallbackServerContext* context,
                                                          const v1::LeaseTaskRequest* request,
                                                          v1::LeaseTaskResponse* response) {
  absl::Status status = [&]() -> absl::Status {
    RETURN_IF_ERROR(CheckName("worker_id", request->worker_id(), 255));
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
      RETURN_IF_ERROR(CheckName("base_models", m, 128));
    }
    return backend_->catalog().RememberBaseModels(
        std::vector<std::string>(request->base_models().begin(), request->base_models().end()),
        request->worker_id(), backend_->NowMs());
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
    RETURN_IF_ERROR(CheckToken(request->lease_token()));
    const int64_t now = backend_->NowMs();
    const int64_t ttl = backend_->options().lease_ttl_ms;
    if (SampleBroker::IsSampleToken(request->lease_token())) {
      ASSIGN_OR_RETURN(bool gone, backend_->samples().Heartbeat(request->lease_token(), now, ttl));
      response->set_cancel_requested(gone);
      response->set_lease_expire_time_ms(now + ttl);
      return absl::OkStatus();
    }
    if (!v1::JobStage_IsValid(request->stage())) {
      return absl::InvalidArgumentError(
          absl::StrCat("stage must be a known JobStage, got ", request->stage()));
    }
    ASSIGN_OR_RETURN(storage::JobStore::HeartbeatResult result,
                     backend_->jobs().Heartbeat(request->lease_token(), now, ttl, request->stage(),
                                                request->step(), request->total()));
    response->set_cancel_requested(result.cancel_requested);
    response->set_lease_expire_time_ms(result.expires_ms);
    return absl::OkStatus();
  }());
}

grpc::ServerUnaryReactor* WorkerGatewayService::ReportEvents(grpc::CallbackServerContext* context,
                                                             const v1::ReportEventsRequest* request,
                                                             v1::ReportEventsResponse* response) {
  return Respond(context, [&]() -> absl::Status {
    RETURN_IF_ERROR(CheckToken(request->lease_token()));
    if (request->events_size() > kMaxEventsPerCall) {
      return absl::InvalidArgumentError(absl::StrCat("events must hold at most ", kMaxEventsPerCall,
                                                     " events, got ", request->events_size()));
    }
    std::vector<storage::EventRecord> events;
    for (int i = 0; i < request->events_size(); ++i) {
      const v1::JobEvent& e = request->events(i);
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
    ASSIGN_OR_RETURN(storage::JobRecord job,
                     backend_->jobs().CheckLease(request->lease_token(), backend_->NowMs()));
    ASSIGN_OR_RETURN(int64_t last,
                     backend_->progress().Report(job.id, request->lease_token(), job.last_sequence,
                                                 backend_->NowMs(), events));
    response->set_last_sequence(last);
    backend_->hub().Notify(job.id);
    return absl::OkStatus();
  }());
}

grpc::ServerUnaryReactor* WorkerGatewayService::CommitCheckpoint(
    grpc::CallbackServerContext* context, const v1::CommitCheckpointRequest* request,
    v1::CommitCheckpointResponse* response) {
  return Respond(context, [&]() -> absl::Status {
    RETURN_IF_ERROR(CheckToken(request->lease_token()));
    if (request->kind() == v1::CHECKPOINT_KIND_UNSPECIFIED ||
        !v1::CheckpointKind_IsValid(request->kind())) {
      return absl::InvalidArgumentError("kind must be SAMPLEABLE, RESUME or FINAL");
    }
    if (request->step() < 0) {
      return absl::InvalidArgumentError(absl::StrCat("step must be >= 0, got ", request->step()));
    }
    if (request->files().empty() || request->files_size() > 10000) {
      return absl::InvalidArgumentError("files must list 1 to 10000 files");
    }
    std::vector<storage::CheckpointFileRecord> files;
    std::set<std::string> paths;
    for (const auto& f : request->files()) {
      RETURN_IF_ERROR(CheckRelativePath(f.path()));
      if (!paths.insert(f.path()).second) {
        return absl::InvalidArgumentError(absl::StrCat("files.path '", f.path(), "' is repeated"));
      }
      RETURN_IF_ERROR(CheckBlob(backend_, absl::StrCat("files['", f.path(), "'].digest"),
                                f.digest(), f.size_bytes()));
      files.push_back({f.path(), f.digest(), f.size_bytes()});
    }
    ASSIGN_OR_RETURN(storage::JobRecord leased,
                     backend_->jobs().CheckLease(request->lease_token(), backend_->NowMs()));
    backend_->progress().Flush(leased.id, backend_->NowMs());
    ASSIGN_OR_RETURN(storage::CheckpointRecord ckpt,
                     backend_->jobs().CommitCheckpoint(
                         request->lease_token(), backend_->NowMs(), request->step(),
                         static_cast<storage::CheckpointKind>(request->kind()), files));
    response->set_checkpoint_id(ckpt.id);
    backend_->hub().Notify(ckpt.job_id);
    return absl::OkStatus();
  }());
}

grpc::ServerUnaryReactor* WorkerGatewayService::CompleteTask(grpc::CallbackServerContext* context,
                                                             const v1::CompleteTaskRequest* request,
                                                             v1::CompleteTaskResponse* response) {
  return Respond(context, [&]() -> absl::Status {
    RETURN_IF_ERROR(CheckToken(request->lease_token()));
    if (SampleBroker::IsSampleToken(request->lease_token())) {
      RETURN_IF_ERROR(backend_->samples().Complete(request->lease_token(), backend_->NowMs()));
      response->set_state(v1::JOB_STATE_SUCCEEDED);
      return absl::OkStatus();
    }
    ASSIGN_OR_RETURN(storage::JobRecord job,
                     backend_->jobs().CheckLease(request->lease_token(), backend_->NowMs()));
    backend_->progress().Flush(job.id, backend_->NowMs());
    ASSIGN_OR_RETURN(storage::JobState state,
                     backend_->jobs().Complete(request->lease_token(), backend_->NowMs()));
    response->set_state(static_cast<v1::JobState>(state));
    backend_->hub().Notify(job.id);
    return absl::OkStatus();
  }());
}

grpc::ServerUnaryReactor* WorkerGatewayService::FailTask(grpc::CallbackServerContext* context,
                                                         const v1::FailTaskRequest* request,
                                                         v1::FailTaskResponse* response) {
  return Respond(context, [&]() -> absl::Status {
    RETURN_IF_ERROR(CheckToken(request->lease_token()));
    RETURN_IF_ERROR(CheckName("error", request->error(), kMaxMessageBytes));
    if (SampleBroker::IsSampleToken(request->lease_token())) {
      RETURN_IF_ERROR(backend_->samples().Fail(request->lease_token(), backend_->NowMs(),
                                               request->error(), request->retryable()));
      response->set_state(v1::JOB_STATE_FAILED);
      return absl::OkStatus();
    }
    ASSIGN_OR_RETURN(storage::JobRecord job,
                     backend_->jobs().CheckLease(request->lease_token(), backend_->NowMs()));
    backend_->progress().Flush(job.id, backend_->NowMs());
    ASSIGN_OR_RETURN(storage::JobState state,
                     backend_->jobs().Fail(request->lease_token(), backend_->NowMs(),
                                           request->error(), request->retryable()));
    response->set_state(static_cast<v1::JobState>(state));
    backend_->hub().Notify(job.id);
    if (state == storage::JobState::kQueued) backend_->NotifyTaskAvailable();
    return absl::OkStatus();
  }());
}

grpc::ServerUnaryReactor* WorkerGatewayService::ReleaseTask(grpc::CallbackServerContext* context,
                                                            const v1::ReleaseTaskRequest* request,
                                                            v1::ReleaseTaskResponse* response) {
  return Respond(context, [&]() -> absl::Status {
    RETURN_IF_ERROR(CheckToken(request->lease_token()));
    if (request->reason().size() > kMaxMessageBytes) {
      return absl::InvalidArgumentError("reason must be at most 64 KiB");
    }
    const std::string reason = request->reason().empty() ? "no reason given" : request->reason();
    if (SampleBroker::IsSampleToken(request->lease_token())) {
      RETURN_IF_ERROR(
          backend_->samples().Release(request->lease_token(), backend_->NowMs(), reason));
      response->set_state(v1::JOB_STATE_QUEUED);
      return absl::OkStatus();
    }
    ASSIGN_OR_RETURN(storage::JobRecord job,
                     backend_->jobs().CheckLease(request->lease_token(), backend_->NowMs()));
    backend_->progress().Flush(job.id, backend_->NowMs());
    ASSIGN_OR_RETURN(storage::JobState state,
                     backend_->jobs().Release(request->lease_token(), backend_->NowMs(), reason));
    response->set_state(static_cast<v1::JobState>(state));
    backend_->hub().Notify(job.id);
    if (state == storage::JobState::kQueued) backend_->NotifyTaskAvailable();
    return absl::OkStatus();
  }());
}

grpc::ServerUnaryReactor* WorkerGatewayService::ReportSampleOutput(
    grpc::CallbackServerContext* context, const v1::ReportSampleOutputRequest* request,
    v1::ReportSampleOutputResponse* response) {
  return Respond(context, [&]() -> absl::Status {
    RETURN_IF_ERROR(CheckToken(request->lease_token()));
    if (!SampleBroker::IsSampleToken(request->lease_token())) {
      return absl::InvalidArgumentError("lease_token does not belong to a SAMPLE task");
    }
    if (request->output().payload_case() == v1::SampleResponse::PAYLOAD_NOT_SET) {
      return absl::InvalidArgumentError("output must hold progress or an image");
    }
    ASSIGN_OR_RETURN(
        bool connected,
        backend_->samples().Report(request->lease_token(), backend_->NowMs(), request->output()));
    response->set_caller_connected(connected);
    return absl::OkStatus();
  }());
}

grpc::ServerUnaryReactor* WorkerGatewayService::GetCacheEntry(
    grpc::CallbackServerContext* context, const v1::GetCacheEntryRequest* request,
    v1::GetCacheEntryResponse* response) {
  return Respond(context, [&]() -> absl::Status {
    RETURN_IF_ERROR(CheckName("key", request->key(), 1024));
    ASSIGN_OR_RETURN(std::optional<storage::CacheEntryRecord> entry,
                     backend_->catalog().GetCacheEntry(request->key()));
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
    RETURN_IF_ERROR(CheckName("key", request->key(), 1024));
    RETURN_IF_ERROR(CheckAnyLease(request->lease_token()));
    if (request->metadata_json().size() > kMaxMessageBytes) {
      return absl::InvalidArgumentError("metadata_json must be at most 64 KiB");
    }
    std::vector<storage::CacheItemRecord> items;
    for (const auto& item : request->items()) {
      RETURN_IF_ERROR(CheckName("items.name", item.name(), 1024));
      RETURN_IF_ERROR(CheckBlob(backend_, absl::StrCat("items['", item.name(), "'].digest"),
                                item.digest(), item.size_bytes()));
      items.push_back({item.name(), item.digest(), item.size_bytes()});
    }
    ASSIGN_OR_RETURN(
        int count, backend_->catalog().PutCacheEntry(request->key(), items, request->append(),
                                                     request->metadata_json(), backend_->NowMs()));
    response->set_item_count(count);
    return absl::OkStatus();
  }());
}

}  // namespace dreambooth::server
