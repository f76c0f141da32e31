#include "server/rate_limiter.h"

namespace dreambooth::server {

int64_t RateLimiter::Admit(const std::string& key, int64_t now_ms) {
  if (limit_ <= 0) return 0;
  absl::MutexLock lock(&mu_);
  // Forget keys whose window is over, so the map holds only recently active keys.
  for (auto it = admitted_.begin(); it != admitted_.end();) {
    std::deque<int64_t>& times = it->second;
    while (!times.empty() && times.front() <= now_ms - window_ms_) times.pop_front();
    it = times.empty() && it->first != key ? admitted_.erase(it) : std::next(it);
  }
  std::deque<int64_t>& times = admitted_[key];
  if (static_cast<int>(times.size()) >= limit_) return times.front() + window_ms_ - now_ms;
  times.push_back(now_ms);
  return 0;
}

}  // namespace dreambooth::server
