// What a tenant stores: the bytes of its image sets' images and of its jobs' checkpoint files,
// counted per reference (content shared between sets or checkpoints counts each time).
#ifndef DREAMBOOTH_STORAGE_TENANT_USAGE_H_
#define DREAMBOOTH_STORAGE_TENANT_USAGE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "storage/database.h"

namespace dreambooth::storage {

absl::StatusOr<int64_t> TenantStoredBytes(Database& db, const std::string& tenant);

}  // namespace dreambooth::storage

#endif  // DREAMBOOTH_STORAGE_TENANT_USAGE_H_
