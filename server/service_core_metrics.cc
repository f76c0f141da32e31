// ServiceCore: what the metrics read from the database, how jobs ended, and readiness.
#include <spdlog/spdlog.h>
#include <sys/statvfs.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "server/service_core.h"

namespace dreambooth::server {
namespace {

// Walking the blob store costs a directory listing: a scrape reuses a walk this recent, unless
// blobs were written since (BlobsChanged).
constexpr int64_t kBlobWalkReuseMs = 30'000;

std::string StateLabel(storage::JobState state) {
  switch (state) {
    case storage::JobState::kQueued:
      return "queued";
    case storage::JobState::kRunning:
      return "running";
    case storage::JobState::kSucceeded:
      return "succeeded";
    case storage::JobState::kFailed:
      return "failed";
    case storage::JobState::kCancelled:
      return "cancelled";
    default:
      return "unspecified";
  }
}

}  // namespace

absl::StatusOr<Metrics::Snapshot> ServiceCore::MetricsSnapshot() {
  Metrics::Snapshot snapshot;
  for (storage::JobState state :
       {storage::JobState::kQueued, storage::JobState::kRunning, storage::JobState::kSucceeded,
        storage::JobState::kFailed, storage::JobState::kCancelled}) {
    snapshot.jobs_by_state[StateLabel(state)] = 0;
  }
  ASSIGN_OR_RETURN(auto counts, jobs_->CountByState());
  for (const auto& [state, n] : counts) snapshot.jobs_by_state[StateLabel(state)] = n;
  snapshot.leases = snapshot.jobs_by_state["running"];
  const int64_t now = NowMs();
  ASSIGN_OR_RETURN(snapshot.workers,
                   workers_->CountSeen(now - options_.worker_registration_ttl_ms));
  absl::MutexLock lock(&blob_walk_mu_);
  if (blob_walk_ms_ == 0 || now - blob_walk_ms_ > kBlobWalkReuseMs) {
    int64_t bytes = 0;
    int64_t count = 0;
    RETURN_IF_ERROR(blobs_->ForEach([&](const storage::BlobStore::StoredBlob& blob) {
      bytes += blob.size_bytes;
      ++count;
    }));
    blob_bytes_ = bytes;
    blob_count_ = count;
    blob_walk_ms_ = now;
  }
  snapshot.blob_bytes = blob_bytes_;
  snapshot.blobs = blob_count_;
  return snapshot;
}

void ServiceCore::BlobsChanged() {
  absl::MutexLock lock(&blob_walk_mu_);
  blob_walk_ms_ = 0;
}

void ServiceCore::NoteJobEnd(const std::string& job_id) {
  absl::StatusOr<storage::JobRecord> job = jobs_->Get(job_id);
  if (!job.ok()) return;
  const bool ended = storage::IsTerminal(job->state);
  if (ended || job->state == storage::JobState::kQueued) {
    LogFields fields = {{"job_id", job->id}, {"attempt", job->attempt}};
    if (!job->worker_id.empty()) fields.emplace_back("worker_id", job->worker_id);
    if (!job->error.empty()) fields.emplace_back("error", job->error);
    Log(job->state == storage::JobState::kFailed ? LogLevel::kWarn : LogLevel::kInfo,
        ended ? absl::StrCat("job ", StateLabel(job->state)) : "job requeued", fields);
  }
  if (metrics_ == nullptr || !ended) return;
  const double seconds = job->start_time_ms > 0
                             ? std::max<int64_t>(0, job->end_time_ms - job->start_time_ms) / 1e3
                             : 0.0;
  metrics_->ObserveJobEnd(StateLabel(job->state), seconds);
}

absl::Status ServiceCore::CheckReadiness() {
  if (absl::Status db = jobs_->CountByState().status(); !db.ok()) {
    return absl::UnavailableError(absl::StrCat("the database cannot be read: ", db.message()));
  }
  struct statvfs fs;
  if (::statvfs(options_.data_dir.c_str(), &fs) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot stat the data dir ", options_.data_dir));
  }
  const int64_t free_bytes = static_cast<int64_t>(fs.f_bavail) * static_cast<int64_t>(fs.f_frsize);
  if (free_bytes < options_.readiness_min_free_bytes) {
    return absl::UnavailableError(absl::StrCat("the data dir has ", free_bytes >> 20,
                                               " MiB free, under --readiness-min-free-mb ",
                                               options_.readiness_min_free_bytes >> 20));
  }
  ASSIGN_OR_RETURN(int workers, workers_->CountSeen(NowMs() - 3 * options_.lease_ttl_ms));
  if (workers == 0) {
    return absl::UnavailableError("no worker asked for work within three lease TTLs");
  }
  return absl::OkStatus();
}

}  // namespace dreambooth::server
