// Internal to storage/: SQL fragments and row helpers shared by the JobStore's source files.
#ifndef DREAMBOOTH_STORAGE_JOB_ROWS_H_
#define DREAMBOOTH_STORAGE_JOB_ROWS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/records.h"
#include "storage/sqlite.h"

namespace dreambooth::storage::internal {

// Column list matching ReadJobRow.
inline constexpr char kJobColumns[] =
    "id, seq, spec, base_model, instance_set, regularization_set, request_id, state, stage, step, "
    "total_steps, create_time_ms, start_time_ms, end_time_ms, attempt, error_attempts, "
    "infra_attempts, max_attempts, max_infra_attempts, error, cancel_requested, worker_id, "
    "lease_expires_ms, last_sequence, tenant, num_devices, priority, num_nodes, gang_rendezvous, "
    "labels, webhook_url, webhook_events";
// Number of columns in kJobColumns (the first column after them in a SELECT).
inline constexpr int kJobColumnCount = 32;

JobRecord ReadJobRow(const Statement& stmt);

// Loads one job by id inside the caller's transaction; NOT_FOUND naming the id.
absl::StatusOr<JobRecord> LoadJob(Connection& c, const std::string& job_id);

// Loads the job leased by a current token: the job's own (node 0) or a gang member's (see
// JobRecord::gang_node); FAILED_PRECONDITION when the token is not current.
absl::StatusOr<JobRecord> LoadLeasedJob(Connection& c, const std::string& token, int64_t now_ms);

// Appends one event to the job's log inside the caller's transaction, assigning sequence, time,
// state (the job's current state) and attempt. Returns the sequence.
absl::StatusOr<int64_t> AppendEvent(Connection& c, const std::string& job_id, EventRecord event,
                                    int64_t now_ms);

// Moves a job to `state` (clearing its lease when leaving RUNNING) and appends a STATE_CHANGED
// event carrying `message`.
absl::Status SetState(Connection& c, const std::string& job_id, JobState state,
                      const std::string& message, int64_t now_ms);

// Ends the job's attempt as an infrastructure loss (lease expiry, release, a gang that did not
// form): infra_attempts + 1, then QUEUED while the budget lasts, else FAILED (CANCELLED when
// cancel was requested), with `what` and the budget in the STATE_CHANGED message.
absl::StatusOr<JobState> EndAttemptAsInfraLoss(Connection& c, const JobRecord& job,
                                               const std::string& what, int64_t now_ms);

// ---- Gangs (job_gangs.cc) ----

// Joins the forming gang of highest priority, oldest first, that `worker_id` can run (base model
// in `base_models`, at most `device_count` devices per node, not led or joined by this worker):
// a member lease for the next node, with a LOG event; nullopt when there is none.
absl::StatusOr<std::optional<Lease>> JoinGang(Connection& c, const std::string& worker_id,
                                              const std::vector<std::string>& base_models,
                                              int64_t now_ms, int64_t ttl_ms, int device_count);

// Nodes of the job's current attempt that hold a lease: node 0 and every member.
absl::StatusOr<int> GangNodesJoined(Connection& c, const std::string& job_id);

// Ends a member node's part successfully (its lease ends; the job goes on under node 0).
absl::Status FinishGangMember(Connection& c, const JobRecord& member, const std::string& token,
                              int64_t now_ms);

// RUNNING jobs with a member lease that expired before now_ms and did not finish, loaded as that
// member (gang_node, worker_id, lease_expires_ms are the member's), oldest job first.
absl::StatusOr<std::vector<JobRecord>> ExpiredGangMembers(Connection& c, int64_t now_ms);

}  // namespace dreambooth::storage::internal

#endif  // DREAMBOOTH_STORAGE_JOB_ROWS_H_
