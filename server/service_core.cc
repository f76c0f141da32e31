#include "server/service_core.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "server/request_checks.h"
#include "server/sample_broker.h"
#include "server/webhook_request.h"
#include "spec/builtin_models.h"
#include "spec/job_spec_rules.h"
#include "storage/labels.h"

namespace dreambooth::server {
namespace {
constexpr size_t kMacBytes = 16;
}  // namespace

ServiceCore::ServiceCore(ServerOptions options) : options_(std::move(options)) {}
ServiceCore::~ServiceCore() {
  if (lock_fd_ >= 0) close(lock_fd_);  // releases the data dir's lock
}

absl::Status ServiceCore::LockDataDir() {
  const std::string path = options_.data_dir + "/dreamboothd.lock";
  lock_fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) {
    return absl::UnavailableError(absl::StrCat("cannot open ", path, ": ", strerror(errno)));
  }
  if (flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    char holder[32] = {};
    const ssize_t n = pread(lock_fd_, holder, sizeof(holder) - 1, 0);
    return absl::FailedPreconditionError(
        absl::StrCat("data dir ", options_.data_dir, " is in use by another dreamboothd (pid ",
                     n > 0 ? std::string(holder, static_cast<size_t>(n)) : std::string("unknown"),
                     "); stop it or choose another --data-dir"));
  }
  const std::string pid = std::to_string(getpid());
  if (ftruncate(lock_fd_, 0) != 0 || pwrite(lock_fd_, pid.data(), pid.size(), 0) < 0) {
    spdlog::warn("cannot write the pid into {}: {}", path, strerror(errno));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ServiceCore>> ServiceCore::Open(const ServerOptions& options) {
  std::unique_ptr<ServiceCore> b(new ServiceCore(options));
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot create data dir ", options.data_dir, ": ", ec.message()));
  }
  // One daemon per data dir: a second one would sweep the first one's leases and temp files.
  RETURN_IF_ERROR(b->LockDataDir());
  storage::Database::Options db_options;
  db_options.path = options.data_dir + "/db.sqlite";
  ASSIGN_OR_RETURN(b->db_, storage::Database::Open(db_options));
  b->jobs_ = std::make_unique<storage::JobStore>(b->db_.get());
  b->webhooks_ = std::make_unique<storage::WebhookStore>(b->db_.get());
  b->catalog_ = std::make_unique<storage::CatalogStore>(b->db_.get());
  b->workers_ = std::make_unique<storage::WorkerRegistry>(b->db_.get());
  b->keys_ = std::make_unique<storage::KeyStore>(b->db_.get());
  b->access_ = std::make_unique<storage::LeaseAccess>(b->db_.get());
  b->upload_limiter_ = std::make_unique<RateLimiter>(options.tenant_uploads_per_minute, 60'000);
  b->decode_pool_ = std::make_unique<WorkPool>(options.upload_decode_threads);
  ASSIGN_OR_RETURN(b->blobs_, storage::BlobStore::Open(options.data_dir));
  b->samples_ = std::make_unique<SampleBroker>();
  b->progress_ = std::make_unique<ProgressCoalescer>(b->jobs_.get(), options.progress_interval_ms);
  ASSIGN_OR_RETURN(b->page_token_key_,
                   b->catalog_->GetOrCreateMeta("page_token_key", RandomHex(32)));
  return b;
}

int64_t ServiceCore::NowMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

absl::StatusOr<bool> ServiceCore::IsKnownBaseModel(const std::string& name) {
  if (spec::IsBuiltinModel(name)) return true;
  if (!options_.model_root.empty()) {
    struct stat st;
    const std::string dir = options_.model_root + "/" + name;
    if (stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return true;
  }
  return catalog_->IsKnownBaseModel(name);
}

absl::StatusOr<storage::JobRecord> ServiceCore::GetJobFor(const Caller& caller,
                                                          const std::string& job_id) {
  absl::StatusOr<storage::JobRecord> job = jobs_->Get(job_id);
  if (job.ok() && !caller.CanSee(job->tenant)) {
    return absl::NotFoundError(absl::StrCat("job '", job_id, "' not found"));
  }
  return job;
}

absl::StatusOr<storage::ImageSetRecord> ServiceCore::GetImageSetFor(const Caller& caller,
                                                                    const std::string& set_id) {
  absl::StatusOr<storage::ImageSetRecord> set = catalog_->GetImageSet(set_id);
  if (set.ok() && !caller.CanSee(set->tenant)) {
    return absl::NotFoundError(absl::StrCat("image set '", set_id, "' not found"));
  }
  return set;
}

absl::StatusOr<storage::CheckpointRecord> ServiceCore::GetCheckpointFor(
    const Caller& caller, const std::string& checkpoint_id) {
  const absl::Status missing =
      absl::NotFoundError(absl::StrCat("checkpoint '", checkpoint_id, "' not found"));
  ASSIGN_OR_RETURN(storage::CheckpointRecord checkpoint, jobs_->GetCheckpoint(checkpoint_id));
  absl::StatusOr<storage::JobRecord> job = GetJobFor(caller, checkpoint.job_id);
  if (absl::IsNotFound(job.status())) return missing;
  if (!job.ok()) return job.status();
  return checkpoint;
}

absl::StatusOr<storage::JobRecord> ServiceCore::CreateJob(const Caller& caller,
                                                          const v1::JobSpec& request_spec,
                                                          const std::string& request_id,
                                                          const storage::Labels& labels,
                                                          const v1::Webhook& webhook) {
  // Fields this server does not know (a newer client's, or junk) are dropped, never stored or
  // echoed: they would inflate every Job and ListJobs page.
  v1::JobSpec spec = request_spec;
  spec.DiscardUnknownFields();
  RETURN_IF_ERROR(CheckRequestId("request_id", request_id));
  RETURN_IF_ERROR(CheckLabels("labels", labels));
  ASSIGN_OR_RETURN(storage::NewWebhook new_webhook,
                   CheckWebhook(webhook, options_.webhook_allowed_url_prefixes));
  ASSIGN_OR_RETURN(v1::JobSpec resolved, spec::ResolveJobSpec(spec));
  ASSIGN_OR_RETURN(bool known, IsKnownBaseModel(resolved.base_model()));
  if (!known) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.base_model '", resolved.base_model(),
        "' is not a known model: use 'tiny', 'toy', a folder under the server's --model-root, or a "
        "model a worker advertises"));
  }
  for (const auto& [field, id] :
       {std::pair<std::string, std::string>{"spec.instance_image_set",
                                            resolved.instance_image_set()},
        {"spec.regularization_image_set", resolved.regularization_image_set()}}) {
    if (id.empty()) continue;
    absl::StatusOr<storage::ImageSetRecord> set = GetImageSetFor(caller, id);
    if (absl::IsNotFound(set.status())) {
      return absl::InvalidArgumentError(absl::StrCat(field, " '", id, "' does not exist"));
    }
    if (!set.ok()) return set.status();
    if (field != "spec.instance_image_set") continue;
    if (set->images.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(field, " '", id, "' holds no images"));
    }
    // Text-to-image trains every image with its own caption: the set must be captioned first
    // (the request is fine; the set is not ready for it).
    if (resolved.training_mode() == v1::TRAINING_MODE_TEXT_TO_IMAGE) {
      for (const storage::StoredImageRecord& image : set->images) {
        if (!image.caption.empty()) continue;
        return absl::FailedPreconditionError(absl::StrCat(
            "spec.training_mode TRAINING_MODE_TEXT_TO_IMAGE needs a caption on every image of ",
            field, " '", id, "', but image '", image.name, "' (sha256 ", image.digest,
            ") has none; upload it again with FileHeader.caption set (dbctl upload: a <stem>.txt "
            "file next to the image)"));
      }
    }
  }
  RETURN_IF_ERROR(CheckWorkersCanRun(resolved.num_devices(), resolved.num_nodes()));
  storage::NewJob job;
  job.tenant = caller.tenant;
  job.num_devices = resolved.num_devices();
  job.num_nodes = resolved.num_nodes();
  job.priority = resolved.priority();
  job.spec = resolved.SerializeAsString();
  job.base_model = resolved.base_model();
  job.instance_set = resolved.instance_image_set();
  job.regularization_set = resolved.regularization_image_set();
  job.max_attempts = resolved.max_attempts();
  job.max_infra_attempts = resolved.max_infra_attempts();
  job.request_id = request_id;
  job.request_fingerprint = spec::SpecFingerprint(spec);
  // Labels are part of the request: the same id with other labels is another request.
  if (!labels.empty())
    absl::StrAppend(&job.request_fingerprint, "|", storage::LabelsToJson(labels));
  job.labels = labels;
  // So is the webhook (its secret by digest).
  if (!new_webhook.url.empty()) {
    absl::StrAppend(&job.request_fingerprint, "|webhook=", new_webhook.url, "|", new_webhook.events,
                    "|", Sha256Hex(new_webhook.secret));
  }
  job.webhook = std::move(new_webhook);
  job.max_active_jobs_of_tenant = options_.tenant_max_active_jobs;
  // Over the storage quota a new job is refused, but a retry still gets the job it created.
  if (absl::Status quota = CheckStorageQuota(caller, 0); !quota.ok()) {
    if (!absl::IsResourceExhausted(quota)) return quota;
    job.refuse_new_job = std::string(quota.message());
  }
  ASSIGN_OR_RETURN(storage::JobRecord created,
                   jobs_->Create(job, NowMs(), options_.request_retention_ms));
  // A retried request_id logs its job again, with the same job_id.
  LogInfo("job created", {{"job_id", created.id},
                          {"tenant", created.tenant},
                          {"base_model", created.base_model},
                          {"request_id", request_id}});
  hub_.Notify(created.id);
  NotifyTaskAvailable();
  return created;
}

absl::Status ServiceCore::CheckWorkersCanRun(int num_devices, int num_nodes) {
  const int64_t ttl = options_.worker_registration_ttl_ms;
  if (num_nodes > 1) {
    ASSIGN_OR_RETURN(int capable, workers_->CountGangCapable(num_devices, NowMs() - ttl));
    if (capable >= num_nodes) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(
        "spec.num_nodes is ", num_nodes, ", but only ", capable,
        " worker(s) registered in the last ", ttl / 1000, " s take multi-node jobs with ",
        num_devices, num_devices == 1 ? " device" : " devices",
        "; start more workers with --gang-address (and --num-devices) first, or ask for fewer "
        "nodes"));
  }
  if (num_devices <= 1) return absl::OkStatus();  // every worker has one
  ASSIGN_OR_RETURN(std::optional<storage::WorkerRecord> largest, workers_->Largest(NowMs() - ttl));
  if (largest.has_value() && largest->device_count >= num_devices) return absl::OkStatus();
  const std::string seen =
      largest.has_value()
          ? absl::StrCat("the largest, '", largest->id, "', has ", largest->device_count,
                         largest->device_count == 1 ? " device" : " devices")
          : "none has asked for work";
  return absl::FailedPreconditionError(absl::StrCat(
      "spec.num_devices is ", num_devices, ", but no worker registered in the last ", ttl / 1000,
      " s has that many devices (", seen,
      "); start a worker with at least that many (dreambooth-worker --num-devices) first, or "
      "ask for fewer"));
}

absl::StatusOr<storage::JobRecord> ServiceCore::CancelJob(const Caller& caller,
                                                          const std::string& job_id) {
  ASSIGN_OR_RETURN(storage::JobRecord before, GetJobFor(caller, job_id));
  ASSIGN_OR_RETURN(storage::JobRecord job, jobs_->Cancel(job_id, NowMs()));
  LogInfo("cancel requested", {{"job_id", job_id}, {"tenant", caller.tenant}});
  hub_.Notify(job_id);
  if (!storage::IsTerminal(before.state)) NoteJobEnd(job_id);
  return job;
}

absl::Status ServiceCore::CheckStorageQuota(const Caller& caller, int64_t adding) {
  if (options_.tenant_max_stored_bytes <= 0) return absl::OkStatus();
  ASSIGN_OR_RETURN(int64_t stored, storage::TenantStoredBytes(*db_, caller.tenant));
  if (stored + adding <= options_.tenant_max_stored_bytes &&
      stored < options_.tenant_max_stored_bytes) {
    return absl::OkStatus();
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "tenant '", caller.tenant, "' stores ", stored, " bytes",
      adding > 0 ? absl::StrCat(" (+", adding, " in this request)") : "", "; its limit is ",
      options_.tenant_max_stored_bytes,
      " (dreamboothd --tenant-max-stored-bytes); delete jobs, checkpoints or image sets"));
}

absl::Status ServiceCore::AdmitUpload(const Caller& caller) {
  const int64_t wait_ms = upload_limiter_->Admit(caller.tenant, NowMs());
  if (wait_ms <= 0) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "tenant '", caller.tenant, "' started ", upload_limiter_->limit(),
      " uploads in the last minute, its limit (dreamboothd --tenant-uploads-per-minute); retry in ",
      (wait_ms + 999) / 1000, " s"));
}

absl::Status ServiceCore::DeleteJob(const Caller& caller, const std::string& job_id) {
  RETURN_IF_ERROR(GetJobFor(caller, job_id).status());
  progress_->Flush(job_id, NowMs());
  ASSIGN_OR_RETURN(storage::JobRecord job, jobs_->Delete(job_id));
  LogInfo("job deleted", {{"job_id", job_id}, {"tenant", caller.tenant}});
  hub_.Notify(job_id);
  if (job.state == storage::JobState::kRunning) NotifyTaskAvailable();
  return absl::OkStatus();
}

absl::Status ServiceCore::DeleteCheckpoint(const Caller& caller, const std::string& checkpoint_id) {
  RETURN_IF_ERROR(GetCheckpointFor(caller, checkpoint_id).status());
  ASSIGN_OR_RETURN(storage::CheckpointRecord ckpt, jobs_->DeleteCheckpoint(checkpoint_id));
  hub_.Notify(ckpt.job_id);
  return absl::OkStatus();
}

absl::StatusOr<storage::GcReport> ServiceCore::RunMaintenance() {
  const int64_t now = NowMs();
  ASSIGN_OR_RETURN(storage::GcReport report,
                   storage::CollectGarbage(*db_, *blobs_, now, options_.gc_grace_ms));
  BlobsChanged();
  ASSIGN_OR_RETURN(
      storage::JobStore::Pruned pruned,
      jobs_->PruneHistory(now - options_.request_retention_ms, now - options_.event_retention_ms));
  // What workers reported is read only within --worker-registration-ttl.
  const int64_t unseen_before = now - options_.worker_registration_ttl_ms;
  ASSIGN_OR_RETURN(int64_t workers_forgotten, workers_->ForgetUnseen(unseen_before));
  ASSIGN_OR_RETURN(int64_t model_rows_forgotten, catalog_->ForgetBaseModelWorkers(unseen_before));
  spdlog::info(
      "maintenance: {} blobs ({} referenced, {} within the grace period), deleted {} ({} bytes); "
      "dropped {} ended leases' write records, {} expired request ids, {} old events, {} settled "
      "webhook deliveries, {} workers and {} of their model reports unseen for "
      "--worker-registration-ttl",
      report.blobs, report.referenced, report.young, report.deleted, report.bytes_freed,
      report.stale_lease_rows, pruned.request_ids, pruned.events, pruned.webhook_deliveries,
      workers_forgotten, model_rows_forgotten);
  return report;
}

std::string ServiceCore::EncodePageToken(const std::string& kind, int64_t cursor) const {
  std::string payload(8, '\0');
  for (int i = 0; i < 8; ++i) payload[i] = static_cast<char>((cursor >> (56 - 8 * i)) & 0xFF);
  const std::string mac =
      HmacSha256(page_token_key_, absl::StrCat(kind, "|", payload)).substr(0, kMacBytes);
  std::string token;
  absl::WebSafeBase64Escape(payload + mac, &token);
  return token;
}

absl::StatusOr<int64_t> ServiceCore::DecodePageToken(const std::string& kind,
                                                     const std::string& token) const {
  static const absl::Status kBad = absl::InvalidArgumentError(
      "page_token is invalid: pass the next_page_token of a previous response to the same "
      "method with the same filter");
  std::string raw;
  if (token.size() > 64 || !absl::WebSafeBase64Unescape(token, &raw) ||
      raw.size() != 8 + kMacBytes) {
    return kBad;
  }
  const std::string payload = raw.substr(0, 8);
  const std::string mac =
      HmacSha256(page_token_key_, absl::StrCat(kind, "|", payload)).substr(0, kMacBytes);
  unsigned char diff = 0;
  for (size_t i = 0; i < kMacBytes; ++i) diff |= raw[8 + i] ^ mac[i];
  if (diff != 0) return kBad;
  int64_t cursor = 0;
  for (int i = 0; i < 8; ++i) cursor = (cursor << 8) | static_cast<unsigned char>(payload[i]);
  if (cursor <= 0) return kBad;
  return cursor;
}

void ServiceCore::SweepExpiredLeases() {
  const int64_t now = NowMs();
  for (const std::string& id : progress_->FlushDue(now)) hub_.Notify(id);
  absl::StatusOr<std::vector<std::string>> changed = jobs_->SweepExpired(now);
  if (changed.ok()) {
    for (const std::string& id : *changed) {
      LogWarn("lease expired", {{"job_id", id}});
      hub_.Notify(id);
      NoteJobEnd(id);
    }
    if (!changed->empty()) NotifyTaskAvailable();
  } else {
    spdlog::warn("lease sweep failed: {}", changed.status().ToString());
  }
  samples_->SweepExpired(now);
}

}  // namespace dreambooth::server
