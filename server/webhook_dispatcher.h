// Delivers the webhook outbox (storage::WebhookStore): threads that claim due deliveries, POST
// them signed (docs/webhooks.md), record each attempt and schedule retries with exponential
// backoff until a 2xx answer, a 410 Gone, or the last allowed attempt.
#ifndef DREAMBOOTH_SERVER_WEBHOOK_DISPATCHER_H_
#define DREAMBOOTH_SERVER_WEBHOOK_DISPATCHER_H_

#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "storage/records.h"
#include "storage/webhook_store.h"

namespace dreambooth::server {

class Metrics;

// The signature header's value for `body` sent at `unix_seconds`:
// "t=<unix_seconds>,v1=<hex HMAC-SHA256(secret, "<unix_seconds>.<body>")>".
std::string WebhookSignature(const std::string& secret, int64_t unix_seconds,
                             const std::string& body);

// The delay before attempt `next_attempt` (2, 3, ...): initial_backoff_ms doubled per earlier
// retry, at most one hour.
int64_t WebhookBackoffMs(int64_t initial_backoff_ms, int next_attempt);

class WebhookDispatcher {
 public:
  struct Options {
    int max_attempts = 8;
    int64_t initial_backoff_ms = 10'000;
    int64_t timeout_ms = 10'000;
    int concurrency = 4;
    int64_t poll_interval_ms = 500;  // how often an idle thread looks for due deliveries
  };

  // `store` and `metrics` (may be null) must outlive the dispatcher.
  WebhookDispatcher(storage::WebhookStore* store, Metrics* metrics, Options options);
  // Calls Stop().
  ~WebhookDispatcher();

  // Starts the delivery threads.
  void Start() ABSL_LOCKS_EXCLUDED(mu_);
  // Stops and joins the threads; a POST in flight finishes first (at most timeout_ms).
  // Idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);
  // Claims and attempts one due delivery; false when none was due.
  bool DeliverOne();
  void Attempt(const storage::WebhookTask& task);

  storage::WebhookStore* const store_;
  Metrics* const metrics_;
  const Options options_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_WEBHOOK_DISPATCHER_H_
