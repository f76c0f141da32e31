// Internal to storage/: SQL fragments and row helpers shared by the JobStore's source files.
#ifndef DREAMBOOTH_STORAGE_JOB_ROWS_H_
#define DREAMBOOTH_STORAGE_JOB_ROWS_H_

#include <string>

#include "absl/status/statusor.h"
#include "storage/records.h"
#include "storage/sqlite.h"

namespace dreambooth::storage::internal {

// Column list matching ReadJobRow.
inline constexpr char kJobColumns[] =
    "id, seq, spec, base_model, instance_set, regularization_set, request_id, state, stage, step, "
    "total_steps, create_time_ms, start_time_ms, end_time_ms, attempt, error_attempts, "
    "infra_attempts, max_attempts, max_infra_attempts, error, cancel_requested, worker_id, "
    "lease_expires_ms, last_sequence, tenant, num_devices, priority";

JobRecord ReadJobRow(const Statement& stmt);

// Loads one job by id inside the caller's transaction; NOT_FOUND naming the id.
absl::StatusOr<JobRecord> LoadJob(Connection& c, const std::string& job_id);

// Loads the job leased by a current token; FAILED_PRECONDITION when the token is not current.
absl::StatusOr<JobRecord> LoadLeasedJob(Connection& c, const std::string& token, int64_t now_ms);

// Appends one event to the job's log inside the caller's transaction, assigning sequence, time,
// state (the job's current state) and attempt. Returns the sequence.
absl::StatusOr<int64_t> AppendEvent(Connection& c, const std::string& job_id, EventRecord event,
                                    int64_t now_ms);

// Moves a job to `state` (clearing its lease when leaving RUNNING) and appends a STATE_CHANGED
// event carrying `message`.
absl::Status SetState(Connection& c, const std::string& job_id, JobState state,
                      const std::string& message, int64_t now_ms);

}  // namespace dreambooth::storage::internal

#endif  // DREAMBOOTH_STORAGE_JOB_ROWS_H_
