// Blob garbage collection: deletes the blobs nothing references any more (deleted image sets,
// jobs and checkpoints, replaced cache entries, abandoned uploads and worker writes).
//
// A blob is kept when an image, a checkpoint file or a cache item names it, when a lease that
// is still current wrote it (its holder may yet commit it), or when it was written or
// deduplicated within the grace period (an upload or WriteBlob about to record its reference).
// Crash-safe: it only unlinks whole unreferenced blobs, one at a time, and the database is the
// record of what is referenced; a crash mid-run leaves garbage for the next run, never a dangling
// reference.
#ifndef DREAMBOOTH_STORAGE_BLOB_GC_H_
#define DREAMBOOTH_STORAGE_BLOB_GC_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "storage/blob_store.h"
#include "storage/database.h"

namespace dreambooth::storage {

struct GcReport {
  int64_t blobs = 0;       // stored blobs seen
  int64_t referenced = 0;  // kept: referenced
  int64_t young = 0;       // kept: unreferenced but within the grace period
  int64_t deleted = 0;
  int64_t bytes_freed = 0;
  // lease_blobs rows of leases that are no longer current, dropped before marking.
  int64_t stale_lease_rows = 0;
};

// One collection at `now_ms`; blobs written or deduplicated after now_ms - grace_ms are kept.
absl::StatusOr<GcReport> CollectGarbage(Database& db, BlobStore& blobs, int64_t now_ms,
                                        int64_t grace_ms);

}  // namespace dreambooth::storage

#endif  // DREAMBOOTH_STORAGE_BLOB_GC_H_
