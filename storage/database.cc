#include "storage/database.h"

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "storage/migrations.h"

namespace dreambooth::storage {

int Database::LatestSchemaVersion() { return static_cast<int>(Migrations().size()); }

absl::StatusOr<std::unique_ptr<Database>> Database::Open(const Options& options) {
  std::unique_ptr<Database> db(new Database());
  // No other thread can see `db` yet; the locks only satisfy the annotations.
  ASSIGN_OR_RETURN(Connection writer, Connection::Open(options.path, options.busy_timeout_ms));
  {
    absl::MutexLock lock(&db->writer_mu_);
    db->writer_ = std::move(writer);
  }
  RETURN_IF_ERROR(db->Migrate());
  for (int i = 0; i < std::max(1, options.readers); ++i) {
    ASSIGN_OR_RETURN(Connection reader, Connection::Open(options.path, options.busy_timeout_ms));
    absl::MutexLock lock(&db->pool_mu_);
    db->idle_readers_.push_back(std::move(reader));
  }
  return db;
}

absl::StatusOr<int> Database::SchemaVersion() {
  absl::MutexLock lock(&writer_mu_);
  ASSIGN_OR_RETURN(Statement stmt, writer_.Prepare("PRAGMA user_version"));
  ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return absl::InternalError("PRAGMA user_version returned no row");
  return static_cast<int>(stmt.ColumnInt(0));
}

absl::Status Database::Migrate() {
  ASSIGN_OR_RETURN(int version, SchemaVersion());
  const auto& migrations = Migrations();
  if (version > static_cast<int>(migrations.size())) {
    return absl::FailedPreconditionError(absl::StrCat("database schema version ", version,
                                                      " is newer than this binary supports (",
                                                      migrations.size(), "); upgrade dreamboothd"));
  }
  for (int v = version; v < static_cast<int>(migrations.size()); ++v) {
    // Each step and its version bump commit together, so a crash leaves a consistent version.
    RETURN_IF_ERROR(Write([&](Connection& c) {
      RETURN_IF_ERROR(c.Exec(migrations[v]));
      return c.Exec(absl::StrCat("PRAGMA user_version = ", v + 1));
    }));
  }
  return absl::OkStatus();
}

absl::Status Database::Write(const std::function<absl::Status(Connection&)>& fn) {
  absl::MutexLock lock(&writer_mu_);
  // BUSY here can only come from another process; retry with backoff beyond the busy timeout.
  absl::StatusOr<Transaction> txn = Transaction::BeginImmediate(&writer_);
  for (int attempt = 0; !txn.ok() && absl::IsUnavailable(txn.status()) && attempt < 5; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50 << attempt));
    txn = Transaction::BeginImmediate(&writer_);
  }
  if (!txn.ok()) return txn.status();
  RETURN_IF_ERROR(fn(writer_));
  return txn->Commit();
}

absl::Status Database::Read(const std::function<absl::Status(Connection&)>& fn) {
  Connection connection = TakeReader();
  absl::Status status = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(Transaction txn, Transaction::BeginRead(&connection));
    RETURN_IF_ERROR(fn(connection));
    return txn.Commit();
  }();
  {
    absl::MutexLock lock(&pool_mu_);
    idle_readers_.push_back(std::move(connection));  // wakes a TakeReader waiting in Await
  }
  return status;
}

Connection Database::TakeReader() {
  absl::MutexLock lock(&pool_mu_);
  pool_mu_.Await(absl::Condition(this, &Database::HasIdleReader));
  Connection c = std::move(idle_readers_.back());
  idle_readers_.pop_back();
  return c;
}

}  // namespace dreambooth::storage
