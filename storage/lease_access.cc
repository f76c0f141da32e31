#include "storage/lease_access.h"

#include "common/status_macros.h"

namespace dreambooth::storage {

absl::Status LeaseAccess::RecordWrite(const LeaseScope& scope, const std::string& digest,
                                      int64_t now_ms) {
  return db_->Write([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(Statement s, c.Prepare("INSERT OR IGNORE INTO lease_blobs (lease_token, "
                                            "job_id, digest, create_time_ms) VALUES (?,?,?,?)"));
    s.Bind(1, scope.token).Bind(2, scope.job_id).Bind(3, digest).Bind(4, now_ms);
    return s.Run();
  });
}

absl::StatusOr<bool> LeaseAccess::MayRead(const LeaseScope& scope, const std::string& digest) {
  bool allowed = false;
  RETURN_IF_ERROR(db_->Read([&](Connection& c) -> absl::Status {
    // ?1 digest, ?2 token, ?3 tenant, ?4 job, ?5 instance set, ?6 regularization set,
    // ?7 sample checkpoint ('' for TRAIN).
    ASSIGN_OR_RETURN(
        Statement s,
        c.Prepare("SELECT EXISTS (SELECT 1 FROM lease_blobs WHERE lease_token = ?2 AND digest = ?1)"
                  " OR EXISTS (SELECT 1 FROM cache_items WHERE tenant = ?3 AND digest = ?1)"
                  " OR (?7 = '' AND EXISTS (SELECT 1 FROM images WHERE digest = ?1 AND "
                  "     set_id IN (?5, ?6)))"
                  " OR (?7 = '' AND EXISTS (SELECT 1 FROM checkpoint_files f JOIN checkpoints k "
                  "     ON k.id = f.checkpoint_id WHERE k.job_id = ?4 AND f.digest = ?1))"
                  " OR (?7 != '' AND EXISTS (SELECT 1 FROM checkpoint_files WHERE "
                  "     checkpoint_id = ?7 AND digest = ?1))"));
    s.Bind(1, digest)
        .Bind(2, scope.token)
        .Bind(3, scope.tenant)
        .Bind(4, scope.job_id)
        .Bind(5, scope.instance_set)
        .Bind(6, scope.regularization_set)
        .Bind(7, scope.sample_checkpoint_id);
    ASSIGN_OR_RETURN(bool row, s.Step());
    allowed = row && s.ColumnInt(0) != 0;
    return absl::OkStatus();
  }));
  return allowed;
}

}  // namespace dreambooth::storage
