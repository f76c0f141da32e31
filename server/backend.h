// The server's core: owns the database, the stores, the blob store and the event hub, and holds
// the operations that span several of them (job creation checks, page tokens, notifications).
// gRPC services are thin adapters over it. Thread-safe.
#ifndef DREAMBOOTH_SERVER_BACKEND_H_
#define DREAMBOOTH_SERVER_BACKEND_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "dreambooth/v1/job_spec.pb.h"
#include "server/event_hub.h"
#include "server/options.h"
#include "server/progress_coalescer.h"
#include "storage/blob_store.h"
#include "storage/catalog_store.h"
#include "storage/database.h"
#include "storage/job_store.h"

namespace dreambooth::server {

class SampleBroker;

class Backend {
 public:
  // Opens (creating) data_dir/db.sqlite and data_dir/blobs.
  static absl::StatusOr<std::unique_ptr<Backend>> Open(const ServerOptions& options);
  ~Backend();

  // Validates the spec (INVALID_ARGUMENT naming the field), checks that its image sets exist
  // and are non-empty and that its base model is known, then creates the job (idempotent on
  // request_id). Wakes watchers.
  absl::StatusOr<storage::JobRecord> CreateJob(const v1::JobSpec& spec,
                                               const std::string& request_id);
  // Cancels and wakes watchers.
  absl::StatusOr<storage::JobRecord> CancelJob(const std::string& job_id);

  // "tiny", names a worker advertised, and folders under --model-root.
  absl::StatusOr<bool> IsKnownBaseModel(const std::string& name);

  // Opaque, tamper-evident page tokens: `kind` scopes a token to one list method and filter.
  std::string EncodePageToken(const std::string& kind, int64_t cursor) const;
  // INVALID_ARGUMENT when the token is malformed, tampered with or from another kind.
  absl::StatusOr<int64_t> DecodePageToken(const std::string& kind, const std::string& token) const;

  // Called whenever a task may have become available (job queued or requeued, sample queued).
  void SetTaskAvailableCallback(std::function<void()> callback) {
    task_available_ = std::move(callback);
  }
  void NotifyTaskAvailable() const {
    if (task_available_) task_available_();
  }

  // Sweeps expired leases (jobs and sample tasks) and wakes watchers of changed jobs.
  void SweepExpiredLeases();

  int64_t NowMs() const;

  const ServerOptions& options() const { return options_; }
  storage::JobStore& jobs() { return *jobs_; }
  storage::CatalogStore& catalog() { return *catalog_; }
  storage::BlobStore& blobs() { return *blobs_; }
  EventHub& hub() { return hub_; }
  SampleBroker& samples() { return *samples_; }
  ProgressCoalescer& progress() { return *progress_; }

 private:
  explicit Backend(ServerOptions options);

  const ServerOptions options_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::JobStore> jobs_;
  std::unique_ptr<storage::CatalogStore> catalog_;
  std::unique_ptr<storage::BlobStore> blobs_;
  std::unique_ptr<SampleBroker> samples_;
  std::unique_ptr<ProgressCoalescer> progress_;
  EventHub hub_;
  std::string page_token_key_;            // constant after Open
  std::function<void()> task_available_;  // set once before serving
};

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_BACKEND_H_
