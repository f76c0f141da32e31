// Small helpers for absl::Status propagation (the Abseil release in Debian 12 ships none).
#ifndef DREAMBOOTH_COMMON_STATUS_MACROS_H_
#define DREAMBOOTH_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define DB_STATUS_CONCAT_INNER_(x, y) x##y
#define DB_STATUS_CONCAT_(x, y) DB_STATUS_CONCAT_INNER_(x, y)

// Evaluates `expr` (an absl::Status); returns it from the calling function when not OK.
#define RETURN_IF_ERROR(expr)                \
  do {                                       \
    ::absl::Status db_status_ = (expr);      \
    if (!db_status_.ok()) return db_status_; \
  } while (0)

// `lhs` = value of `rexpr` (an absl::StatusOr<T>); returns its status when not OK.
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  ASSIGN_OR_RETURN_IMPL_(DB_STATUS_CONCAT_(db_statusor_, __LINE__), lhs, rexpr)

#define ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                           \
  if (!statusor.ok()) return statusor.status();      \
  lhs = std::move(statusor).value()

#endif  // DREAMBOOTH_COMMON_STATUS_MACROS_H_
