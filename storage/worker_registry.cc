#include "storage/worker_registry.h"

#include "common/status_macros.h"

namespace dreambooth::storage {

absl::Status WorkerRegistry::Remember(const WorkerRecord& worker, int64_t now_ms) {
  return db_->Write([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(
        Statement s,
        c.Prepare("INSERT INTO workers (id, device_kind, device_count, device_memory_bytes, "
                  "device_free_memory_bytes, last_seen_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
                  "ON CONFLICT(id) DO UPDATE SET device_kind = ?2, device_count = ?3, "
                  "device_memory_bytes = ?4, device_free_memory_bytes = ?5, last_seen_ms = ?6"));
    s.Bind(1, worker.id)
        .Bind(2, worker.device_kind)
        .Bind(3, int64_t{worker.device_count})
        .Bind(4, worker.device_memory_bytes)
        .Bind(5, worker.device_free_memory_bytes)
        .Bind(6, now_ms);
    return s.Run();
  });
}

absl::StatusOr<std::optional<WorkerRecord>> WorkerRegistry::Largest(int64_t since_ms) {
  std::optional<WorkerRecord> largest;
  RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(Statement s,
                     c.Prepare("SELECT id, device_kind, device_count, device_memory_bytes, "
                               "device_free_memory_bytes, last_seen_ms FROM workers "
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
    largest = std::move(w);
    return absl::OkStatus();
  }));
  return largest;
}

}  // namespace dreambooth::storage
