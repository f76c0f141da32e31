// The workers that have asked for work, with the devices they last reported, in SQLite. The
// scheduler's view of capacity: CreateJob refuses a job no registered worker could run.
// Thread-safe.
#ifndef DREAMBOOTH_STORAGE_WORKER_REGISTRY_H_
#define DREAMBOOTH_STORAGE_WORKER_REGISTRY_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "storage/database.h"

namespace dreambooth::storage {

struct WorkerRecord {
  std::string id;
  std::string device_kind;  // "cpu", "cuda" or "" (unknown)
  int device_count = 1;
  int64_t device_memory_bytes = 0;       // smallest total over its devices; 0 = unknown
  int64_t device_free_memory_bytes = 0;  // smallest free at its last report; 0 = unknown
  int64_t last_seen_ms = 0;
  // Where it serves a gang's rendezvous when it leads one; "" => it takes no multi-node jobs.
  std::string gang_address;
};

class WorkerRegistry {
 public:
  // `db` must outlive the registry.
  explicit WorkerRegistry(Database* db) : db_(db) {}

  // Records `worker` as seen at now_ms (replacing what it reported before).
  absl::Status Remember(const WorkerRecord& worker, int64_t now_ms);
  // The worker seen at or after since_ms with the most devices (the most recently seen among
  // equals); nullopt when none was.
  absl::StatusOr<std::optional<WorkerRecord>> Largest(int64_t since_ms);
  // How many workers were seen at or after since_ms.
  absl::StatusOr<int> CountSeen(int64_t since_ms);
  // How many workers seen at or after since_ms take multi-node jobs (have a gang address) with
  // at least `min_devices` devices.
  absl::StatusOr<int> CountGangCapable(int min_devices, int64_t since_ms);
  // Forgets the workers last seen before `seen_before_ms`; returns how many went.
  absl::StatusOr<int64_t> ForgetUnseen(int64_t seen_before_ms);

 private:
  Database* db_;
};

}  // namespace dreambooth::storage

#endif  // DREAMBOOTH_STORAGE_WORKER_REGISTRY_H_
