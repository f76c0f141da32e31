// The daemon's core: owns the database, the stores, the blob store, the sample broker and the
// event hub, and holds every operation that changes more than one of them: creating and
// cancelling jobs, storing uploaded images, preparing samples, and the worker protocol (lease,
// heartbeat, events, checkpoints, complete/fail/release, shared cache). gRPC services parse a
// request, call one operation and map its result; they read the stores directly only for plain
// lookups. See docs/architecture.md. Thread-safe.
#ifndef DREAMBOOTH_SERVER_SERVICE_CORE_H_
#define DREAMBOOTH_SERVER_SERVICE_CORE_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "dreambooth/v1/job_spec.pb.h"
#include "dreambooth/v1/service.pb.h"
#include "dreambooth/v1/worker_gateway.pb.h"
#include "server/caller.h"
#include "server/event_hub.h"
#include "server/metrics.h"
#include "server/options.h"
#include "server/progress_coalescer.h"
#include "server/rate_limiter.h"
#include "server/sample_broker.h"
#include "server/work_pool.h"
#include "storage/blob_gc.h"
#include "storage/blob_store.h"
#include "storage/catalog_store.h"
#include "storage/database.h"
#include "storage/job_store.h"
#include "storage/key_store.h"
#include "storage/lease_access.h"
#include "storage/tenant_usage.h"
#include "storage/webhook_store.h"
#include "storage/worker_registry.h"

namespace dreambooth::server {

class ServiceCore {
 public:
  // Locks the data dir (FAILED_PRECONDITION naming the holder's pid when another daemon has it)
  // and opens (creating) data_dir/db.sqlite and data_dir/blobs.
  static absl::StatusOr<std::unique_ptr<ServiceCore>> Open(const ServerOptions& options);
  ~ServiceCore();

  // ---- Tenancy: another tenant's resource is NOT_FOUND, with the message of a missing id ----
  absl::StatusOr<storage::JobRecord> GetJobFor(const Caller& caller, const std::string& job_id);
  absl::StatusOr<storage::ImageSetRecord> GetImageSetFor(const Caller& caller,
                                                         const std::string& set_id);
  // The checkpoint and its job.
  absl::StatusOr<storage::CheckpointRecord> GetCheckpointFor(const Caller& caller,
                                                             const std::string& checkpoint_id);

  // Validates the spec (INVALID_ARGUMENT naming the field), checks that its image sets exist
  // (for `caller`) and are non-empty and that its base model is known, then creates the job of
  // the caller's tenant (idempotent on the tenant's request_id). Wakes watchers. A
  // text-to-image job whose instance set has an image without a caption is FAILED_PRECONDITION
  // naming that image. Unknown fields of `spec` are dropped.
  // `labels` are checked (INVALID_ARGUMENT naming "labels") and stored with the job, and so is
  // `webhook` when it has a url (INVALID_ARGUMENT naming the "webhook.*" field).
  absl::StatusOr<storage::JobRecord> CreateJob(const Caller& caller, const v1::JobSpec& spec,
                                               const std::string& request_id,
                                               const storage::Labels& labels = {},
                                               const v1::Webhook& webhook = {});
  // Cancels and wakes watchers.
  absl::StatusOr<storage::JobRecord> CancelJob(const Caller& caller, const std::string& job_id);
  // FAILED_PRECONDITION naming the largest registered worker when none registered within
  // --worker-registration-ttl has `num_devices` devices (one device needs no worker yet), or,
  // for num_nodes > 1, when fewer than num_nodes such workers with a gang address did.
  absl::Status CheckWorkersCanRun(int num_devices, int num_nodes);

  // Deletes an image set no queued or running job uses (FAILED_PRECONDITION otherwise).
  absl::Status DeleteImageSet(const Caller& caller, const std::string& set_id);
  // Deletes a job with its events and checkpoints (a running one loses its lease; its pending
  // progress is dropped) and wakes its watchers, whose streams then end NOT_FOUND.
  absl::Status DeleteJob(const Caller& caller, const std::string& job_id);
  // Deletes one checkpoint of a job of `caller`.
  absl::Status DeleteCheckpoint(const Caller& caller, const std::string& checkpoint_id);
  // The PNG of the caller's job's VALIDATION_IMAGE event `sequence` (NOT_FOUND naming the job
  // and sequence when there is no such event).
  absl::StatusOr<v1::ValidationImage> GetValidationImage(const Caller& caller,
                                                         const std::string& job_id,
                                                         int64_t sequence);
  // Base models registered within --worker-registration-ttl, plus the built-in "tiny".
  absl::StatusOr<v1::ListBaseModelsResponse> ListBaseModels();

  // ---- Retention ----
  // One blob garbage collection (storage/blob_gc.h) with the configured grace period, then
  // drops expired request ids and the events (but the last) of jobs that ended more than
  // --event-retention ago. Logs what it freed.
  absl::StatusOr<storage::GcReport> RunMaintenance();

  // RESOURCE_EXHAUSTED naming --tenant-max-stored-bytes when `caller`'s tenant stores that much
  // already, or would with `adding` more bytes.
  absl::Status CheckStorageQuota(const Caller& caller, int64_t adding);

  // ---- Uploads ----
  // Admits one UploadImages call of `caller`'s tenant, or RESOURCE_EXHAUSTED naming the limit
  // (--tenant-uploads-per-minute) and when to retry.
  absl::Status AdmitUpload(const Caller& caller);
  // The number of images in set `set_id` (NOT_FOUND when there is none for `caller`).
  absl::StatusOr<int> ImageCount(const Caller& caller, const std::string& set_id);
  // Checks that `bytes` is a fully decodable image within the upload limits and stores it in the
  // blob store (`declared_sha256`, when not empty, must match). Errors name the file `name`.
  // Returns the image's record, with `caption` (already normalized: spec::NormalizeCaption).
  absl::StatusOr<storage::StoredImageRecord> StoreUploadedImage(const std::string& name,
                                                                const std::string& bytes,
                                                                const std::string& declared_sha256,
                                                                const std::string& caption);
  // Records stored `images` in set `set_id` of `caller` ("" creates a set of the caller's tenant
  // named `display_name`), within the per-set image limit.
  // A new set (set_id "") gets `created`'s name and labels; with created.request_id seen for the
  // tenant within the request retention (7 days), the images go to the set that upload created.
  absl::StatusOr<storage::ImageSetRecord> AddImages(
      const Caller& caller, const std::string& set_id, const storage::NewImageSet& created,
      const std::vector<storage::StoredImageRecord>& images);

  // ---- Samples ----
  // Checks and resolves `request` against its job (spec::ResolveSampleRequest) and picks the
  // checkpoint (the newest sampleable one when none is named): the task to queue.
  absl::StatusOr<SampleBroker::Task> PrepareSample(const Caller& caller,
                                                   const v1::SampleRequest& request);

  // ---- Worker protocol (WorkerGateway). Tokens of SAMPLE tasks go to the sample broker, the
  // others to the job queue; a stale token changes nothing (FAILED_PRECONDITION). ----
  // Records what the asking worker offers: the base models it advertises and its devices.
  absl::Status RegisterWorker(const v1::LeaseTaskRequest& request);
  // One non-blocking lease attempt for `request` (SAMPLE tasks first); nullopt when no task is
  // queued for it.
  absl::StatusOr<std::optional<v1::Task>> TryLeaseTask(const v1::LeaseTaskRequest& request);
  struct HeartbeatResult {
    bool cancel_requested = false;
    int64_t expires_ms = 0;
  };
  absl::StatusOr<HeartbeatResult> Heartbeat(const std::string& token, v1::JobStage stage,
                                            int64_t step, int64_t total);
  // Appends events to the leased job (progress coalesced); returns the last sequence.
  absl::StatusOr<int64_t> ReportEvents(const std::string& token,
                                       std::vector<storage::EventRecord> events);
  // Commits a checkpoint whose files are all in the blob store with the declared sizes.
  absl::StatusOr<storage::CheckpointRecord> CommitCheckpoint(
      const std::string& token, int64_t step, storage::CheckpointKind kind,
      const std::vector<storage::CheckpointFileRecord>& files);
  // End a lease; each returns the task's resulting state.
  absl::StatusOr<storage::JobState> CompleteTask(const std::string& token);
  absl::StatusOr<storage::JobState> FailTask(const std::string& token, const std::string& error,
                                             bool retryable);
  absl::StatusOr<storage::JobState> ReleaseTask(const std::string& token,
                                                const std::string& reason);
  // Relays a SAMPLE task's output; false when its caller has gone.
  absl::StatusOr<bool> ReportSampleOutput(const std::string& token,
                                          const v1::SampleResponse& output);
  // OK when `token` is a current job or sample lease.
  absl::Status CheckAnyLease(const std::string& token);
  // OK when lease `token`'s task may read blob `digest` (storage::LeaseAccess); NOT_FOUND with the
  // message of a missing blob otherwise, so a lease learns nothing of blobs outside its scope.
  absl::Status CheckLeaseMayRead(const std::string& token, const std::string& digest);
  // Records that `digest` was written under lease `token`.
  absl::Status RecordBlobWrite(const std::string& token, const std::string& digest);
  // The entry `key` of the lease's tenant, if any.
  absl::StatusOr<std::optional<storage::CacheEntryRecord>> GetCacheEntry(const std::string& token,
                                                                         const std::string& key);
  // Writes the entry `key` of the lease's tenant; its items must be stored blobs readable under
  // the lease (FAILED_PRECONDITION naming the first that is not).
  absl::StatusOr<int> PutCacheEntry(const std::string& token, const std::string& key,
                                    const std::vector<storage::CacheItemRecord>& items, bool append,
                                    const std::string& metadata_json);

  // The built-in names ("tiny", "toy"), names a worker advertised, and folders under
  // --model-root.
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

  // Feeds `metrics` (may be null: none) from now on; it must outlive this object.
  void SetMetrics(Metrics* metrics) { metrics_ = metrics; }
  Metrics* metrics() const { return metrics_; }
  // What a metrics scrape reads from the database.
  absl::StatusOr<Metrics::Snapshot> MetricsSnapshot();
  // After an attempt of `job_id` ended: logs "job requeued" or the job's end ("job succeeded",
  // ...) with its ids, and records an end in the metrics (when there are metrics).
  void NoteJobEnd(const std::string& job_id);
  // The blob store changed: the next scrape walks it again.
  void BlobsChanged();
  // OK when the service can do work: the database answers, the data dir has at least
  // --readiness-min-free-mb free, and a worker asked for work within three lease TTLs;
  // UNAVAILABLE naming what is missing otherwise.
  absl::Status CheckReadiness();

  int64_t NowMs() const;

  const ServerOptions& options() const { return options_; }
  storage::JobStore& jobs() { return *jobs_; }
  storage::WebhookStore& webhooks() { return *webhooks_; }
  storage::CatalogStore& catalog() { return *catalog_; }
  storage::KeyStore& keys() { return *keys_; }
  storage::BlobStore& blobs() { return *blobs_; }
  EventHub& hub() { return hub_; }
  SampleBroker& samples() { return *samples_; }
  // Where uploads are decoded and stored (--upload-decode-threads), off gRPC's threads.
  WorkPool& decode_pool() { return *decode_pool_; }
  ProgressCoalescer& progress() { return *progress_; }

 private:
  explicit ServiceCore(ServerOptions options);
  // flock()s data_dir/dreamboothd.lock for the core's lifetime.
  absl::Status LockDataDir();

  // Checks lease `token` of a TRAIN task, flushes the job's coalesced progress, runs `store` on
  // the job and, when it succeeds, wakes the job's watchers.
  template <typename Store>
  auto WithJobLease(const std::string& token, Store store)
      -> decltype(store(std::declval<const storage::JobRecord&>()));
  // OK when `digest` names a stored blob of `size` bytes that lease `scope` may read; `field`
  // names it in errors.
  absl::Status CheckCommittableBlob(const storage::LeaseScope& scope, const std::string& field,
                                    const std::string& digest, int64_t size);
  // What lease `token` covers; FAILED_PRECONDITION when it is not current.
  absl::StatusOr<storage::LeaseScope> ScopeOf(const std::string& token);
  // Fills `task` for a granted job lease (images, resume checkpoint).
  absl::Status BuildTrainTask(const storage::Lease& lease, v1::Task* task);

  const ServerOptions options_;
  int lock_fd_ = -1;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::JobStore> jobs_;
  std::unique_ptr<storage::WebhookStore> webhooks_;
  std::unique_ptr<storage::CatalogStore> catalog_;
  std::unique_ptr<storage::WorkerRegistry> workers_;
  // What RegisterWorker last wrote per worker and when: every LeaseTask registers, but an
  // unchanged report is written at most once a minute (each write is an fsynced transaction).
  struct Registration {
    std::string report;
    int64_t written_ms = 0;
  };
  absl::Mutex registrations_mu_;
  std::map<std::string, Registration> registrations_ ABSL_GUARDED_BY(registrations_mu_);
  std::unique_ptr<storage::KeyStore> keys_;
  std::unique_ptr<storage::LeaseAccess> access_;
  std::unique_ptr<storage::BlobStore> blobs_;
  std::unique_ptr<SampleBroker> samples_;
  std::unique_ptr<ProgressCoalescer> progress_;
  std::unique_ptr<RateLimiter> upload_limiter_;
  std::unique_ptr<WorkPool> decode_pool_;
  EventHub hub_;
  std::string page_token_key_;            // constant after Open
  std::function<void()> task_available_;  // set once before serving
  Metrics* metrics_ = nullptr;            // set once before serving
  absl::Mutex blob_walk_mu_;              // the last blob store walk (MetricsSnapshot)
  int64_t blob_walk_ms_ ABSL_GUARDED_BY(blob_walk_mu_) = 0;
  int64_t blob_bytes_ ABSL_GUARDED_BY(blob_walk_mu_) = 0;
  int64_t blob_count_ ABSL_GUARDED_BY(blob_walk_mu_) = 0;
};

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_SERVICE_CORE_H_
