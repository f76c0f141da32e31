// The webhook outbox's write side, inside the transaction that stores a job's event: internal to
// storage/.
#ifndef DREAMBOOTH_STORAGE_WEBHOOK_ROWS_H_
#define DREAMBOOTH_STORAGE_WEBHOOK_ROWS_H_

#include <string>

#include "absl/status/status.h"
#include "storage/records.h"
#include "storage/sqlite.h"

namespace dreambooth::storage::internal {

// The webhook event type an event of `kind` is reported as; kUnspecified => none.
WebhookEventType WebhookEventTypeOf(EventKind kind);

// Queues a PENDING delivery (due now) of the stored event `e` of `job_id` when its type is in
// `event_mask` (0 => every type). The body is the JSON documented in docs/webhooks.md.
absl::Status EnqueueWebhookDelivery(Connection& c, const std::string& job_id, const EventRecord& e,
                                    int event_mask);

}  // namespace dreambooth::storage::internal

#endif  // DREAMBOOTH_STORAGE_WEBHOOK_ROWS_H_
