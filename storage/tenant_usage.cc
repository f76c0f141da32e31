#include "storage/tenant_usage.h"

#include "common/status_macros.h"

namespace dreambooth::storage {

absl::StatusOr<int64_t> TenantStoredBytes(Database& db, const std::string& tenant) {
  int64_t bytes = 0;
  RETURN_IF_ERROR(db.Read([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(
        Statement s,
        c.Prepare("SELECT (SELECT COALESCE(SUM(i.size_bytes), 0) FROM images i JOIN image_sets s "
                  "ON s.id = i.set_id WHERE s.tenant = ?1) + (SELECT COALESCE(SUM(f.size_bytes), "
                  "0) FROM checkpoint_files f JOIN checkpoints k ON k.id = f.checkpoint_id JOIN "
                  "jobs j ON j.id = k.job_id WHERE j.tenant = ?1)"));
    s.Bind(1, tenant);
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (row) bytes = s.ColumnInt(0);
    return absl::OkStatus();
  }));
  return bytes;
}

}  // namespace dreambooth::storage
