// JobStore: leases (claim, heartbeat, events, complete, fail, expiry) and checkpoints.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/crypto.h"
#include "common/status_macros.h"
#include "storage/job_rows.h"
#include "storage/job_store.h"

namespace dreambooth::storage {

using internal::kJobColumns;

// dreambooth.v1.JOB_STAGE_TRAINING: the stage whose progress carries the loss.
constexpr int kTrainingStage = 4;

absl::StatusOr<std::optional<Lease>> JobStore::Claim(const std::string& worker_id,
                                                     const std::vector<std::string>& base_models,
                                                     int64_t now_ms, int64_t ttl_ms,
                                                     int max_running_per_tenant, int device_count,
                                                     const std::string& gang_address) {
  std::optional<Lease> lease;
  if (base_models.empty()) return lease;
  RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    if (!gang_address.empty()) {
      ASSIGN_OR_RETURN(lease,
                       internal::JoinGang(c, worker_id, base_models, now_ms, ttl_ms, device_count));
      if (lease.has_value()) return absl::OkStatus();
    }
    std::vector<std::string> marks(base_models.size(), "?");
    // UPDATE ... WHERE seq = (SELECT ... LIMIT 1) RETURNING: SQLite's stand-in for SKIP LOCKED;
    // the surrounding BEGIN IMMEDIATE makes the select and the update one atomic step.
    ASSIGN_OR_RETURN(
        Statement s,
        c.Prepare(absl::StrCat(
            "UPDATE jobs SET state = 2, attempt = attempt + 1, lease_token = ?1, "
            "lease_expires_ms = ?2, worker_id = ?3, stage = 0, "
            "start_time_ms = CASE WHEN start_time_ms = 0 THEN ?4 ELSE start_time_ms END, "
            "gang_rendezvous = CASE WHEN num_nodes > 1 THEN ?7 ELSE '' END "
            "WHERE seq = (SELECT seq FROM jobs q WHERE state = 1 AND (?5 = 0 OR (SELECT COUNT(*) "
            "FROM jobs r WHERE r.tenant = q.tenant AND r.state = 2) < ?5) "
            "AND num_devices <= ?6 AND (num_nodes = 1 OR ?7 != '') AND base_model IN (",
            absl::StrJoin(marks, ","), ") ORDER BY priority DESC, seq LIMIT 1) RETURNING ",
            kJobColumns)));
    Lease granted;
    granted.token = absl::StrCat("lt_", RandomHex(16));
    granted.expires_ms = now_ms + ttl_ms;
    s.Bind(1, granted.token).Bind(2, granted.expires_ms).Bind(3, worker_id).Bind(4, now_ms);
    s.Bind(5, int64_t{max_running_per_tenant}).Bind(6, int64_t{device_count});
    s.Bind(7, gang_address);
    for (size_t i = 0; i < base_models.size(); ++i) {
      s.Bind(static_cast<int>(i) + 8, base_models[i]);
    }
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return absl::OkStatus();
    granted.job = internal::ReadJobRow(s);
    RETURN_IF_ERROR(s.Run());
    EventRecord event;
    event.kind = EventKind::kStateChanged;
    event.message = absl::StrCat("attempt ", granted.job.attempt, " started on worker ", worker_id);
    if (granted.job.num_nodes > 1) {
      absl::StrAppend(&event.message, " (node 0 of ", granted.job.num_nodes, ", rendezvous ",
                      gang_address, "; waiting for ", granted.job.num_nodes - 1,
                      " more worker(s) to join)");
    }
    ASSIGN_OR_RETURN(granted.job.last_sequence,
                     internal::AppendEvent(c, granted.job.id, std::move(event), now_ms));
    lease = std::move(granted);
    return absl::OkStatus();
  }));
  return lease;
}

absl::StatusOr<JobStore::HeartbeatResult> JobStore::Heartbeat(const std::string& token,
                                                              int64_t now_ms, int64_t ttl_ms,
                                                              int stage, int64_t step,
                                                              int64_t total) {
  HeartbeatResult result;
  RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(JobRecord job, internal::LoadLeasedJob(c, token, now_ms));
    result.cancel_requested = job.cancel_requested;
    result.expires_ms = now_ms + ttl_ms;
    if (job.gang_node > 0) {
      ASSIGN_OR_RETURN(Statement m, c.Prepare("UPDATE gang_members SET lease_expires_ms = ? "
                                              "WHERE lease_token = ?"));
      m.Bind(1, result.expires_ms).Bind(2, token);
      return m.Run();
    }
    ASSIGN_OR_RETURN(Statement s,
                     c.Prepare("UPDATE jobs SET lease_expires_ms = ?, "
                               "stage = CASE WHEN ? > 0 THEN ? ELSE stage END, "
                               "step = CASE WHEN ? > 0 THEN ? ELSE step END, "
                               "total_steps = CASE WHEN ? > 0 THEN ? ELSE total_steps END "
                               "WHERE id = ?"));
    s.Bind(1, result.expires_ms)
        .Bind(2, int64_t{stage})
        .Bind(3, int64_t{stage})
        .Bind(4, total)
        .Bind(5, step)
        .Bind(6, total)
        .Bind(7, total)
        .Bind(8, job.id);
    return s.Run();
  }));
  return result;
}

absl::StatusOr<JobRecord> JobStore::CheckLease(const std::string& token, int64_t now_ms) {
  JobRecord job;
  RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(job, internal::LoadLeasedJob(c, token, now_ms));
    return absl::OkStatus();
  }));
  return job;
}

absl::StatusOr<int64_t> JobStore::AppendEvents(const std::string& token, int64_t now_ms,
                                               std::vector<EventRecord> events) {
  int64_t last = 0;
  RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(JobRecord job, internal::LoadLeasedJob(c, token, now_ms));
    last = job.last_sequence;
    RETURN_IF_ERROR(CheckGangMemberEvents(job, events));
    const EventRecord* progress = nullptr;
    for (EventRecord& e : events) {
      if (e.kind == EventKind::kProgress) progress = &e;
    }
    if (progress != nullptr) {
      ASSIGN_OR_RETURN(Statement s, c.Prepare("UPDATE jobs SET stage = ?, step = ?, "
                                              "total_steps = ? WHERE id = ?"));
      s.Bind(1, int64_t{progress->stage})
          .Bind(2, progress->step)
          .Bind(3, progress->total)
          .Bind(4, job.id);
      RETURN_IF_ERROR(s.Run());
    }
    for (EventRecord& e : events) {
      ASSIGN_OR_RETURN(last, internal::AppendEvent(c, job.id, std::move(e), now_ms));
    }
    return absl::OkStatus();
  }));
  return last;
}

absl::Status JobStore::CheckGangMemberEvents(const JobRecord& job,
                                             const std::vector<EventRecord>& events) {
  if (job.gang_node == 0) return absl::OkStatus();
  for (const EventRecord& e : events) {
    if (e.kind == EventKind::kLog) continue;
    return absl::InvalidArgumentError(
        absl::StrCat("node ", job.gang_node, " of job ", job.id,
                     "'s gang may report LOG events only; node 0 reports the job's progress"));
  }
  return absl::OkStatus();
}

absl::StatusOr<JobState> JobStore::Complete(const std::string& token, int64_t now_ms) {
  JobState state = JobState::kUnspecified;
  RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(JobRecord job, internal::LoadLeasedJob(c, token, now_ms));
    if (job.gang_node > 0) {
      state = job.state;
      return internal::FinishGangMember(c, job, token, now_ms);
    }
    if (!job.cancel_requested) {
      ASSIGN_OR_RETURN(Statement final_checkpoint,
                       c.Prepare("SELECT EXISTS (SELECT 1 FROM checkpoints WHERE job_id = ? AND "
                                 "kind = ?)"));
      final_checkpoint.Bind(1, job.id).Bind(2, int64_t{static_cast<int>(CheckpointKind::kFinal)});
      ASSIGN_OR_RETURN(bool row, final_checkpoint.Step());
      if (!row || final_checkpoint.ColumnInt(0) == 0) {
        return absl::FailedPreconditionError(
            absl::StrCat("job ", job.id,
                         " has no FINAL checkpoint: commit one "
                         "(CommitCheckpoint kind=FINAL) before CompleteTask"));
      }
    }
    state = job.cancel_requested ? JobState::kCancelled : JobState::kSucceeded;
    return internal::SetState(c, job.id, state,
                              job.cancel_requested ? "cancelled by user" : "job succeeded", now_ms);
  }));
  return state;
}

absl::StatusOr<JobState> JobStore::Fail(const std::string& token, int64_t now_ms,
                                        const std::string& error, bool retryable) {
  JobState state = JobState::kUnspecified;
  RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(JobRecord job, internal::LoadLeasedJob(c, token, now_ms));
    const std::string what = job.num_nodes > 1 ? absl::StrCat("node ", job.gang_node, " (worker ",
                                                              job.worker_id, "): ", error)
                                               : error;
    if (job.num_nodes > 1 && retryable) {
      ASSIGN_OR_RETURN(int joined, internal::GangNodesJoined(c, job.id));
      if (joined < job.num_nodes) {
        // Not every node came: a capacity problem, not the job's.
        ASSIGN_OR_RETURN(state,
                         internal::EndAttemptAsInfraLoss(
                             c, job,
                             absl::StrCat("attempt ", job.attempt, "'s gang did not form (", joined,
                                          " of ", job.num_nodes, " nodes joined): ", what),
                             now_ms));
        return absl::OkStatus();
      }
    }
    ASSIGN_OR_RETURN(Statement s, c.Prepare("UPDATE jobs SET error_attempts = error_attempts + 1 "
                                            "WHERE id = ?"));
    s.Bind(1, job.id);
    RETURN_IF_ERROR(s.Run());
    const int used = job.error_attempts + 1;
    std::string message;
    if (job.cancel_requested) {
      state = JobState::kCancelled;
      message = "cancelled by user";
    } else if (retryable && used < job.max_attempts) {
      state = JobState::kQueued;
      message = absl::StrCat("attempt ", job.attempt, " failed (", used, " of ", job.max_attempts,
                             " error attempts used), retrying: ", what);
    } else {
      state = JobState::kFailed;
      message = retryable ? absl::StrCat(what, " (after ", used, " error attempts)") : what;
    }
    return internal::SetState(c, job.id, state, message, now_ms);
  }));
  return state;
}

absl::StatusOr<JobState> JobStore::Release(const std::string& token, int64_t now_ms,
                                           const std::string& reason) {
  JobState state = JobState::kUnspecified;
  RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(JobRecord job, internal::LoadLeasedJob(c, token, now_ms));
    ASSIGN_OR_RETURN(state, internal::EndAttemptAsInfraLoss(
                                c, job,
                                absl::StrCat("worker ", job.worker_id, " released attempt ",
                                             job.attempt, " (", reason, ")"),
                                now_ms));
    return absl::OkStatus();
  }));
  return state;
}

absl::StatusOr<std::vector<std::string>> JobStore::SweepExpired(int64_t now_ms) {
  std::vector<std::string> changed;
  RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    std::vector<JobRecord> expired;
    {
      ASSIGN_OR_RETURN(Statement s,
                       c.Prepare(absl::StrCat("SELECT ", kJobColumns,
                                              " FROM jobs WHERE state = 2 "
                                              "AND lease_expires_ms < ? ORDER BY seq")));
      s.Bind(1, now_ms);
      while (true) {
        ASSIGN_OR_RETURN(bool row, s.Step());
        if (!row) break;
        expired.push_back(internal::ReadJobRow(s));
      }
    }
    ASSIGN_OR_RETURN(std::vector<JobRecord> members, internal::ExpiredGangMembers(c, now_ms));
    for (JobRecord& member : members) {
      const bool seen = std::any_of(expired.begin(), expired.end(),
                                    [&](const JobRecord& j) { return j.id == member.id; });
      if (!seen) expired.push_back(std::move(member));
    }
    for (const JobRecord& job : expired) {
      EventRecord lost;
      lost.kind = EventKind::kLeaseLost;
      lost.message =
          absl::StrCat("lease of attempt ", job.attempt, " on worker ", job.worker_id, " expired");
      if (job.num_nodes > 1) {
        absl::StrAppend(&lost.message, " (node ", job.gang_node, " of ", job.num_nodes,
                        "; the attempt ends on every node)");
      }
      RETURN_IF_ERROR(internal::AppendEvent(c, job.id, std::move(lost), now_ms).status());
      RETURN_IF_ERROR(internal::EndAttemptAsInfraLoss(c, job, "lease lost", now_ms).status());
      changed.push_back(job.id);
    }
    return absl::OkStatus();
  }));
  return changed;
}

std::string JobStore::ManifestDigest(const std::vector<CheckpointFileRecord>& sorted_files) {
  Sha256 hasher;
  for (const auto& f : sorted_files) hasher.Update(absl::StrCat(f.path, "\t", f.digest, "\n"));
  return hasher.HexDigest();
}

absl::StatusOr<CheckpointRecord> JobStore::CommitCheckpoint(const std::string& token,
                                                            int64_t now_ms, int64_t step,
                                                            CheckpointKind kind,
                                                            std::vector<CheckpointFileRecord> files,
                                                            int keep) {
  std::sort(files.begin(), files.end(),
            [](const auto& a, const auto& b) { return a.path < b.path; });
  CheckpointRecord ckpt;
  RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(JobRecord job, internal::LoadLeasedJob(c, token, now_ms));
    if (job.gang_node > 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("node ", job.gang_node, " of job ", job.id,
                       "'s gang may not commit checkpoints; node 0 commits them"));
    }
    ckpt.id = absl::StrCat("ckpt_", RandomHex(8));
    ckpt.job_id = job.id;
    ckpt.step = step;
    ckpt.kind = kind;
    ckpt.attempt = job.attempt;
    ckpt.create_time_ms = now_ms;
    ckpt.files = files;
    ckpt.manifest_digest = ManifestDigest(files);
    ASSIGN_OR_RETURN(Statement ins,
                     c.Prepare("INSERT INTO checkpoints (id, job_id, seq, step, kind, attempt, "
                               "create_time_ms, manifest_digest) VALUES (?1, ?2, "
                               "(SELECT COALESCE(MAX(seq), 0) + 1 FROM checkpoints), ?3, ?4, ?5, "
                               "?6, ?7)"));
    ins.Bind(1, ckpt.id)
        .Bind(2, ckpt.job_id)
        .Bind(3, step)
        .Bind(4, int64_t{static_cast<int>(kind)})
        .Bind(5, int64_t{ckpt.attempt})
        .Bind(6, now_ms)
        .Bind(7, ckpt.manifest_digest);
    RETURN_IF_ERROR(ins.Run());
    // The metrics the job reported at this step (its progress is flushed before a commit).
    ASSIGN_OR_RETURN(Statement metrics,
                     c.Prepare("UPDATE checkpoints SET (loss, learning_rate) = (SELECT loss, "
                               "learning_rate FROM events WHERE job_id = ?1 AND kind = ?2 AND "
                               "stage = ?3 AND step = ?4 ORDER BY sequence DESC LIMIT 1) "
                               "WHERE id = ?5"));
    metrics.Bind(1, job.id)
        .Bind(2, int64_t{static_cast<int>(EventKind::kProgress)})
        .Bind(3, int64_t{kTrainingStage})
        .Bind(4, step)
        .Bind(5, ckpt.id);
    RETURN_IF_ERROR(metrics.Run());
    for (const auto& f : files) {
      ASSIGN_OR_RETURN(Statement s, c.Prepare("INSERT INTO checkpoint_files (checkpoint_id, path, "
                                              "digest, size_bytes) VALUES (?,?,?,?)"));
      s.Bind(1, ckpt.id).Bind(2, f.path).Bind(3, f.digest).Bind(4, f.size_bytes);
      RETURN_IF_ERROR(s.Run());
    }
    EventRecord event;
    event.kind = EventKind::kCheckpoint;
    event.step = step;
    event.message = ckpt.id;
    RETURN_IF_ERROR(internal::AppendEvent(c, job.id, std::move(event), now_ms).status());
    if (keep <= 0 || kind == CheckpointKind::kFinal) return absl::OkStatus();
    ASSIGN_OR_RETURN(Statement prune,
                     c.Prepare("DELETE FROM checkpoints WHERE job_id = ?1 AND kind = ?2 AND seq "
                               "NOT IN (SELECT seq FROM checkpoints WHERE job_id = ?1 AND "
                               "kind = ?2 ORDER BY seq DESC LIMIT ?3) RETURNING id"));
    prune.Bind(1, job.id).Bind(2, int64_t{static_cast<int>(kind)}).Bind(3, int64_t{keep});
    std::vector<std::string> pruned;
    while (true) {
      ASSIGN_OR_RETURN(bool row, prune.Step());
      if (!row) break;
      pruned.push_back(prune.ColumnText(0));
    }
    if (pruned.empty()) return absl::OkStatus();
    EventRecord log;
    log.kind = EventKind::kLog;
    log.step = step;
    log.message = absl::StrCat("deleted ", absl::StrJoin(pruned, ", "), " (keeping the newest ",
                               keep, " ", CheckpointKindName(kind), " checkpoints)");
    return internal::AppendEvent(c, job.id, std::move(log), now_ms).status();
  }));
  return ckpt;
}

absl::StatusOr<CheckpointRecord> JobStore::DeleteCheckpoint(const std::string& checkpoint_id) {
  ASSIGN_OR_RETURN(CheckpointRecord ckpt, GetCheckpoint(checkpoint_id));
  RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(Statement s, c.Prepare("DELETE FROM checkpoints WHERE id = ?"));
    s.Bind(1, checkpoint_id);
    return s.Run();
  }));
  return ckpt;
}

namespace {

absl::Status LoadFiles(Connection& c, CheckpointRecord* ckpt) {
  ASSIGN_OR_RETURN(Statement s, c.Prepare("SELECT path, digest, size_bytes FROM checkpoint_files "
                                          "WHERE checkpoint_id = ? ORDER BY path"));
  s.Bind(1, ckpt->id);
  while (true) {
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return absl::OkStatus();
    ckpt->files.push_back({s.ColumnText(0), s.ColumnText(1), s.ColumnInt(2)});
  }
}

constexpr char kCheckpointColumns[] =
    "id, job_id, step, kind, attempt, create_time_ms, manifest_digest, loss, learning_rate, seq";

CheckpointRecord ReadCheckpointRow(const Statement& s) {
  CheckpointRecord c;
  c.id = s.ColumnText(0);
  c.job_id = s.ColumnText(1);
  c.step = s.ColumnInt(2);
  c.kind = static_cast<CheckpointKind>(s.ColumnInt(3));
  c.attempt = static_cast<int>(s.ColumnInt(4));
  c.create_time_ms = s.ColumnInt(5);
  c.manifest_digest = s.ColumnText(6);
  if (!s.ColumnIsNull(7)) c.loss = s.ColumnDouble(7);
  if (!s.ColumnIsNull(8)) c.learning_rate = s.ColumnDouble(8);
  c.seq = s.ColumnInt(9);
  return c;
}

}  // namespace

absl::StatusOr<std::vector<CheckpointRecord>> JobStore::ListCheckpoints(const std::string& job_id) {
  std::vector<CheckpointRecord> out;
  RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    RETURN_IF_ERROR(internal::LoadJob(c, job_id).status());
    ASSIGN_OR_RETURN(Statement s, c.Prepare(absl::StrCat("SELECT ", kCheckpointColumns,
                                                         " FROM checkpoints WHERE job_id = ? "
                                                         "ORDER BY seq")));
    s.Bind(1, job_id);
    while (true) {
      ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      out.push_back(ReadCheckpointRow(s));
    }
    for (auto& ckpt : out) RETURN_IF_ERROR(LoadFiles(c, &ckpt));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<CheckpointRecord> JobStore::GetCheckpoint(const std::string& checkpoint_id) {
  CheckpointRecord out;
  RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(Statement s, c.Prepare(absl::StrCat("SELECT ", kCheckpointColumns,
                                                         " FROM checkpoints WHERE id = ?")));
    s.Bind(1, checkpoint_id);
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) {
      return absl::NotFoundError(absl::StrCat("checkpoint '", checkpoint_id, "' not found"));
    }
    out = ReadCheckpointRow(s);
    return LoadFiles(c, &out);
  }));
  return out;
}

absl::StatusOr<std::optional<CheckpointRecord>> JobStore::LatestCheckpoint(
    const std::string& job_id, const std::vector<CheckpointKind>& kinds) {
  std::optional<CheckpointRecord> out;
  RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(Statement s, c.Prepare(absl::StrCat("SELECT ", kCheckpointColumns,
                                                         " FROM checkpoints WHERE job_id = ? "
                                                         "ORDER BY seq DESC")));
    s.Bind(1, job_id);
    while (true) {
      ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) return absl::OkStatus();
      CheckpointRecord ckpt = ReadCheckpointRow(s);
      if (std::find(kinds.begin(), kinds.end(), ckpt.kind) == kinds.end()) continue;
      RETURN_IF_ERROR(LoadFiles(c, &ckpt));
      out = std::move(ckpt);
      return absl::OkStatus();
    }
  }));
  return out;
}

}  // namespace dreambooth::storage
