// The webhook outbox's read and dispatch side: claiming due deliveries, recording attempts and
// listing a job's deliveries. Deliveries are queued by the JobStore in the transaction that stores
// their event (storage/webhook_rows.h), so none is lost across a crash; one that was being POSTed
// when the process died is claimed again after its claim expires (at-least-once). Thread-safe.
#ifndef DREAMBOOTH_STORAGE_WEBHOOK_STORE_H_
#define DREAMBOOTH_STORAGE_WEBHOOK_STORE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/database.h"
#include "storage/records.h"

namespace dreambooth::storage {

class WebhookStore {
 public:
  // `db` must outlive the store.
  explicit WebhookStore(Database* db) : db_(db) {}

  // Claims the PENDING delivery due longest ago (next attempt <= now_ms), if any: its next
  // attempt moves to now_ms + claim_ms, so no other claimer takes it meanwhile and it is taken
  // again after that if the claimer dies. The task carries the job's URL and secret.
  absl::StatusOr<std::optional<WebhookTask>> ClaimDue(int64_t now_ms, int64_t claim_ms);

  // Records attempt `attempt` of delivery `seq` and moves it to `state` (PENDING with
  // next_attempt_ms, or DELIVERED / FAILED). OK (nothing recorded) when the delivery is gone
  // with its job.
  absl::Status RecordAttempt(int64_t seq, const WebhookAttemptRecord& attempt,
                             WebhookDeliveryState state, int64_t next_attempt_ms);

  struct Page {
    std::vector<WebhookDeliveryRecord> deliveries;  // oldest first, with their attempts
    int64_t next_cursor = 0;                        // 0 => last page
  };
  // Deliveries of `job_id` after `cursor` (a previous page's next_cursor; 0 => from the first).
  // page_size must be >= 1.
  absl::StatusOr<Page> List(const std::string& job_id, int page_size, int64_t cursor);

  // Deliveries in each state, indexed by WebhookDeliveryState (for metrics).
  absl::StatusOr<std::vector<int64_t>> CountByState();

 private:
  Database* const db_;
};

}  // namespace dreambooth::storage

#endif  // DREAMBOOTH_STORAGE_WEBHOOK_STORE_H_
