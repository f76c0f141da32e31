// SAMPLE tasks: a Sample call's request waiting for, or leased by, a worker. Kept in memory
// (a Sample call lives only as long as its caller's stream). Thread-safe.
//
// The broker calls a task's Sink while holding its own lock, so after Remove(id) returns the sink
// is never called again; a Sink must not call back into the broker from those callbacks.
#ifndef DREAMBOOTH_SERVER_SAMPLE_BROKER_H_
#define DREAMBOOTH_SERVER_SAMPLE_BROKER_H_

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "dreambooth/v1/resources.pb.h"
#include "storage/records.h"

namespace dreambooth::server {

class SampleBroker {
 public:
  // Receives a task's outputs; implemented by the Sample call.
  class Sink {
   public:
    virtual ~Sink() = default;
    virtual void OnOutput(const v1::SampleResponse& output) = 0;
    // Called exactly once: OK when the worker completed, else the failure.
    virtual void OnFinished(const absl::Status& status) = 0;
  };

  struct Task {
    std::string id;  // "sample_<hex>", set by Enqueue
    std::string job_id;
    std::string base_model;
    std::string spec;  // serialized JobSpec of the job
    v1::SampleRequest request;
    v1::Checkpoint checkpoint;
    // When the task was queued, and how long it may wait for a worker (0: without limit); an
    // unleased task past that is failed by SweepExpired.
    int64_t queued_ms = 0;
    int64_t queue_timeout_ms = 0;
    std::string token;  // set when leased
    int64_t expires_ms = 0;
    std::string worker_id;
  };

  // Queues a task; returns its id. `sink` must stay valid until Remove(id) or OnFinished.
  std::string Enqueue(Task task, Sink* sink) ABSL_LOCKS_EXCLUDED(mu_);
  // Forgets the task (the caller went away or finished). A leased task's worker learns it from
  // Heartbeat/Report (caller disconnected) and its later calls are refused.
  void Remove(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);

  // Leases the oldest queued task whose base model is in `base_models`.
  std::optional<Task> Lease(const std::string& worker_id,
                            const std::vector<std::string>& base_models, int64_t now_ms,
                            int64_t ttl_ms) ABSL_LOCKS_EXCLUDED(mu_);

  // True when `token` names a SAMPLE lease (whether or not it is current).
  static bool IsSampleToken(const std::string& token);

  // OK when `token` is a current sample lease, else FAILED_PRECONDITION. Changes nothing.
  absl::Status Check(const std::string& token, int64_t now_ms) ABSL_LOCKS_EXCLUDED(mu_);
  // The task a current sample lease holds (a copy), else FAILED_PRECONDITION.
  absl::StatusOr<Task> Leased(const std::string& token, int64_t now_ms) ABSL_LOCKS_EXCLUDED(mu_);
  // Renews the lease; returns whether the caller is gone (cancel). FAILED_PRECONDITION when the
  // token is not current.
  absl::StatusOr<bool> Heartbeat(const std::string& token, int64_t now_ms, int64_t ttl_ms)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Relays one output; returns whether the caller is still connected.
  absl::StatusOr<bool> Report(const std::string& token, int64_t now_ms,
                              const v1::SampleResponse& output) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Complete(const std::string& token, int64_t now_ms) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Fail(const std::string& token, int64_t now_ms, const std::string& error,
                    bool retryable) ABSL_LOCKS_EXCLUDED(mu_);
  // The worker gives the task back (shutting down): the caller gets UNAVAILABLE.
  absl::Status Release(const std::string& token, int64_t now_ms, const std::string& reason)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Fails every leased task whose lease expired, and every queued task that waited longer than
  // its queue_timeout_ms for a worker (both UNAVAILABLE to the caller).
  void SweepExpired(int64_t now_ms) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Entry {
    Task task;
    Sink* sink = nullptr;  // null once the caller is gone
    bool leased = false;
  };
  // Finds the entry of a current token; FAILED_PRECONDITION otherwise.
  absl::StatusOr<std::map<std::string, Entry>::iterator> FindLeased(const std::string& token,
                                                                    int64_t now_ms)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::map<std::string, Entry> tasks_ ABSL_GUARDED_BY(mu_);  // by id
  std::deque<std::string> queue_ ABSL_GUARDED_BY(mu_);       // ids of unleased tasks, oldest first
};

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_SAMPLE_BROKER_H_
