// The schema, as an ordered list of forward-only migrations. Migration i (0-based) moves the
// database from PRAGMA user_version i to i + 1. Never edit a released migration; append one.
#ifndef DREAMBOOTH_STORAGE_MIGRATIONS_H_
#define DREAMBOOTH_STORAGE_MIGRATIONS_H_

#include <string_view>
#include <vector>

namespace dreambooth::storage {

const std::vector<std::string_view>& Migrations();

}  // namespace dreambooth::storage

#endif  // DREAMBOOTH_STORAGE_MIGRATIONS_H_
