// Coalesces workers' PROGRESS events so that each job's progress is written to SQLite at most
// once per interval (one write per second per job; docs/architecture.md, "A job"). A PROGRESS-only
// report inside the interval is held in memory (the newest replaces older ones); it is written
// before the job's next non-progress write, by Flush() before a lease-ending call, or by
// FlushDue() from the sweeper once the interval has passed. Thread-safe.
#ifndef DREAMBOOTH_SERVER_PROGRESS_COALESCER_H_
#define DREAMBOOTH_SERVER_PROGRESS_COALESCER_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "storage/job_store.h"

namespace dreambooth::server {

class ProgressCoalescer {
 public:
  // `jobs` must outlive the coalescer.
  ProgressCoalescer(storage::JobStore* jobs, int64_t interval_ms)
      : jobs_(jobs), interval_ms_(interval_ms) {}

  // Appends `events` for the job leased by `token` (already validated by the caller), holding
  // PROGRESS-only reports that come within the interval. Returns the job's last stored sequence.
  absl::StatusOr<int64_t> Report(const std::string& job_id, const std::string& token,
                                 int64_t last_stored_sequence, int64_t now_ms,
                                 std::vector<storage::EventRecord> events);
  // Writes the job's held progress event, if any (ignoring a lease that is no longer current).
  // Returns true when something was written.
  bool Flush(const std::string& job_id, int64_t now_ms);
  // Writes every held event whose interval has passed (all of them when `all`); returns the
  // ids of jobs written.
  std::vector<std::string> FlushDue(int64_t now_ms, bool all = false);

 private:
  struct State {
    int64_t last_write_ms = 0;
    std::optional<storage::EventRecord> held;
    std::string token;
  };

  storage::JobStore* const jobs_;
  const int64_t interval_ms_;
  // Serializes writes per coalescer (keeps held + new events in order).
  absl::Mutex mu_;
  std::map<std::string, State> states_ ABSL_GUARDED_BY(mu_);  // by job id
};

}  // namespace dreambooth::server

#endif  // DREAMBOOTH_SERVER_PROGRESS_COALESCER_H_
