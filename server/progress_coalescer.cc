#include "server/progress_coalescer.h"

namespace dreambooth::server {

absl::StatusOr<int64_t> ProgressCoalescer::Report(const std::string& job_id,
                                                  const std::string& token,
                                                  int64_t last_stored_sequence, int64_t now_ms,
                                                  std::vector<storage::EventRecord> events) {
  absl::MutexLock lock(&mu_);
  State& state = states_[job_id];
  bool progress_only = !events.empty();
  for (const auto& e : events) progress_only &= e.kind == storage::EventKind::kProgress;
  if (progress_only) {
    // Only the newest progress matters; it is written now or held.
    storage::EventRecord newest = events.back();
    if (now_ms - state.last_write_ms < interval_ms_) {
      state.held = std::move(newest);
      state.token = token;
      return last_stored_sequence;
    }
    events = {std::move(newest)};
    state.held.reset();
  } else if (state.held.has_value()) {
    // A held progress event goes first, so the log stays in the order it was reported. It was
    // reported under its own lease: another node of a gang may report this job's logs.
    if (state.token == token) {
      events.insert(events.begin(), *state.held);
    } else {
      (void)jobs_->AppendEvents(state.token, now_ms, {*state.held});
    }
    state.held.reset();
  }
  absl::StatusOr<int64_t> last = jobs_->AppendEvents(token, now_ms, std::move(events));
  if (last.ok()) state.last_write_ms = now_ms;
  return last;
}

bool ProgressCoalescer::Flush(const std::string& job_id, int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  auto it = states_.find(job_id);
  if (it == states_.end()) return false;
  bool wrote = false;
  if (it->second.held.has_value()) {
    wrote = jobs_->AppendEvents(it->second.token, now_ms, {*it->second.held}).ok();
  }
  states_.erase(it);  // the lease is ending; a new attempt starts fresh
  return wrote;
}

std::vector<std::string> ProgressCoalescer::FlushDue(int64_t now_ms, bool all) {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> written;
  for (auto it = states_.begin(); it != states_.end();) {
    State& state = it->second;
    if (state.held.has_value() && (all || now_ms - state.last_write_ms >= interval_ms_)) {
      if (jobs_->AppendEvents(state.token, now_ms, {*state.held}).ok()) {
        state.last_write_ms = now_ms;
        written.push_back(it->first);
      }
      state.held.reset();  // a stale lease's progress is dropped, like any stale write
    }
    // Forget idle jobs so the map does not grow without bound.
    if (!state.held.has_value() && now_ms - state.last_write_ms > 60'000) {
      it = states_.erase(it);
    } else {
      ++it;
    }
  }
  return written;
}

}  // namespace dreambooth::server
