// What a worker's lease may touch: the blobs its task may read (its job's images and
// checkpoints, the items of its tenant's cache entries, the blobs written under the lease) and
// the record of blobs written under each lease (docs/security.md, "Workers").
//
// Thread-safe (all state lives in the Database).
#ifndef DREAMBOOTH_STORAGE_LEASE_ACCESS_H_
#define DREAMBOOTH_STORAGE_LEASE_ACCESS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "storage/database.h"

namespace dreambooth::storage {

// The resources one lease covers.
struct LeaseScope {
  std::string token;
  std::string job_id;
  std::string tenant;
  // TRAIN: the job's image sets ("" when none) and every checkpoint of the job.
  std::string instance_set;
  std::string regularization_set;
  // SAMPLE: only this checkpoint's files (and no images); empty for TRAIN.
  std::string sample_checkpoint_id;
};

class LeaseAccess {
 public:
  // `db` must outlive the object.
  explicit LeaseAccess(Database* db) : db_(db) {}

  // Records that `digest` was written under `scope`'s lease (idempotent).
  absl::Status RecordWrite(const LeaseScope& scope, const std::string& digest, int64_t now_ms);

  // True when `scope`'s task may read blob `digest`.
  absl::StatusOr<bool> MayRead(const LeaseScope& scope, const std::string& digest);

 private:
  Database* const db_;
};

}  // namespace dreambooth::storage

#endif  // DREAMBOOTH_STORAGE_LEASE_ACCESS_H_
