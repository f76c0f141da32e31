#include "server/webhook_dispatcher.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/crypto.h"
#include "common/logging.h"
#include "common/version.h"
#include "server/http_post.h"
#include "server/metrics.h"

namespace dreambooth::server {
namespace {

constexpr int64_t kMaxBackoffMs = 3600LL * 1000;

}  // namespace

std::string WebhookSignature(const std::string& secret, int64_t unix_seconds,
                             const std::string& body) {
  return absl::StrCat(
      "t=", unix_seconds,
      ",v1=", absl::BytesToHexString(HmacSha256(secret, absl::StrCat(unix_seconds, ".", body))));
}

int64_t WebhookBackoffMs(int64_t initial_backoff_ms, int next_attempt) {
  int64_t delay = std::max<int64_t>(initial_backoff_ms, 1);
  for (int n = 2; n < next_attempt && delay < kMaxBackoffMs; ++n) delay *= 2;
  return std::min(delay, kMaxBackoffMs);
}

WebhookDispatcher::WebhookDispatcher(storage::WebhookStore* store, Metrics* metrics,
                                     Options options)
    : store_(store), metrics_(metrics), options_(options) {}

WebhookDispatcher::~WebhookDispatcher() { Stop(); }

void WebhookDispatcher::Start() {
  for (int i = 0; i < std::max(options_.concurrency, 1); ++i) {
    threads_.emplace_back([this] { Loop(); });
  }
}

void WebhookDispatcher::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void WebhookDispatcher::Loop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    if (DeliverOne()) continue;
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stopping_),
                         absl::Milliseconds(options_.poll_interval_ms));
  }
}

bool WebhookDispatcher::DeliverOne() {
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  // The claim outlasts the POST, so another thread (or, after a crash, the next process) takes
  // the delivery only once this attempt cannot still be running.
  absl::StatusOr<std::optional<storage::WebhookTask>> task =
      store_->ClaimDue(now_ms, options_.timeout_ms + 30'000);
  if (!task.ok()) {
    LogWarn(absl::StrCat("webhooks: cannot read the outbox: ", task.status().ToString()));
    return false;
  }
  if (!task->has_value()) return false;
  Attempt(**task);
  return true;
}

void WebhookDispatcher::Attempt(const storage::WebhookTask& task) {
  const storage::WebhookDeliveryRecord& d = task.delivery;
  storage::WebhookAttemptRecord attempt;
  attempt.number = static_cast<int>(d.attempts.size()) + 1;
  const absl::Time start = absl::Now();
  attempt.start_time_ms = absl::ToUnixMillis(start);
  HttpPostRequest post;
  post.url = task.url;
  post.body = d.body;
  post.timeout_ms = options_.timeout_ms;
  post.headers = {
      {"Content-Type", "application/json"},
      {"User-Agent", absl::StrCat("dreamboothd/", kServiceVersion)},
      {"X-Dreambooth-Event", storage::WebhookEventTypeName(d.event_type)},
      {"X-Dreambooth-Delivery", d.id},
      {"X-Dreambooth-Attempt", absl::StrCat(attempt.number)},
      {"X-Dreambooth-Signature", WebhookSignature(task.secret, absl::ToUnixSeconds(start), d.body)},
  };
  absl::StatusOr<int> status = HttpPost(post);
  attempt.duration_ms = absl::ToInt64Milliseconds(absl::Now() - start);
  bool delivered = false;
  bool gone = false;
  if (!status.ok()) {
    attempt.error = std::string(status.status().message());
  } else {
    attempt.http_status = *status;
    delivered = *status >= 200 && *status < 300;
    gone = *status == 410;
    if (!delivered) {
      attempt.error = gone ? "HTTP 410 Gone: the receiver asked for no more attempts"
                           : absl::StrCat("HTTP ", *status, " (not 2xx)");
    }
  }
  storage::WebhookDeliveryState state = storage::WebhookDeliveryState::kPending;
  int64_t next_ms = 0;
  const char* outcome = "retry";
  if (delivered) {
    state = storage::WebhookDeliveryState::kDelivered;
    outcome = "delivered";
  } else if (gone || attempt.number >= options_.max_attempts) {
    state = storage::WebhookDeliveryState::kFailed;
    outcome = "failed";
  } else {
    next_ms = absl::ToUnixMillis(absl::Now()) +
              WebhookBackoffMs(options_.initial_backoff_ms, attempt.number + 1);
  }
  if (metrics_ != nullptr) metrics_->ObserveWebhookAttempt(outcome);
  if (!delivered) {
    LogWarn(
        absl::StrCat("webhook delivery failed: ", attempt.error, "; ",
                     state == storage::WebhookDeliveryState::kFailed ? "giving up" : "will retry"),
        {{"job_id", d.job_id},
         {"delivery_id", d.id},
         {"attempt", int64_t{attempt.number}},
         {"url", task.url}});
  }
  absl::Status recorded = store_->RecordAttempt(d.seq, attempt, state, next_ms);
  if (!recorded.ok()) {
    LogWarn(absl::StrCat("webhook delivery: cannot record the attempt: ", recorded.ToString()),
            {{"job_id", d.job_id}, {"delivery_id", d.id}, {"attempt", int64_t{attempt.number}}});
  }
}

}  // namespace dreambooth::server
