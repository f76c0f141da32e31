// The service's SQLite database: schema migrations plus connection handling.
//
// Thread-safe. Writes are serialized through one writer connection (in-process mutex) inside
// BEGIN IMMEDIATE transactions, so callers never see SQLITE_BUSY from each other; the busy
// timeout covers other processes (e.g. an operator's sqlite3 shell). Reads use a small pool of
// reader connections, which WAL lets run concurrently with the writer.
#ifndef DREAMBOOTH_STORAGE_DATABASE_H_
#define DREAMBOOTH_STORAGE_DATABASE_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "storage/sqlite.h"

namespace dreambooth::storage {

class Database {
 public:
  struct Options {
    // Path of the database file (created when missing). Never on a network filesystem.
    std::string path;
    // How long a statement waits for a lock held by another process.
    int busy_timeout_ms = 10000;
    // Reader connections in the pool.
    int readers = 4;
  };

  // Opens the database and applies pending migrations (forward only; a database written by a
  // newer binary is FAILED_PRECONDITION).
  static absl::StatusOr<std::unique_ptr<Database>> Open(const Options& options);

  // The schema version this binary migrates to.
  static int LatestSchemaVersion();

  // Runs `fn` in a BEGIN IMMEDIATE transaction on the writer connection and commits when it
  // returns OK (rolls back otherwise). `fn` must not call Write or Read itself.
  absl::Status Write(const std::function<absl::Status(Connection&)>& fn)
      ABSL_LOCKS_EXCLUDED(writer_mu_);
  // Runs `fn` in a read transaction (a consistent snapshot) on a pooled reader connection.
  absl::Status Read(const std::function<absl::Status(Connection&)>& fn)
      ABSL_LOCKS_EXCLUDED(pool_mu_);

  // PRAGMA user_version of the open database.
  absl::StatusOr<int> SchemaVersion() ABSL_LOCKS_EXCLUDED(writer_mu_);

 private:
  Database() = default;
  absl::Status Migrate() ABSL_LOCKS_EXCLUDED(writer_mu_);
  // Takes an idle reader connection, waiting until one is returned.
  Connection TakeReader() ABSL_LOCKS_EXCLUDED(pool_mu_);
  bool HasIdleReader() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool_mu_) {
    return !idle_readers_.empty();
  }

  absl::Mutex writer_mu_;
  Connection writer_ ABSL_GUARDED_BY(writer_mu_);

  absl::Mutex pool_mu_;
  std::vector<Connection> idle_readers_ ABSL_GUARDED_BY(pool_mu_);
};

}  // namespace dreambooth::storage

#endif  // DREAMBOOTH_STORAGE_DATABASE_H_
