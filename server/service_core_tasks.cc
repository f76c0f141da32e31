// ServiceCore: the worker protocol (WorkerGateway), fenced by lease tokens.
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/crypto.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "server/convert.h"
#include "server/service_core.h"
#include "spec/job_spec_defaults.h"

namespace dreambooth::server {
namespace {

// RegisterWorker rewrites an unchanged report this often (it refreshes last_seen and free
// memory), and forgets every report when this many workers have registered (a worker id holds
// the worker's pid, so ids churn; forgetting only costs one extra write each).
constexpr int64_t kRegistrationRewriteMs = 60'000;
constexpr size_t kMaxRememberedRegistrations = 4096;

// How many checkpoints of `kind` the job keeps (0: all); specs stored before the retention
// fields existed get the defaults.
int CheckpointsToKeep(const v1::JobSpec& spec, storage::CheckpointKind kind) {
  switch (kind) {
    case storage::CheckpointKind::kSampleable:
    case storage::CheckpointKind::kLoraDiffusers:
    case storage::CheckpointKind::kLoraKohya:
      return spec.has_checkpoints_total_limit() ? spec.checkpoints_total_limit()
                                                : spec::kCheckpointsTotalLimit;
    case storage::CheckpointKind::kResume:
      return spec.has_resume_checkpoints_to_keep() ? spec.resume_checkpoints_to_keep()
                                                   : spec::kResumeCheckpointsToKeep;
    default:
      return 0;
  }
}

}  // namespace

template <typename Store>
auto ServiceCore::WithJobLease(const std::string& token, Store store)
    -> decltype(store(std::declval<const storage::JobRecord&>())) {
  ASSIGN_OR_RETURN(storage::JobRecord job, jobs_->CheckLease(token, NowMs()));
  progress_->Flush(job.id, NowMs());
  auto result = store(job);
  if (result.ok()) hub_.Notify(job.id);
  return result;
}

absl::StatusOr<storage::LeaseScope> ServiceCore::ScopeOf(const std::string& token) {
  storage::LeaseScope scope;
  scope.token = token;
  if (SampleBroker::IsSampleToken(token)) {
    ASSIGN_OR_RETURN(SampleBroker::Task task, samples_->Leased(token, NowMs()));
    ASSIGN_OR_RETURN(storage::JobRecord job, jobs_->Get(task.job_id));
    scope.job_id = job.id;
    scope.tenant = job.tenant;
    scope.sample_checkpoint_id = task.checkpoint.id();
    return scope;
  }
  ASSIGN_OR_RETURN(storage::JobRecord job, jobs_->CheckLease(token, NowMs()));
  scope.job_id = job.id;
  scope.tenant = job.tenant;
  scope.instance_set = job.instance_set;
  scope.regularization_set = job.regularization_set;
  return scope;
}

absl::Status ServiceCore::CheckCommittableBlob(const storage::LeaseScope& scope,
                                               const std::string& field, const std::string& digest,
                                               int64_t size) {
  if (!IsSha256Hex(digest)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " '", digest.substr(0, 80), "' is not a hex SHA-256"));
  }
  ASSIGN_OR_RETURN(bool readable, access_->MayRead(scope, digest));
  absl::StatusOr<int64_t> stored = blobs_->Size(digest);
  if (!readable || absl::IsNotFound(stored.status())) {
    return absl::FailedPreconditionError(
        absl::StrCat(field, " ", digest, " was not written under this lease; WriteBlob it first"));
  }
  if (!stored.ok()) return stored.status();
  if (*stored != size) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " ", digest, " has ", *stored, " bytes, not the declared ", size));
  }
  return absl::OkStatus();
}

absl::Status ServiceCore::CheckLeaseMayRead(const std::string& token, const std::string& digest) {
  ASSIGN_OR_RETURN(storage::LeaseScope scope, ScopeOf(token));
  ASSIGN_OR_RETURN(bool readable, access_->MayRead(scope, digest));
  if (!readable) return absl::NotFoundError(absl::StrCat("blob ", digest, " not found"));
  return absl::OkStatus();
}

absl::Status ServiceCore::RecordBlobWrite(const std::string& token, const std::string& digest) {
  ASSIGN_OR_RETURN(storage::LeaseScope scope, ScopeOf(token));
  BlobsChanged();
  return access_->RecordWrite(scope, digest, NowMs());
}

absl::StatusOr<std::optional<storage::CacheEntryRecord>> ServiceCore::GetCacheEntry(
    const std::string& token, const std::string& key) {
  ASSIGN_OR_RETURN(storage::LeaseScope scope, ScopeOf(token));
  return catalog_->GetCacheEntry(scope.tenant, key);
}

absl::Status ServiceCore::CheckAnyLease(const std::string& token) {
  if (SampleBroker::IsSampleToken(token)) return samples_->Check(token, NowMs());
  return jobs_->CheckLease(token, NowMs()).status();
}

absl::Status ServiceCore::RegisterWorker(const v1::LeaseTaskRequest& request) {
  const int64_t now = NowMs();
  // Free memory changes on every call; it is refreshed with the once-a-minute rewrite.
  const std::string report = absl::StrCat(
      absl::StrJoin(request.base_models(), ","), "|", request.device_count(), "|",
      request.device_kind(), "|", request.device_memory_bytes(), "|", request.gang_address());
  {
    absl::MutexLock lock(&registrations_mu_);
    auto it = registrations_.find(request.worker_id());
    if (it != registrations_.end() && it->second.report == report &&
        now - it->second.written_ms < kRegistrationRewriteMs) {
      return absl::OkStatus();
    }
    if (registrations_.size() >= kMaxRememberedRegistrations) registrations_.clear();
  }
  RETURN_IF_ERROR(catalog_->RememberBaseModels(
      std::vector<std::string>(request.base_models().begin(), request.base_models().end()),
      request.worker_id(), now));
  storage::WorkerRecord worker;
  worker.id = request.worker_id();
  worker.device_kind = request.device_kind();
  worker.device_count = std::max(1, request.device_count());
  worker.device_memory_bytes = request.device_memory_bytes();
  worker.device_free_memory_bytes = request.device_free_memory_bytes();
  worker.gang_address = request.gang_address();
  RETURN_IF_ERROR(workers_->Remember(worker, now));
  bool changed = false;
  {
    absl::MutexLock lock(&registrations_mu_);
    auto it = registrations_.find(request.worker_id());
    changed = it == registrations_.end() || it->second.report != report;
    registrations_[request.worker_id()] = Registration{report, now};
  }
  if (changed) {
    LogInfo(absl::StrCat("worker registered: ", worker.device_count, " ", worker.device_kind,
                         " device(s), base models ", absl::StrJoin(request.base_models(), ",")),
            {{"worker_id", request.worker_id()}});
  }
  return absl::OkStatus();
}

absl::Status ServiceCore::BuildTrainTask(const storage::Lease& lease, v1::Task* task) {
  const storage::JobRecord& job = lease.job;
  task->set_task_id(job.id);
  task->set_kind(v1::TASK_KIND_TRAIN);
  task->set_job_id(job.id);
  task->set_attempt(job.attempt);
  task->set_lease_token(lease.token);
  task->set_lease_expire_time_ms(lease.expires_ms);
  task->set_lease_ttl_ms(options_.lease_ttl_ms);
  ASSIGN_OR_RETURN(*task->mutable_spec(), ParseStoredSpec(job.spec, job.id));
  ASSIGN_OR_RETURN(storage::ImageSetRecord instance, catalog_->GetImageSet(job.instance_set));
  for (const auto& img : instance.images) *task->add_instance_images() = ToProto(img);
  if (!job.regularization_set.empty()) {
    ASSIGN_OR_RETURN(storage::ImageSetRecord reg, catalog_->GetImageSet(job.regularization_set));
    for (const auto& img : reg.images) *task->add_regularization_images() = ToProto(img);
  }
  ASSIGN_OR_RETURN(std::optional<storage::CheckpointRecord> resume,
                   jobs_->LatestCheckpoint(job.id, {storage::CheckpointKind::kResume}));
  if (resume.has_value()) *task->mutable_resume_from() = ToProto(*resume);
  if (job.num_nodes > 1) {
    v1::GangAssignment* gang = task->mutable_gang();
    gang->set_node_rank(job.gang_node);
    gang->set_num_nodes(job.num_nodes);
    gang->set_rendezvous(job.gang_rendezvous);
    gang->set_formation_timeout_ms(options_.gang_formation_timeout_ms);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<v1::Task>> ServiceCore::TryLeaseTask(
    const v1::LeaseTaskRequest& request) {
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
  const int64_t ttl = options_.lease_ttl_ms;
  if (sample) {
    std::optional<SampleBroker::Task> t =
        samples_->Lease(request.worker_id(), models, NowMs(), ttl);
    if (t.has_value()) {
      v1::Task task;
      LogInfo("sample task leased",
              {{"job_id", t->job_id}, {"task_id", t->id}, {"worker_id", request.worker_id()}});
      task.set_task_id(t->id);
      task.set_kind(v1::TASK_KIND_SAMPLE);
      task.set_job_id(t->job_id);
      task.set_attempt(1);
      task.set_lease_token(t->token);
      task.set_lease_expire_time_ms(t->expires_ms);
      task.set_lease_ttl_ms(ttl);
      ASSIGN_OR_RETURN(*task.mutable_spec(), ParseStoredSpec(t->spec, t->job_id));
      *task.mutable_sample() = t->request;
      *task.mutable_sample_checkpoint() = t->checkpoint;
      return task;
    }
  }
  if (train) {
    ASSIGN_OR_RETURN(
        std::optional<storage::Lease> lease,
        jobs_->Claim(request.worker_id(), models, NowMs(), ttl, options_.tenant_max_running_jobs,
                     std::max(1, request.device_count()), request.gang_address()));
    if (lease.has_value()) {
      LogFields fields = {{"job_id", lease->job.id},
                          {"task_id", lease->job.id},
                          {"worker_id", request.worker_id()},
                          {"attempt", lease->job.attempt}};
      if (lease->job.num_nodes > 1) fields.emplace_back("node", lease->job.gang_node);
      LogInfo("job leased", fields);
      hub_.Notify(lease->job.id);
      if (metrics_ != nullptr && lease->job.attempt == 1 && lease->job.gang_node == 0) {
        metrics_->ObserveQueueWait((NowMs() - lease->job.create_time_ms) / 1e3);
      }
      // A gang that starts forming is work for the other parked gang workers.
      if (lease->job.num_nodes > 1 && lease->job.gang_node == 0) NotifyTaskAvailable();
      v1::Task task;
      RETURN_IF_ERROR(BuildTrainTask(*lease, &task));
      return task;
    }
  }
  return std::nullopt;
}

absl::StatusOr<ServiceCore::HeartbeatResult> ServiceCore::Heartbeat(const std::string& token,
                                                                    v1::JobStage stage,
                                                                    int64_t step, int64_t total) {
  const int64_t now = NowMs();
  const int64_t ttl = options_.lease_ttl_ms;
  if (SampleBroker::IsSampleToken(token)) {
    ASSIGN_OR_RETURN(bool gone, samples_->Heartbeat(token, now, ttl));
    return HeartbeatResult{gone, now + ttl};
  }
  ASSIGN_OR_RETURN(storage::JobStore::HeartbeatResult result,
                   jobs_->Heartbeat(token, now, ttl, stage, step, total));
  return HeartbeatResult{result.cancel_requested, result.expires_ms};
}

absl::StatusOr<int64_t> ServiceCore::ReportEvents(const std::string& token,
                                                  std::vector<storage::EventRecord> events) {
  ASSIGN_OR_RETURN(storage::JobRecord job, jobs_->CheckLease(token, NowMs()));
  // Checked here too: a member's held progress would otherwise fail later, in the coalescer.
  RETURN_IF_ERROR(storage::JobStore::CheckGangMemberEvents(job, events));
  const int64_t cap = options_.max_events_per_job;
  const int64_t room = cap > 0 ? cap - job.last_sequence : std::numeric_limits<int64_t>::max();
  if (room <= 0) {
    // Over the cap nothing more is stored; progress still moves the job's position.
    for (auto it = events.rbegin(); it != events.rend(); ++it) {
      if (it->kind != storage::EventKind::kProgress) continue;
      RETURN_IF_ERROR(
          jobs_->Heartbeat(token, NowMs(), options_.lease_ttl_ms, it->stage, it->step, it->total)
              .status());
      hub_.Notify(job.id);
      break;
    }
    return job.last_sequence;
  }
  if (static_cast<int64_t>(events.size()) >= room) {
    events.resize(room - 1);
    storage::EventRecord note;
    note.kind = storage::EventKind::kLog;
    note.message = absl::StrCat("the job has reached its limit of ", cap,
                                " events (dreamboothd --max-events-per-job): later progress only "
                                "updates the job, later log lines and validation images are "
                                "dropped");
    events.push_back(std::move(note));
  }
  if (metrics_ != nullptr) {
    for (const storage::EventRecord& e : events) {
      if (e.kind != storage::EventKind::kProgress || e.stage != v1::JOB_STAGE_TRAINING) continue;
      metrics_->ObserveTrainingProgress(job.id, e.step, e.images_per_second, NowMs());
    }
  }
  ASSIGN_OR_RETURN(int64_t last,
                   progress_->Report(job.id, token, job.last_sequence, NowMs(), events));
  hub_.Notify(job.id);
  return last;
}

absl::StatusOr<storage::CheckpointRecord> ServiceCore::CommitCheckpoint(
    const std::string& token, int64_t step, storage::CheckpointKind kind,
    const std::vector<storage::CheckpointFileRecord>& files) {
  ASSIGN_OR_RETURN(storage::LeaseScope scope, ScopeOf(token));
  for (const storage::CheckpointFileRecord& f : files) {
    RETURN_IF_ERROR(CheckCommittableBlob(scope, absl::StrCat("files['", f.path, "'].digest"),
                                         f.digest, f.size_bytes));
  }
  return WithJobLease(
      token, [&](const storage::JobRecord& job) -> absl::StatusOr<storage::CheckpointRecord> {
        ASSIGN_OR_RETURN(v1::JobSpec spec, ParseStoredSpec(job.spec, job.id));
        return jobs_->CommitCheckpoint(token, NowMs(), step, kind, files,
                                       CheckpointsToKeep(spec, kind));
      });
}

absl::StatusOr<storage::JobState> ServiceCore::CompleteTask(const std::string& token) {
  if (SampleBroker::IsSampleToken(token)) {
    RETURN_IF_ERROR(samples_->Complete(token, NowMs()));
    return storage::JobState::kSucceeded;
  }
  std::string job_id;
  ASSIGN_OR_RETURN(storage::JobState state, WithJobLease(token, [&](const storage::JobRecord& job) {
                     job_id = job.id;
                     return jobs_->Complete(token, NowMs());
                   }));
  NoteJobEnd(job_id);
  // Under --tenant-max-running-jobs the tenant's next queued job may now run.
  if (options_.tenant_max_running_jobs > 0) NotifyTaskAvailable();
  return state;
}

absl::StatusOr<storage::JobState> ServiceCore::FailTask(const std::string& token,
                                                        const std::string& error, bool retryable) {
  if (SampleBroker::IsSampleToken(token)) {
    RETURN_IF_ERROR(samples_->Fail(token, NowMs(), error, retryable));
    return storage::JobState::kFailed;
  }
  std::string job_id;
  ASSIGN_OR_RETURN(storage::JobState state, WithJobLease(token, [&](const storage::JobRecord& job) {
                     job_id = job.id;
                     return jobs_->Fail(token, NowMs(), error, retryable);
                   }));
  NoteJobEnd(job_id);
  if (state == storage::JobState::kQueued || options_.tenant_max_running_jobs > 0) {
    NotifyTaskAvailable();
  }
  return state;
}

absl::StatusOr<storage::JobState> ServiceCore::ReleaseTask(const std::string& token,
                                                           const std::string& reason) {
  if (SampleBroker::IsSampleToken(token)) {
    RETURN_IF_ERROR(samples_->Release(token, NowMs(), reason));
    return storage::JobState::kQueued;
  }
  std::string job_id;
  ASSIGN_OR_RETURN(storage::JobState state, WithJobLease(token, [&](const storage::JobRecord& job) {
                     job_id = job.id;
                     return jobs_->Release(token, NowMs(), reason);
                   }));
  NoteJobEnd(job_id);
  if (state == storage::JobState::kQueued) NotifyTaskAvailable();
  return state;
}

absl::StatusOr<bool> ServiceCore::ReportSampleOutput(const std::string& token,
                                                     const v1::SampleResponse& output) {
  if (!SampleBroker::IsSampleToken(token)) {
    return absl::InvalidArgumentError("lease_token does not belong to a SAMPLE task");
  }
  return samples_->Report(token, NowMs(), output);
}

absl::StatusOr<int> ServiceCore::PutCacheEntry(const std::string& token, const std::string& key,
                                               const std::vector<storage::CacheItemRecord>& items,
                                               bool append, const std::string& metadata_json) {
  ASSIGN_OR_RETURN(storage::LeaseScope scope, ScopeOf(token));
  for (const storage::CacheItemRecord& item : items) {
    RETURN_IF_ERROR(CheckCommittableBlob(scope, absl::StrCat("items['", item.name, "'].digest"),
                                         item.digest, item.size_bytes));
  }
  return catalog_->PutCacheEntry(scope.tenant, key, items, append, metadata_json, NowMs());
}

}  // namespace dreambooth::server
