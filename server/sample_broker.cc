#include "server/sample_broker.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/crypto.h"
#include "common/status_macros.h"

namespace dreambooth::server {
namespace {
constexpr char kTokenPrefix[] = "st_";
}  // namespace

std::string SampleBroker::Enqueue(Task task, Sink* sink) {
  absl::MutexLock lock(&mu_);
  task.id = absl::StrCat("sample_", RandomHex(8));
  const std::string id = task.id;
  tasks_[id] = Entry{std::move(task), sink, false};
  queue_.push_back(id);
  return id;
}

void SampleBroker::Remove(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return;
  if (it->second.leased) {
    it->second.sink = nullptr;  // the worker finds out on its next call
  } else {
    queue_.erase(std::remove(queue_.begin(), queue_.end(), id), queue_.end());
    tasks_.erase(it);
  }
}

std::optional<SampleBroker::Task> SampleBroker::Lease(const std::string& worker_id,
                                                      const std::vector<std::string>& base_models,
                                                      int64_t now_ms, int64_t ttl_ms) {
  absl::MutexLock lock(&mu_);
  for (auto q = queue_.begin(); q != queue_.end(); ++q) {
    Entry& entry = tasks_.at(*q);
    if (std::find(base_models.begin(), base_models.end(), entry.task.base_model) ==
        base_models.end()) {
      continue;
    }
    entry.leased = true;
    entry.task.token = absl::StrCat(kTokenPrefix, RandomHex(16));
    entry.task.expires_ms = now_ms + ttl_ms;
    entry.task.worker_id = worker_id;
    queue_.erase(q);
    if (entry.sink != nullptr) {
      v1::SampleResponse progress;
      progress.mutable_progress()->set_message(absl::StrCat("leased by worker ", worker_id));
      entry.sink->OnOutput(progress);
    }
    return entry.task;
  }
  return std::nullopt;
}

bool SampleBroker::IsSampleToken(const std::string& token) {
  return token.rfind(kTokenPrefix, 0) == 0;
}

absl::StatusOr<std::map<std::string, SampleBroker::Entry>::iterator> SampleBroker::FindLeased(
    const std::string& token, int64_t now_ms) {
  for (auto it = tasks_.begin(); it != tasks_.end(); ++it) {
    if (it->second.leased && it->second.task.token == token) {
      if (it->second.task.expires_ms < now_ms) break;
      return it;
    }
  }
  return absl::FailedPreconditionError(
      "sample lease token is not current: the lease expired or the task already ended");
}

absl::Status SampleBroker::Check(const std::string& token, int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  return FindLeased(token, now_ms).status();
}

absl::StatusOr<SampleBroker::Task> SampleBroker::Leased(const std::string& token, int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(auto it, FindLeased(token, now_ms));
  return it->second.task;
}

absl::StatusOr<bool> SampleBroker::Heartbeat(const std::string& token, int64_t now_ms,
                                             int64_t ttl_ms) {
  absl::MutexLock lock(&mu_);
  auto it = FindLeased(token, now_ms);
  if (!it.ok()) return it.status();
  (*it)->second.task.expires_ms = now_ms + ttl_ms;
  return (*it)->second.sink == nullptr;
}

absl::StatusOr<bool> SampleBroker::Report(const std::string& token, int64_t now_ms,
                                          const v1::SampleResponse& output) {
  absl::MutexLock lock(&mu_);
  auto it = FindLeased(token, now_ms);
  if (!it.ok()) return it.status();
  Entry& entry = (*it)->second;
  if (entry.sink == nullptr) return false;
  entry.sink->OnOutput(output);
  return true;
}

absl::Status SampleBroker::Complete(const std::string& token, int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  auto it = FindLeased(token, now_ms);
  if (!it.ok()) return it.status();
  if ((*it)->second.sink != nullptr) (*it)->second.sink->OnFinished(absl::OkStatus());
  tasks_.erase(*it);
  return absl::OkStatus();
}

absl::Status SampleBroker::Fail(const std::string& token, int64_t now_ms, const std::string& error,
                                bool retryable) {
  absl::MutexLock lock(&mu_);
  auto it = FindLeased(token, now_ms);
  if (!it.ok()) return it.status();
  if ((*it)->second.sink != nullptr) {
    const std::string message = absl::StrCat("worker failed to sample: ", error);
    (*it)->second.sink->OnFinished(retryable ? absl::UnavailableError(message)
                                             : absl::FailedPreconditionError(message));
  }
  tasks_.erase(*it);
  return absl::OkStatus();
}

absl::Status SampleBroker::Release(const std::string& token, int64_t now_ms,
                                   const std::string& reason) {
  absl::MutexLock lock(&mu_);
  auto it = FindLeased(token, now_ms);
  if (!it.ok()) return it.status();
  if ((*it)->second.sink != nullptr) {
    (*it)->second.sink->OnFinished(absl::UnavailableError(
        absl::StrCat("worker released the sample task (", reason, "); retry")));
  }
  tasks_.erase(*it);
  return absl::OkStatus();
}

void SampleBroker::SweepExpired(int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  for (auto it = tasks_.begin(); it != tasks_.end();) {
    Entry& entry = it->second;
    const Task& task = entry.task;
    if (entry.leased && task.expires_ms < now_ms) {
      if (entry.sink != nullptr) {
        entry.sink->OnFinished(absl::UnavailableError(absl::StrCat(
            "worker ", task.worker_id, " stopped heartbeating while sampling; retry")));
      }
      it = tasks_.erase(it);
    } else if (!entry.leased && task.queue_timeout_ms > 0 &&
               now_ms - task.queued_ms > task.queue_timeout_ms) {
      if (entry.sink != nullptr) {
        entry.sink->OnFinished(absl::UnavailableError(
            absl::StrCat("no worker took the sample task within ",
                         absl::FormatDuration(absl::Milliseconds(task.queue_timeout_ms)),
                         " (no connected worker with base model '", task.base_model,
                         "' was free); retry later")));
      }
      queue_.erase(std::remove(queue_.begin(), queue_.end(), it->first), queue_.end());
      it = tasks_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace dreambooth::server
