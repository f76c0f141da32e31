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
#include <mutex>
#include <string>

namespace dreambooth::server {

class EventHub {
 public:
  using Callback = std::function<void()>;

  // Registers `callback` for events of `job_id`; returns a handle for Unsubscribe.
  uint64_t Subscribe(const std::string& job_id, Callback callback);
  void Unsubscribe(uint64_t handle);
  // Runs the callbacks registered for `job_id`.
  void Notify(const std::string& job_id);

 private:
  std::mutex mu_;
  uint64_t next_ = 1;                                                 // Guarded by mu_.
  std::multimap<std::string, std::pair<uint64_t, Callback>> by_job_;  // Guarded by mu_.
  std::map<uint64_t, std::string> job_of_;                            // Guarded by mu_.
};

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_EVENT_HUB_H_
