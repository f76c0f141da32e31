// Wakes WatchJob streams when a job gets new events. Thread-safe.
//
// Callbacks run on the notifying thread while the hub's lock is held, so after Unsubscribe
// returns the callback is never running and will never run again. A callback must therefore not
// call Subscribe/Unsubscribe, and callers must not hold a lock that a callback takes while
// calling Unsubscribe.
#ifndef DREAMBOOTH_SERVER_EVENT_HUB_H_
#define DREAMBOOTH_SERVER_EVENT_HUB_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace dreambooth::server {

class EventHub {
 public:
  using Callback = std::function<void()>;

  // Registers `callback` for events of `job_id`; returns a handle for Unsubscribe.
  uint64_t Subscribe(const std::string& job_id, Callback callback) ABSL_LOCKS_EXCLUDED(mu_);
  void Unsubscribe(uint64_t handle) ABSL_LOCKS_EXCLUDED(mu_);
  // Runs the callbacks registered for `job_id`.
  void Notify(const std::string& job_id) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  uint64_t next_ ABSL_GUARDED_BY(mu_) = 1;
  std::multimap<std::string, std::pair<uint64_t, Callback>> by_job_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, std::string> job_of_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_EVENT_HUB_H_
