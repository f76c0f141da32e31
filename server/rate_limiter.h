// A sliding-window rate limit per key (e.g. uploads per tenant per minute), in memory: a daemon
// restart forgets the window. Thread-safe.
#ifndef DREAMBOOTH_SERVER_RATE_LIMITER_H_
#define DREAMBOOTH_SERVER_RATE_LIMITER_H_

#include <cstdint>
#include <deque>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace dreambooth::server {

class RateLimiter {
 public:
  // At most `limit` admissions per key within any `window_ms` (limit 0: no limit).
  RateLimiter(int limit, int64_t window_ms) : limit_(limit), window_ms_(window_ms) {}

  // Admits one event of `key` at `now_ms` and returns 0, or returns how many ms until the oldest
  // admission in the window expires (> 0) and admits nothing.
  int64_t Admit(const std::string& key, int64_t now_ms) ABSL_LOCKS_EXCLUDED(mu_);

  int limit() const { return limit_; }

 private:
  const int limit_;
  const int64_t window_ms_;
  absl::Mutex mu_;
  std::map<std::string, std::deque<int64_t>> admitted_ ABSL_GUARDED_BY(mu_);  // oldest first
};

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_RATE_LIMITER_H_
