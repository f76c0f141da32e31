#include "storage/webhook_store.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace dreambooth::storage {
namespace {

constexpr char kDeliveryColumns[] =
    "d.seq, d.id, d.job_id, d.event_type, d.event_sequence, d.body, d.state, d.create_time_ms, "
    "d.next_attempt_ms";

WebhookDeliveryRecord ReadDelivery(const Statement& s) {
  WebhookDeliveryRecord d;
  d.seq = s.ColumnInt(0);
  d.id = s.ColumnText(1);
  d.job_id = s.ColumnText(2);
  d.event_type = static_cast<WebhookEventType>(s.ColumnInt(3));
  d.event_sequence = s.ColumnInt(4);
  d.body = s.ColumnText(5);
  d.state = static_cast<WebhookDeliveryState>(s.ColumnInt(6));
  d.create_time_ms = s.ColumnInt(7);
  d.next_attempt_ms = s.ColumnInt(8);
  return d;
}

absl::Status LoadAttempts(Connection& c, WebhookDeliveryRecord* d) {
  ASSIGN_OR_RETURN(Statement s, c.Prepare("SELECT number, start_time_ms, duration_ms, "
                                          "http_status, error FROM webhook_attempts WHERE "
                                          "delivery_seq = ? ORDER BY number"));
  s.Bind(1, d->seq);
  while (true) {
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return absl::OkStatus();
    WebhookAttemptRecord a;
    a.number = static_cast<int>(s.ColumnInt(0));
    a.start_time_ms = s.ColumnInt(1);
    a.duration_ms = s.ColumnInt(2);
    a.http_status = static_cast<int>(s.ColumnInt(3));
    a.error = s.ColumnText(4);
    d->attempts.push_back(std::move(a));
  }
}

}  // namespace

absl::StatusOr<std::optional<WebhookTask>> WebhookStore::ClaimDue(int64_t now_ms,
                                                                  int64_t claim_ms) {
  std::optional<WebhookTask> task;
  // Most polls find nothing due: look with a reader before taking the writer.
  bool any_due = false;
  RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(Statement s, c.Prepare("SELECT 1 FROM webhook_deliveries WHERE state = ? "
                                            "AND next_attempt_ms <= ? LIMIT 1"));
    s.Bind(1, int64_t{static_cast<int>(WebhookDeliveryState::kPending)}).Bind(2, now_ms);
    ASSIGN_OR_RETURN(any_due, s.Step());
    return absl::OkStatus();
  }));
  if (!any_due) return task;
  RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(Statement s,
                     c.Prepare(absl::StrCat(
                         "SELECT ", kDeliveryColumns,
                         ", j.webhook_url, j.webhook_secret FROM webhook_deliveries d "
                         "JOIN jobs j ON j.id = d.job_id WHERE d.state = ? AND "
                         "d.next_attempt_ms <= ? ORDER BY d.next_attempt_ms, d.seq LIMIT 1")));
    s.Bind(1, int64_t{static_cast<int>(WebhookDeliveryState::kPending)}).Bind(2, now_ms);
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return absl::OkStatus();
    WebhookTask t;
    t.delivery = ReadDelivery(s);
    t.url = s.ColumnText(9);
    t.secret = s.ColumnText(10);
    RETURN_IF_ERROR(s.Run());
    ASSIGN_OR_RETURN(Statement claim, c.Prepare("UPDATE webhook_deliveries SET next_attempt_ms = ? "
                                                "WHERE seq = ?"));
    claim.Bind(1, now_ms + claim_ms).Bind(2, t.delivery.seq);
    RETURN_IF_ERROR(claim.Run());
    RETURN_IF_ERROR(LoadAttempts(c, &t.delivery));
    t.delivery.next_attempt_ms = now_ms + claim_ms;
    task = std::move(t);
    return absl::OkStatus();
  }));
  return task;
}

absl::Status WebhookStore::RecordAttempt(int64_t seq, const WebhookAttemptRecord& attempt,
                                         WebhookDeliveryState state, int64_t next_attempt_ms) {
  return db_->Write([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(Statement up, c.Prepare("UPDATE webhook_deliveries SET state = ?, "
                                             "next_attempt_ms = ?, attempts = attempts + 1 "
                                             "WHERE seq = ?"));
    up.Bind(1, int64_t{static_cast<int>(state)})
        .Bind(2, state == WebhookDeliveryState::kPending ? next_attempt_ms : int64_t{0})
        .Bind(3, seq);
    RETURN_IF_ERROR(up.Run());
    if (c.Changes() == 0) return absl::OkStatus();  // deleted with its job
    ASSIGN_OR_RETURN(Statement ins, c.Prepare("INSERT OR REPLACE INTO webhook_attempts "
                                              "(delivery_seq, number, start_time_ms, "
                                              "duration_ms, http_status, error) VALUES "
                                              "(?,?,?,?,?,?)"));
    ins.Bind(1, seq)
        .Bind(2, int64_t{attempt.number})
        .Bind(3, attempt.start_time_ms)
        .Bind(4, attempt.duration_ms)
        .Bind(5, int64_t{attempt.http_status})
        .Bind(6, attempt.error);
    return ins.Run();
  });
}

absl::StatusOr<WebhookStore::Page> WebhookStore::List(const std::string& job_id, int page_size,
                                                      int64_t cursor) {
  if (page_size < 1) return absl::InvalidArgumentError("page_size must be >= 1");
  Page page;
  RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(Statement s, c.Prepare(absl::StrCat("SELECT ", kDeliveryColumns,
                                                         " FROM webhook_deliveries d WHERE "
                                                         "d.job_id = ? AND d.seq > ? ORDER BY "
                                                         "d.seq LIMIT ?")));
    s.Bind(1, job_id).Bind(2, cursor).Bind(3, int64_t{page_size} + 1);
    while (true) {
      ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      page.deliveries.push_back(ReadDelivery(s));
    }
    if (static_cast<int>(page.deliveries.size()) > page_size) {
      page.deliveries.pop_back();
      page.next_cursor = page.deliveries.back().seq;
    }
    for (auto& d : page.deliveries) RETURN_IF_ERROR(LoadAttempts(c, &d));
    return absl::OkStatus();
  }));
  return page;
}

absl::StatusOr<std::vector<int64_t>> WebhookStore::CountByState() {
  std::vector<int64_t> counts(4, 0);
  RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(Statement s, c.Prepare("SELECT state, COUNT(*) FROM webhook_deliveries "
                                            "GROUP BY state"));
    while (true) {
      ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) return absl::OkStatus();
      const int64_t state = s.ColumnInt(0);
      if (state >= 0 && state < 4) counts[state] = s.ColumnInt(1);
    }
  }));
  return counts;
}

}  // namespace dreambooth::storage
