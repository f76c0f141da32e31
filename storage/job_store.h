// The job queue: jobs, their numbered event logs, fenced leases and committed checkpoints, in
// SQLite (see docs/architecture.md, "A job" and "Who owns what").
//
// Every method takes the current time explicitly (Unix ms) so behaviour is deterministic under
// test. Thread-safe (all state lives in the Database).
//
// Fencing: every worker-side method takes a lease token. A token is current while its job is
// RUNNING under that token and the expiry has not passed; any other token gets
// FAILED_PRECONDITION and nothing is changed.
#ifndef DREAMBOOTH_STORAGE_JOB_STORE_H_
#define DREAMBOOTH_STORAGE_JOB_STORE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/database.h"
#include "storage/labels.h"
#include "storage/records.h"

namespace dreambooth::storage {

class JobStore {
 public:
  // `db` must outlive the store.
  explicit JobStore(Database* db) : db_(db) {}

  // ---- Public API side ----

  // Inserts a QUEUED job (with a STATE_CHANGED event #1). With a request_id seen within
  // `request_retention_ms`: the same fingerprint returns the job created first (unchanged);
  // another fingerprint is ALREADY_EXISTS. Older request ids are forgotten. A new job over the
  // tenant's job.max_active_jobs_of_tenant is RESOURCE_EXHAUSTED naming the limit.
  absl::StatusOr<JobRecord> Create(const NewJob& job, int64_t now_ms, int64_t request_retention_ms);
  // NOT_FOUND naming the id when absent.
  absl::StatusOr<JobRecord> Get(const std::string& job_id);

  struct Page {
    std::vector<JobRecord> jobs;
    // Pass as the cursor of the next page; 0 when this was the last page.
    int64_t next_cursor = 0;
  };
  // Which jobs List returns (every condition holds), in which order.
  struct Query {
    std::vector<JobState> states;            // any of them; empty => any state
    std::string base_model;                  // "" => any
    Labels labels;                           // each label with exactly this value
    std::vector<std::string> label_keys;     // each label present
    std::optional<int64_t> created_from_ms;  // create_time_ms >= this
    std::optional<int64_t> created_to_ms;    // create_time_ms <= this
    bool oldest_first = false;               // else newest first
  };
  // Jobs of `tenant` ("" => every tenant's) matching `query`, after `cursor` (a previous page's
  // next_cursor; 0 => from the first). page_size must be >= 1.
  absl::StatusOr<Page> List(const std::string& tenant, const Query& query, int page_size,
                            int64_t cursor);
  // Newest first, optionally only in `state` (kUnspecified => all).
  absl::StatusOr<Page> List(const std::string& tenant, JobState state, int page_size,
                            int64_t cursor);

  // QUEUED => CANCELLED at once; RUNNING => cancel_requested (the worker sees it on heartbeat);
  // terminal => unchanged. Returns the job after the call.
  absl::StatusOr<JobRecord> Cancel(const std::string& job_id, int64_t now_ms);

  // Deletes the job with its events, checkpoints and request ids, in any state; a RUNNING
  // job's lease ends with it (its worker's next call is FAILED_PRECONDITION). Returns the job as
  // it was; NOT_FOUND naming it when absent.
  absl::StatusOr<JobRecord> Delete(const std::string& job_id);

  struct Pruned {
    int64_t request_ids = 0;
    int64_t events = 0;
    int64_t webhook_deliveries = 0;
  };
  // Forgets request ids created before `request_ids_before_ms`, and deletes the events of jobs
  // that ended before `events_of_jobs_ended_before_ms` except each one's last (terminal) event,
  // and those jobs' webhook deliveries that are no longer PENDING.
  absl::StatusOr<Pruned> PruneHistory(int64_t request_ids_before_ms,
                                      int64_t events_of_jobs_ended_before_ms);

  // Events with sequence > after_sequence, oldest first, at most `limit`.
  absl::StatusOr<std::vector<EventRecord>> ReadEvents(const std::string& job_id,
                                                      int64_t after_sequence, int limit);

  // Number of jobs in each state (every tenant's).
  absl::StatusOr<std::map<JobState, int64_t>> CountByState();

  // Number of QUEUED or RUNNING jobs that use image set `set_id` (instance or regularization).
  absl::StatusOr<int64_t> CountActiveJobsUsingSet(const std::string& set_id);

  // ---- Worker side (leases) ----

  // Claims work for a worker in one BEGIN IMMEDIATE transaction; nullopt when none is eligible.
  // A worker with a `gang_address` first joins the forming gang (a RUNNING job with num_nodes > 1
  // and fewer nodes than that) of highest priority, oldest first, that it can run: a member lease
  // for the next node, valid for ttl_ms. Otherwise it claims the QUEUED job of highest priority,
  // oldest first among equals, whose base model is in `base_models`, that needs at most
  // `device_count` devices, needs one node unless the worker has a gang address, and whose tenant
  // has fewer than `max_running_per_tenant` RUNNING jobs (0: no limit): state RUNNING, attempt
  // + 1, a fresh random token valid for ttl_ms; a gang job's rendezvous is `gang_address`.
  absl::StatusOr<std::optional<Lease>> Claim(const std::string& worker_id,
                                             const std::vector<std::string>& base_models,
                                             int64_t now_ms, int64_t ttl_ms,
                                             int max_running_per_tenant = 0, int device_count = 1,
                                             const std::string& gang_address = {});

  struct HeartbeatResult {
    bool cancel_requested = false;
    int64_t expires_ms = 0;
  };
  // Extends the lease to now + ttl_ms and records coarse progress (stage, step, total; a gang
  // member's progress is not recorded: node 0 reports the job's).
  absl::StatusOr<HeartbeatResult> Heartbeat(const std::string& token, int64_t now_ms,
                                            int64_t ttl_ms, int stage, int64_t step, int64_t total);

  // Returns the job a current token leases (FAILED_PRECONDITION otherwise). Read-only.
  absl::StatusOr<JobRecord> CheckLease(const std::string& token, int64_t now_ms);

  // Appends worker events in order; returns the last sequence. The store assigns sequence, time,
  // state and attempt. PROGRESS events also update the job's stage/step/total. A gang member may
  // append LOG events only (INVALID_ARGUMENT otherwise).
  absl::StatusOr<int64_t> AppendEvents(const std::string& token, int64_t now_ms,
                                       std::vector<EventRecord> events);

  // OK unless `job` was loaded by a gang member's token (JobRecord::gang_node > 0) and `events`
  // has a kind other than LOG (INVALID_ARGUMENT: node 0 reports the job's progress).
  static absl::Status CheckGangMemberEvents(const JobRecord& job,
                                            const std::vector<EventRecord>& events);

  // Ends the attempt successfully: SUCCEEDED, or CANCELLED when cancel was requested. A job that
  // was not cancelled must have a FINAL checkpoint (FAILED_PRECONDITION, nothing changed). A gang
  // member's token ends only that node's part (the job stays RUNNING; returned).
  absl::StatusOr<JobState> Complete(const std::string& token, int64_t now_ms);
  // Ends the attempt with an error. Retryable with budget left (error_attempts < max_attempts)
  // => QUEUED; otherwise FAILED (CANCELLED when cancel was requested). Any node of a gang ends
  // the attempt for all of them (the message names the node); a retryable failure before every
  // node joined (e.g. node 0's rendezvous timed out) counts as an infrastructure loss instead.
  absl::StatusOr<JobState> Fail(const std::string& token, int64_t now_ms, const std::string& error,
                                bool retryable);

  // Gives the lease back (worker shutting down): like a lease expiry, the attempt counts against
  // the infrastructure budget; QUEUED while it lasts, else FAILED (CANCELLED when cancel was
  // requested). `reason` goes to the event log.
  absl::StatusOr<JobState> Release(const std::string& token, int64_t now_ms,
                                   const std::string& reason);

  // Requeues every RUNNING job whose lease, or a gang member's unfinished lease, expired before
  // now_ms (infra budget permitting; else FAILED; CANCELLED when cancel was requested). Returns
  // the ids of the jobs it changed.
  absl::StatusOr<std::vector<std::string>> SweepExpired(int64_t now_ms);

  // ---- Checkpoints ----

  // Records a checkpoint of the leased job (files sorted by path; the caller has checked that
  // every blob exists; a gang member's token is FAILED_PRECONDITION) and appends a CHECKPOINT
  // event. With keep > 0 (SAMPLEABLE and RESUME
  // only), the job's older checkpoints of the same kind beyond the newest `keep` are deleted
  // (their blobs go to the garbage collector) and a LOG event names them.
  absl::StatusOr<CheckpointRecord> CommitCheckpoint(const std::string& token, int64_t now_ms,
                                                    int64_t step, CheckpointKind kind,
                                                    std::vector<CheckpointFileRecord> files,
                                                    int keep = 0);
  // Deletes one checkpoint (NOT_FOUND naming it when absent); returns it as it was.
  absl::StatusOr<CheckpointRecord> DeleteCheckpoint(const std::string& checkpoint_id);
  // Oldest first. NOT_FOUND when the job does not exist.
  absl::StatusOr<std::vector<CheckpointRecord>> ListCheckpoints(const std::string& job_id);
  absl::StatusOr<CheckpointRecord> GetCheckpoint(const std::string& checkpoint_id);
  // The newest checkpoint of the job whose kind is in `kinds`; nullopt when none.
  absl::StatusOr<std::optional<CheckpointRecord>> LatestCheckpoint(
      const std::string& job_id, const std::vector<CheckpointKind>& kinds);

  // The manifest digest of a file list: SHA-256 over "<path>\t<digest>\n" lines, sorted by path.
  static std::string ManifestDigest(const std::vector<CheckpointFileRecord>& sorted_files);

 private:
  Database* const db_;
};

}  // namespace dreambooth::storage

#endif  // DREAMBOOTH_STORAGE_JOB_STORE_H_
