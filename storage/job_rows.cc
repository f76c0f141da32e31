#include "storage/job_rows.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "storage/labels.h"
#include "storage/webhook_rows.h"

namespace dreambooth::storage::internal {

JobRecord ReadJobRow(const Statement& s) {
  JobRecord j;
  j.id = s.ColumnText(0);
  j.seq = s.ColumnInt(1);
  j.spec = s.ColumnText(2);
  j.base_model = s.ColumnText(3);
  j.instance_set = s.ColumnText(4);
  j.regularization_set = s.ColumnText(5);
  j.request_id = s.ColumnText(6);
  j.state = static_cast<JobState>(s.ColumnInt(7));
  j.stage = static_cast<int>(s.ColumnInt(8));
  j.step = s.ColumnInt(9);
  j.total_steps = s.ColumnInt(10);
  j.create_time_ms = s.ColumnInt(11);
  j.start_time_ms = s.ColumnInt(12);
  j.end_time_ms = s.ColumnInt(13);
  j.attempt = static_cast<int>(s.ColumnInt(14));
  j.error_attempts = static_cast<int>(s.ColumnInt(15));
  j.infra_attempts = static_cast<int>(s.ColumnInt(16));
  j.max_attempts = static_cast<int>(s.ColumnInt(17));
  j.max_infra_attempts = static_cast<int>(s.ColumnInt(18));
  j.error = s.ColumnText(19);
  j.cancel_requested = s.ColumnInt(20) != 0;
  j.worker_id = s.ColumnText(21);
  j.lease_expires_ms = s.ColumnInt(22);
  j.last_sequence = s.ColumnInt(23);
  j.tenant = s.ColumnText(24);
  j.num_devices = static_cast<int>(s.ColumnInt(25));
  j.priority = static_cast<int>(s.ColumnInt(26));
  j.num_nodes = static_cast<int>(s.ColumnInt(27));
  j.gang_rendezvous = s.ColumnText(28);
  j.labels = LabelsFromJson(s.ColumnText(29));
  j.webhook_url = s.ColumnText(30);
  j.webhook_events = static_cast<int>(s.ColumnInt(31));
  return j;
}

absl::StatusOr<JobRecord> LoadJob(Connection& c, const std::string& job_id) {
  ASSIGN_OR_RETURN(Statement s,
                   c.Prepare(absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE id = ?")));
  s.Bind(1, job_id);
  ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("job '", job_id, "' not found"));
  return ReadJobRow(s);
}

absl::StatusOr<JobRecord> LoadLeasedJob(Connection& c, const std::string& token, int64_t now_ms) {
  static const absl::Status kStale = absl::FailedPreconditionError(
      "lease token is not current: the lease expired, was taken over by another worker, or the "
      "task already ended; stop working on this task");
  if (token.empty()) return absl::InvalidArgumentError("lease_token is required");
  ASSIGN_OR_RETURN(Statement s, c.Prepare(absl::StrCat("SELECT ", kJobColumns,
                                                       " FROM jobs WHERE lease_token = ?")));
  s.Bind(1, token);
  ASSIGN_OR_RETURN(bool row, s.Step());
  if (row) {
    JobRecord job = ReadJobRow(s);
    if (job.state != JobState::kRunning || job.lease_expires_ms < now_ms) return kStale;
    return job;
  }
  // A gang member's token: its row exists only while the job is RUNNING (SetState drops them).
  ASSIGN_OR_RETURN(Statement m, c.Prepare("SELECT job_id, node_rank, worker_id, lease_expires_ms, "
                                          "done FROM gang_members WHERE lease_token = ?"));
  m.Bind(1, token);
  ASSIGN_OR_RETURN(bool member, m.Step());
  if (!member || m.ColumnInt(3) < now_ms || m.ColumnInt(4) != 0) return kStale;
  ASSIGN_OR_RETURN(JobRecord job, LoadJob(c, m.ColumnText(0)));
  if (job.state != JobState::kRunning) return kStale;
  job.gang_node = static_cast<int>(m.ColumnInt(1));
  job.worker_id = m.ColumnText(2);
  job.lease_expires_ms = m.ColumnInt(3);
  return job;
}

absl::StatusOr<int64_t> AppendEvent(Connection& c, const std::string& job_id, EventRecord e,
                                    int64_t now_ms) {
  ASSIGN_OR_RETURN(Statement bump, c.Prepare("UPDATE jobs SET last_sequence = last_sequence + 1 "
                                             "WHERE id = ? RETURNING last_sequence, state, "
                                             "attempt, webhook_url, webhook_events"));
  bump.Bind(1, job_id);
  ASSIGN_OR_RETURN(bool row, bump.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("job '", job_id, "' not found"));
  e.sequence = bump.ColumnInt(0);
  e.state = static_cast<JobState>(bump.ColumnInt(1));
  e.attempt = static_cast<int>(bump.ColumnInt(2));
  e.time_ms = now_ms;
  const bool has_webhook = !bump.ColumnText(3).empty();
  const int webhook_events = static_cast<int>(bump.ColumnInt(4));
  RETURN_IF_ERROR(bump.Run());  // finish the RETURNING statement
  ASSIGN_OR_RETURN(Statement ins,
                   c.Prepare("INSERT INTO events (job_id, sequence, time_ms, kind, state, stage, "
                             "step, total, loss, learning_rate, images_per_second, eta_seconds, "
                             "message, attempt) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
  ins.Bind(1, job_id)
      .Bind(2, e.sequence)
      .Bind(3, e.time_ms)
      .Bind(4, int64_t{static_cast<int>(e.kind)})
      .Bind(5, int64_t{static_cast<int>(e.state)})
      .Bind(6, int64_t{e.stage})
      .Bind(7, e.step)
      .Bind(8, e.total)
      .Bind(9, double{e.loss})
      .Bind(10, e.learning_rate)
      .Bind(11, double{e.images_per_second})
      .Bind(12, double{e.eta_seconds})
      .Bind(13, e.message)
      .Bind(14, int64_t{e.attempt});
  RETURN_IF_ERROR(ins.Run());
  if (has_webhook) RETURN_IF_ERROR(EnqueueWebhookDelivery(c, job_id, e, webhook_events));
  return e.sequence;
}

absl::Status SetState(Connection& c, const std::string& job_id, JobState state,
                      const std::string& message, int64_t now_ms) {
  const bool terminal = IsTerminal(state);
  const bool running = state == JobState::kRunning;
  ASSIGN_OR_RETURN(Statement s,
                   c.Prepare("UPDATE jobs SET state = ?1, "
                             "lease_token = CASE WHEN ?2 THEN lease_token ELSE NULL END, "
                             "lease_expires_ms = CASE WHEN ?2 THEN lease_expires_ms ELSE 0 END, "
                             "stage = CASE WHEN ?2 THEN stage ELSE 0 END, "
                             "end_time_ms = CASE WHEN ?3 THEN ?4 ELSE end_time_ms END, "
                             "error = CASE WHEN ?3 THEN ?5 ELSE error END WHERE id = ?6"));
  s.Bind(1, int64_t{static_cast<int>(state)})
      .Bind(2, int64_t{running})
      .Bind(3, int64_t{terminal})
      .Bind(4, now_ms)
      .Bind(5, state == JobState::kSucceeded ? std::string() : message)
      .Bind(6, job_id);
  RETURN_IF_ERROR(s.Run());
  if (!running) {
    // A gang's member leases end with the attempt.
    ASSIGN_OR_RETURN(Statement members, c.Prepare("DELETE FROM gang_members WHERE job_id = ?"));
    members.Bind(1, job_id);
    RETURN_IF_ERROR(members.Run());
  }
  EventRecord event;
  event.kind = EventKind::kStateChanged;
  event.message = message;
  return AppendEvent(c, job_id, std::move(event), now_ms).status();
}

absl::StatusOr<JobState> EndAttemptAsInfraLoss(Connection& c, const JobRecord& job,
                                               const std::string& what, int64_t now_ms) {
  ASSIGN_OR_RETURN(Statement s, c.Prepare("UPDATE jobs SET infra_attempts = infra_attempts + 1 "
                                          "WHERE id = ?"));
  s.Bind(1, job.id);
  RETURN_IF_ERROR(s.Run());
  const int used = job.infra_attempts + 1;
  JobState state = JobState::kFailed;
  std::string message;
  if (job.cancel_requested) {
    state = JobState::kCancelled;
    message = "cancelled by user";
  } else if (used < job.max_infra_attempts) {
    state = JobState::kQueued;
    message = absl::StrCat(what, "; requeued (", used, " of ", job.max_infra_attempts,
                           " infrastructure attempts used)");
  } else {
    message = absl::StrCat(what, "; ", used, " infrastructure attempts used, budget exhausted");
  }
  RETURN_IF_ERROR(SetState(c, job.id, state, message, now_ms));
  return state;
}

}  // namespace dreambooth::storage::internal
