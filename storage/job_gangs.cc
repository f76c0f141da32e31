// JobStore internals for multi-node gangs: member leases of a RUNNING job with num_nodes > 1.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/crypto.h"
#include "common/status_macros.h"
#include "storage/job_rows.h"

namespace dreambooth::storage::internal {

absl::StatusOr<std::optional<Lease>> JoinGang(Connection& c, const std::string& worker_id,
                                              const std::vector<std::string>& base_models,
                                              int64_t now_ms, int64_t ttl_ms, int device_count) {
  std::optional<Lease> lease;
  std::vector<std::string> marks(base_models.size(), "?");
  ASSIGN_OR_RETURN(
      Statement find,
      c.Prepare(absl::StrCat(
          "SELECT ", kJobColumns,
          ", (SELECT COUNT(*) FROM gang_members g WHERE g.job_id = j.id) FROM jobs j "
          "WHERE state = 2 AND num_nodes > 1 AND "
          "(SELECT COUNT(*) FROM gang_members g WHERE g.job_id = j.id) < num_nodes - 1 "
          "AND worker_id != ?1 AND num_devices <= ?2 AND NOT EXISTS (SELECT 1 FROM "
          "gang_members g WHERE g.job_id = j.id AND g.worker_id = ?1) AND base_model IN (",
          absl::StrJoin(marks, ","), ") ORDER BY priority DESC, seq LIMIT 1")));
  find.Bind(1, worker_id).Bind(2, int64_t{device_count});
  for (size_t i = 0; i < base_models.size(); ++i) {
    find.Bind(static_cast<int>(i) + 3, base_models[i]);
  }
  ASSIGN_OR_RETURN(bool row, find.Step());
  if (!row) return lease;
  Lease granted;
  granted.job = ReadJobRow(find);
  granted.job.gang_node = static_cast<int>(find.ColumnInt(kJobColumnCount)) + 1;
  granted.job.worker_id = worker_id;
  granted.token = absl::StrCat("lt_", RandomHex(16));
  granted.expires_ms = now_ms + ttl_ms;
  granted.job.lease_expires_ms = granted.expires_ms;
  ASSIGN_OR_RETURN(Statement insert,
                   c.Prepare("INSERT INTO gang_members (job_id, node_rank, worker_id, lease_token, "
                             "lease_expires_ms) VALUES (?, ?, ?, ?, ?)"));
  insert.Bind(1, granted.job.id)
      .Bind(2, int64_t{granted.job.gang_node})
      .Bind(3, worker_id)
      .Bind(4, granted.token)
      .Bind(5, granted.expires_ms);
  RETURN_IF_ERROR(insert.Run());
  const int joined = granted.job.gang_node + 1;
  EventRecord event;
  event.kind = EventKind::kLog;
  event.message =
      absl::StrCat("attempt ", granted.job.attempt, ": node ", granted.job.gang_node, " of ",
                   granted.job.num_nodes, " joined on worker ", worker_id,
                   joined == granted.job.num_nodes
                       ? "; the gang is complete"
                       : absl::StrCat("; waiting for ", granted.job.num_nodes - joined, " more"));
  ASSIGN_OR_RETURN(granted.job.last_sequence,
                   AppendEvent(c, granted.job.id, std::move(event), now_ms));
  lease = std::move(granted);
  return lease;
}

absl::StatusOr<int> GangNodesJoined(Connection& c, const std::string& job_id) {
  ASSIGN_OR_RETURN(Statement s, c.Prepare("SELECT COUNT(*) FROM gang_members WHERE job_id = ?"));
  s.Bind(1, job_id);
  ASSIGN_OR_RETURN(bool row, s.Step());
  return 1 + (row ? static_cast<int>(s.ColumnInt(0)) : 0);
}

absl::Status FinishGangMember(Connection& c, const JobRecord& member, const std::string& token,
                              int64_t now_ms) {
  ASSIGN_OR_RETURN(Statement s,
                   c.Prepare("UPDATE gang_members SET done = 1 WHERE lease_token = ?"));
  s.Bind(1, token);
  RETURN_IF_ERROR(s.Run());
  EventRecord event;
  event.kind = EventKind::kLog;
  event.message = absl::StrCat("node ", member.gang_node, " (worker ", member.worker_id,
                               ") finished its part of attempt ", member.attempt);
  return AppendEvent(c, member.id, std::move(event), now_ms).status();
}

absl::StatusOr<std::vector<JobRecord>> ExpiredGangMembers(Connection& c, int64_t now_ms) {
  struct Member {
    std::string job_id;
    int node = 0;
    std::string worker_id;
    int64_t expires_ms = 0;
  };
  std::vector<Member> members;
  {
    ASSIGN_OR_RETURN(Statement s,
                     c.Prepare("SELECT g.job_id, g.node_rank, g.worker_id, g.lease_expires_ms "
                               "FROM gang_members g JOIN jobs j ON j.id = g.job_id "
                               "WHERE j.state = 2 AND g.done = 0 AND g.lease_expires_ms < ? "
                               "ORDER BY j.seq, g.node_rank"));
    s.Bind(1, now_ms);
    while (true) {
      ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      if (!members.empty() && members.back().job_id == s.ColumnText(0)) continue;
      members.push_back(
          {s.ColumnText(0), static_cast<int>(s.ColumnInt(1)), s.ColumnText(2), s.ColumnInt(3)});
    }
  }
  std::vector<JobRecord> out;
  for (const Member& m : members) {
    ASSIGN_OR_RETURN(JobRecord job, LoadJob(c, m.job_id));
    job.gang_node = m.node;
    job.worker_id = m.worker_id;
    job.lease_expires_ms = m.expires_ms;
    out.push_back(std::move(job));
  }
  return out;
}

}  // namespace dreambooth::storage::internal
