// JobStore: creation with request ids, reads, listing, cancellation and event logs.
#include "storage/job_store.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/crypto.h"
#include "common/status_macros.h"
#include "storage/job_rows.h"
#include "storage/labels.h"

namespace dreambooth::storage {

using internal::kJobColumns;

absl::StatusOr<JobRecord> JobStore::Create(const NewJob& job, int64_t now_ms,
                                           int64_t request_retention_ms) {
  JobRecord created;
  RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    if (!job.request_id.empty()) {
      ASSIGN_OR_RETURN(Statement prune,
                       c.Prepare("DELETE FROM request_ids WHERE create_time_ms < ?"));
      prune.Bind(1, now_ms - request_retention_ms);
      RETURN_IF_ERROR(prune.Run());
      ASSIGN_OR_RETURN(Statement find, c.Prepare("SELECT fingerprint, job_id FROM request_ids "
                                                 "WHERE tenant = ? AND request_id = ?"));
      find.Bind(1, job.tenant).Bind(2, job.request_id);
      ASSIGN_OR_RETURN(bool seen, find.Step());
      if (seen) {
        if (find.ColumnText(0) != job.request_fingerprint) {
          return absl::AlreadyExistsError(absl::StrCat(
              "request_id '", job.request_id, "' was already used for job ", find.ColumnText(1),
              " with a different request; use a new request_id for a different job"));
        }
        ASSIGN_OR_RETURN(created, internal::LoadJob(c, find.ColumnText(1)));
        return absl::OkStatus();
      }
    }
    if (!job.refuse_new_job.empty()) return absl::ResourceExhaustedError(job.refuse_new_job);
    if (job.max_active_jobs_of_tenant > 0) {
      ASSIGN_OR_RETURN(Statement active, c.Prepare("SELECT COUNT(*) FROM jobs WHERE tenant = ? "
                                                   "AND state IN (1, 2)"));
      active.Bind(1, job.tenant);
      ASSIGN_OR_RETURN(bool row, active.Step());
      const int64_t n = row ? active.ColumnInt(0) : 0;
      if (n >= job.max_active_jobs_of_tenant) {
        return absl::ResourceExhaustedError(
            absl::StrCat("tenant '", job.tenant, "' has ", n,
                         " queued or running jobs, its limit (dreamboothd "
                         "--tenant-max-active-jobs); wait for one to end or cancel one"));
      }
    }
    const std::string id = absl::StrCat("job_", RandomHex(8));
    ASSIGN_OR_RETURN(Statement ins,
                     c.Prepare("INSERT INTO jobs (id, spec, base_model, instance_set, "
                               "regularization_set, request_id, state, create_time_ms, "
                               "max_attempts, max_infra_attempts, tenant, num_devices, "
                               "priority, num_nodes, labels, webhook_url, webhook_events, "
                               "webhook_secret) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
    ins.Bind(1, id)
        .BindBlob(2, job.spec)
        .Bind(3, job.base_model)
        .Bind(4, job.instance_set)
        .Bind(5, job.regularization_set)
        .Bind(6, job.request_id)
        .Bind(7, int64_t{static_cast<int>(JobState::kQueued)})
        .Bind(8, now_ms)
        .Bind(9, int64_t{job.max_attempts})
        .Bind(10, int64_t{job.max_infra_attempts})
        .Bind(11, job.tenant)
        .Bind(12, int64_t{job.num_devices})
        .Bind(13, int64_t{job.priority})
        .Bind(14, int64_t{job.num_nodes})
        .Bind(15, LabelsToJson(job.labels))
        .Bind(16, job.webhook.url)
        .Bind(17, int64_t{job.webhook.events})
        .Bind(18, job.webhook.secret);
    RETURN_IF_ERROR(ins.Run());
    if (!job.request_id.empty()) {
      ASSIGN_OR_RETURN(Statement remember,
                       c.Prepare("INSERT INTO request_ids (tenant, request_id, fingerprint, "
                                 "job_id, create_time_ms) VALUES (?,?,?,?,?)"));
      remember.Bind(1, job.tenant)
          .Bind(2, job.request_id)
          .Bind(3, job.request_fingerprint)
          .Bind(4, id)
          .Bind(5, now_ms);
      RETURN_IF_ERROR(remember.Run());
    }
    EventRecord event;
    event.kind = EventKind::kStateChanged;
    event.message = "job queued";
    RETURN_IF_ERROR(internal::AppendEvent(c, id, std::move(event), now_ms).status());
    ASSIGN_OR_RETURN(created, internal::LoadJob(c, id));
    return absl::OkStatus();
  }));
  return created;
}

absl::StatusOr<JobRecord> JobStore::Get(const std::string& job_id) {
  JobRecord job;
  RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(job, internal::LoadJob(c, job_id));
    return absl::OkStatus();
  }));
  return job;
}

absl::StatusOr<JobStore::Page> JobStore::List(const std::string& tenant, JobState state,
                                              int page_size, int64_t cursor) {
  Query query;
  if (state != JobState::kUnspecified) query.states = {state};
  return List(tenant, query, page_size, cursor);
}

absl::StatusOr<JobStore::Page> JobStore::List(const std::string& tenant, const Query& query,
                                              int page_size, int64_t cursor) {
  if (page_size < 1) return absl::InvalidArgumentError("page_size must be >= 1");
  // Conditions with positional parameters, bound below in the same order.
  std::string where = "1";
  if (cursor != 0) absl::StrAppend(&where, query.oldest_first ? " AND seq > ?" : " AND seq < ?");
  if (!tenant.empty()) absl::StrAppend(&where, " AND tenant = ?");
  if (!query.states.empty()) {
    std::vector<std::string> marks(query.states.size(), "?");
    absl::StrAppend(&where, " AND state IN (", absl::StrJoin(marks, ","), ")");
  }
  if (!query.base_model.empty()) absl::StrAppend(&where, " AND base_model = ?");
  for (size_t i = 0; i < query.labels.size(); ++i) {
    absl::StrAppend(&where, " AND json_extract(labels, ?) = ?");
  }
  for (size_t i = 0; i < query.label_keys.size(); ++i) {
    absl::StrAppend(&where, " AND json_type(labels, ?) IS NOT NULL");
  }
  if (query.created_from_ms.has_value()) absl::StrAppend(&where, " AND create_time_ms >= ?");
  if (query.created_to_ms.has_value()) absl::StrAppend(&where, " AND create_time_ms <= ?");
  Page page;
  RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(
        Statement s,
        c.Prepare(absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE ", where, " ORDER BY seq ",
                               query.oldest_first ? "ASC" : "DESC", " LIMIT ?")));
    int n = 0;
    if (cursor != 0) s.Bind(++n, cursor);
    if (!tenant.empty()) s.Bind(++n, tenant);
    for (JobState state : query.states) s.Bind(++n, int64_t{static_cast<int>(state)});
    if (!query.base_model.empty()) s.Bind(++n, query.base_model);
    for (const auto& [key, value] : query.labels) {
      s.Bind(++n, LabelPath(key));
      s.Bind(++n, value);
    }
    for (const std::string& key : query.label_keys) s.Bind(++n, LabelPath(key));
    if (query.created_from_ms.has_value()) s.Bind(++n, *query.created_from_ms);
    if (query.created_to_ms.has_value()) s.Bind(++n, *query.created_to_ms);
    s.Bind(++n, int64_t{page_size} + 1);
    while (true) {
      ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      page.jobs.push_back(internal::ReadJobRow(s));
    }
    return absl::OkStatus();
  }));
  if (static_cast<int>(page.jobs.size()) > page_size) {
    page.jobs.pop_back();
    page.next_cursor = page.jobs.back().seq;
  }
  return page;
}

absl::StatusOr<std::map<JobState, int64_t>> JobStore::CountByState() {
  std::map<JobState, int64_t> counts;
  RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(Statement s, c.Prepare("SELECT state, COUNT(*) FROM jobs GROUP BY state"));
    while (true) {
      ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) return absl::OkStatus();
      counts[static_cast<JobState>(s.ColumnInt(0))] = s.ColumnInt(1);
    }
  }));
  return counts;
}

absl::StatusOr<JobRecord> JobStore::Cancel(const std::string& job_id, int64_t now_ms) {
  JobRecord job;
  RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(job, internal::LoadJob(c, job_id));
    if (IsTerminal(job.state) || job.cancel_requested) return absl::OkStatus();
    ASSIGN_OR_RETURN(Statement s, c.Prepare("UPDATE jobs SET cancel_requested = 1 WHERE id = ?"));
    s.Bind(1, job_id);
    RETURN_IF_ERROR(s.Run());
    if (job.state == JobState::kQueued) {
      RETURN_IF_ERROR(
          internal::SetState(c, job_id, JobState::kCancelled, "cancelled by user", now_ms));
    } else {
      EventRecord event;
      event.kind = EventKind::kLog;
      event.message = "cancellation requested; waiting for the worker to stop";
      RETURN_IF_ERROR(internal::AppendEvent(c, job_id, std::move(event), now_ms).status());
    }
    ASSIGN_OR_RETURN(job, internal::LoadJob(c, job_id));
    return absl::OkStatus();
  }));
  return job;
}

absl::StatusOr<JobRecord> JobStore::Delete(const std::string& job_id) {
  JobRecord job;
  RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(job, internal::LoadJob(c, job_id));
    // Events, checkpoints (and their files) and lease_blobs rows go with the job (ON DELETE
    // CASCADE); request ids name it without a foreign key.
    for (const char* sql :
         {"DELETE FROM request_ids WHERE job_id = ?", "DELETE FROM jobs WHERE id = ?"}) {
      ASSIGN_OR_RETURN(Statement s, c.Prepare(sql));
      s.Bind(1, job_id);
      RETURN_IF_ERROR(s.Run());
    }
    return absl::OkStatus();
  }));
  return job;
}

absl::StatusOr<JobStore::Pruned> JobStore::PruneHistory(int64_t request_ids_before_ms,
                                                        int64_t events_of_jobs_ended_before_ms) {
  Pruned pruned;
  RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(Statement ids, c.Prepare("DELETE FROM request_ids WHERE create_time_ms < ?"));
    ids.Bind(1, request_ids_before_ms);
    RETURN_IF_ERROR(ids.Run());
    pruned.request_ids = c.Changes();
    // States 3, 4, 5: SUCCEEDED, FAILED, CANCELLED.
    ASSIGN_OR_RETURN(Statement events,
                     c.Prepare("DELETE FROM events WHERE job_id IN (SELECT id FROM jobs WHERE "
                               "state IN (3, 4, 5) AND end_time_ms > 0 AND end_time_ms < ?) AND "
                               "sequence < (SELECT last_sequence FROM jobs WHERE "
                               "jobs.id = events.job_id)"));
    events.Bind(1, events_of_jobs_ended_before_ms);
    RETURN_IF_ERROR(events.Run());
    pruned.events = c.Changes();
    // Their settled webhook deliveries go too (with their attempts); pending ones stay.
    ASSIGN_OR_RETURN(Statement deliveries,
                     c.Prepare("DELETE FROM webhook_deliveries WHERE state != 1 AND job_id IN "
                               "(SELECT id FROM jobs WHERE state IN (3, 4, 5) AND end_time_ms > 0 "
                               "AND end_time_ms < ?)"));
    deliveries.Bind(1, events_of_jobs_ended_before_ms);
    RETURN_IF_ERROR(deliveries.Run());
    pruned.webhook_deliveries = c.Changes();
    return absl::OkStatus();
  }));
  return pruned;
}

absl::StatusOr<std::vector<EventRecord>> JobStore::ReadEvents(const std::string& job_id,
                                                              int64_t after_sequence, int limit) {
  std::vector<EventRecord> events;
  RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(Statement s,
                     c.Prepare("SELECT sequence, time_ms, kind, state, stage, step, total, loss, "
                               "learning_rate, images_per_second, eta_seconds, message, attempt "
                               "FROM events WHERE job_id = ? AND sequence > ? ORDER BY sequence "
                               "LIMIT ?"));
    s.Bind(1, job_id).Bind(2, after_sequence).Bind(3, int64_t{limit});
    while (true) {
      ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      EventRecord e;
      e.sequence = s.ColumnInt(0);
      e.time_ms = s.ColumnInt(1);
      e.kind = static_cast<EventKind>(s.ColumnInt(2));
      e.state = static_cast<JobState>(s.ColumnInt(3));
      e.stage = static_cast<int>(s.ColumnInt(4));
      e.step = s.ColumnInt(5);
      e.total = s.ColumnInt(6);
      // A NaN was stored as NULL.
      auto real = [&s](int column) {
        return s.ColumnIsNull(column) ? std::numeric_limits<double>::quiet_NaN()
                                      : s.ColumnDouble(column);
      };
      e.loss = static_cast<float>(real(7));
      e.learning_rate = real(8);
      e.images_per_second = static_cast<float>(real(9));
      e.eta_seconds = static_cast<float>(real(10));
      e.message = s.ColumnText(11);
      e.attempt = static_cast<int>(s.ColumnInt(12));
      events.push_back(std::move(e));
    }
    if (events.empty()) {
      // Distinguish "no new events" from "no such job".
      RETURN_IF_ERROR(internal::LoadJob(c, job_id).status());
    }
    return absl::OkStatus();
  }));
  return events;
}

absl::StatusOr<int64_t> JobStore::CountActiveJobsUsingSet(const std::string& set_id) {
  int64_t count = 0;
  RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(Statement s, c.Prepare("SELECT COUNT(*) FROM jobs WHERE state IN (1, 2) AND "
                                            "(instance_set = ?1 OR regularization_set = ?1)"));
    s.Bind(1, set_id);
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (row) count = s.ColumnInt(0);
    return absl::OkStatus();
  }));
  return count;
}

}  // namespace dreambooth::storage
