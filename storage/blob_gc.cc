#include "storage/blob_gc.h"

#include <string>
#include <unordered_set>
#include <vector>

#include "common/status_macros.h"

namespace dreambooth::storage {

absl::StatusOr<GcReport> CollectGarbage(Database& db, BlobStore& blobs, int64_t now_ms,
                                        int64_t grace_ms) {
  GcReport report;
  const int64_t cutoff = now_ms - grace_ms;
  // Rows of leases that ended (the job is no longer RUNNING under that token, and no gang member
  // holds it) protect nothing.
  RETURN_IF_ERROR(db.Write([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(Statement s,
                     c.Prepare("DELETE FROM lease_blobs WHERE create_time_ms < ? AND NOT EXISTS "
                               "(SELECT 1 FROM jobs j WHERE j.id = lease_blobs.job_id AND "
                               "j.state = 2 AND j.lease_token = lease_blobs.lease_token) AND "
                               "NOT EXISTS (SELECT 1 FROM gang_members g WHERE "
                               "g.lease_token = lease_blobs.lease_token)"));
    s.Bind(1, cutoff);
    RETURN_IF_ERROR(s.Run());
    report.stale_lease_rows = c.Changes();
    return absl::OkStatus();
  }));
  std::unordered_set<std::string> live;
  RETURN_IF_ERROR(db.Read([&](Connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(Statement s, c.Prepare("SELECT digest FROM images UNION "
                                            "SELECT digest FROM checkpoint_files UNION "
                                            "SELECT digest FROM cache_items UNION "
                                            "SELECT digest FROM lease_blobs"));
    while (true) {
      ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      live.insert(s.ColumnText(0));
    }
    return absl::OkStatus();
  }));
  std::vector<std::string> candidates;
  RETURN_IF_ERROR(blobs.ForEach([&](const BlobStore::StoredBlob& blob) {
    ++report.blobs;
    if (live.count(blob.digest) > 0) {
      ++report.referenced;
    } else if (blob.modify_time_ms >= cutoff) {
      ++report.young;
    } else {
      candidates.push_back(blob.digest);
    }
  }));
  for (const std::string& digest : candidates) {
    ASSIGN_OR_RETURN(int64_t freed, blobs.RemoveIfOlderThan(digest, cutoff));
    if (freed > 0 || !blobs.Contains(digest)) {
      ++report.deleted;
      report.bytes_freed += freed;
    } else {
      ++report.young;  // refreshed by a writer since the scan
    }
  }
  return report;
}

}  // namespace dreambooth::storage
