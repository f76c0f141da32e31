#include "storage/worker_registry.h"

#include "common/status_macros.h"

namespace dreambooth::storage {

absl::Status WorkerRegistry::Remember(const WorkerRecord& worker, int64_t now_ms) {
  return db_->Write([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(
        Statement s,
        c.Prepare("INSERT INTO workers (id, device_kind, device_count, device_memory_bytes, "
                  "device_free_memory_bytes, last_seen_ms, gang_address) VALUES (?1, ?2, ?3, ?4, "
                  "?5, ?6, ?7) ON CONFLICT(id) DO UPDATE SET device_kind = ?2, device_count = ?3, "
                  "device_memory_bytes = ?4, device_free_memory_bytes = ?5, last_seen_ms = ?6, "
                  "gang_address = ?7"));
    s.Bind(1, worker.id)
        .Bind(2, worker.device_kind)
        .Bind(3, int64_t{worker.device_count})
        .Bind(4, worker.device_memory_bytes)
        .Bind(5, worker.device_free_memory_bytes)
        .Bind(6, now_ms)
        .Bind(7, worker.gang_address);
    return s.Run();
  });
}

absl::StatusOr<std::optional<WorkerRecord>> WorkerRegistry::Largest(int64_t since_ms) {
  std::optional<WorkerRecord> largest;
  RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(Statement s,
                     c.Prepare("SELECT id, device_kind, device_count, device_memory_bytes, "
                               "device_free_memory_bytes, last_seen_ms, gang_address FROM workers "
                               "WHERE last_seen_ms >= ? "
                               "ORDER BY device_count DESC, last_seen_ms DESC LIMIT 1"));
    s.Bind(1, since_ms);
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return absl::OkStatus();
    WorkerRecord w;
    w.id = s.ColumnText(0);
    w.device_kind = s.ColumnText(1);
    w.device_count = static_cast<int>(s.ColumnInt(2));
    w.device_memory_bytes = s.ColumnInt(3);
    w.device_free_memory_bytes = s.ColumnInt(4);
    w.last_seen_ms = s.ColumnInt(5);
    w.gang_address = s.ColumnText(6);
    largest = std::move(w);
    return absl::OkStatus();
  }));
  return largest;
}

absl::StatusOr<int> WorkerRegistry::CountGangCapable(int min_devices, int64_t since_ms) {
  int count = 0;
  RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(Statement s, c.Prepare("SELECT COUNT(*) FROM workers WHERE last_seen_ms >= ? "
                                            "AND device_count >= ? AND gang_address != ''"));
    s.Bind(1, since_ms).Bind(2, int64_t{min_devices});
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (row) count = static_cast<int>(s.ColumnInt(0));
    return absl::OkStatus();
  }));
  return count;
}

absl::StatusOr<int64_t> WorkerRegistry::ForgetUnseen(int64_t seen_before_ms) {
  int64_t forgotten = 0;
  RETURN_IF_ERROR(db_->Write([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(Statement s, c.Prepare("DELETE FROM workers WHERE last_seen_ms < ?"));
    s.Bind(1, seen_before_ms);
    RETURN_IF_ERROR(s.Run());
    forgotten = c.Changes();
    return absl::OkStatus();
  }));
  return forgotten;
}

absl::StatusOr<int> WorkerRegistry::CountSeen(int64_t since_ms) {
  int count = 0;
  RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(Statement s,
                     c.Prepare("SELECT COUNT(*) FROM workers WHERE last_seen_ms >= ?"));
    s.Bind(1, since_ms);
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (row) count = static_cast<int>(s.ColumnInt(0));
    return absl::OkStatus();
  }));
  return count;
}

}  // namespace dreambooth::storage
