#include "server/event_hub.h"

namespace dreambooth::server {

uint64_t EventHub::Subscribe(const std::string& job_id, Callback callback) {
  absl::MutexLock lock(&mu_);
  const uint64_t handle = next_++;
  by_job_.emplace(job_id, std::make_pair(handle, std::move(callback)));
  job_of_[handle] = job_id;
  return handle;
}

void EventHub::Unsubscribe(uint64_t handle) {
  absl::MutexLock lock(&mu_);
  auto it = job_of_.find(handle);
  if (it == job_of_.end()) return;
  auto [begin, end] = by_job_.equal_range(it->second);
  for (auto e = begin; e != end; ++e) {
    if (e->second.first == handle) {
      by_job_.erase(e);
      break;
    }
  }
  job_of_.erase(it);
}

void EventHub::Notify(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  auto [begin, end] = by_job_.equal_range(job_id);
  for (auto e = begin; e != end; ++e) e->second.second();
}

}  // namespace dreambooth::server
