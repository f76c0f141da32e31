// A small RAII wrapper around sqlite3: Connection, Statement and Transaction.
//
// Connection and Statement are not thread-safe: use one Connection per thread at a time (the
// Database class in database.h hands them out). Every failure is an absl::Status; SQLITE_BUSY
// that outlives the busy timeout becomes UNAVAILABLE, constraint violations FAILED_PRECONDITION,
// anything else INTERNAL, each with sqlite's message and the SQL that failed.
#ifndef DREAMBOOTH_STORAGE_SQLITE_H_
#define DREAMBOOTH_STORAGE_SQLITE_H_

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dreambooth::storage {

class Statement;

// One open sqlite3 database handle.
class Connection {
 public:
  // Opens (creating if needed) `path` with the service's pragmas: WAL, synchronous=FULL,
  // foreign_keys=ON and the given busy timeout.
  static absl::StatusOr<Connection> Open(const std::string& path, int busy_timeout_ms);

  // A closed connection (only useful as a placeholder to move into).
  Connection() = default;

  Connection(Connection&& other) noexcept;
  Connection& operator=(Connection&& other) noexcept;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Runs one or more statements that return no rows.
  absl::Status Exec(std::string_view sql);
  // Compiles one statement. The Statement must not outlive this Connection.
  absl::StatusOr<Statement> Prepare(std::string_view sql);
  // Rows changed by the last INSERT/UPDATE/DELETE.
  int64_t Changes() const;
  sqlite3* raw() const { return db_; }

 private:
  explicit Connection(sqlite3* db) : db_(db) {}
  sqlite3* db_ = nullptr;
};

// A prepared statement. Bind parameters are 1-based, columns 0-based.
class Statement {
 public:
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, double value);
  Statement& Bind(int index, std::string_view text);  // bound as TEXT, copied
  Statement& BindBlob(int index, std::string_view bytes);
  Statement& BindNull(int index);
  // Narrowing overloads are deleted so that the intended SQL type is explicit.
  Statement& Bind(int index, int value) = delete;
  Statement& Bind(int index, bool value) = delete;
  Statement& Bind(int index, const char* value) { return Bind(index, std::string_view(value)); }
  Statement& Bind(int index, const std::string& value) {
    return Bind(index, std::string_view(value));
  }

  // Advances to the next row: true when a row is available, false when done.
  absl::StatusOr<bool> Step();
  // Runs a statement that returns no rows (or ignores them).
  absl::Status Run();

  int64_t ColumnInt(int column) const;
  double ColumnDouble(int column) const;
  std::string ColumnText(int column) const;  // TEXT or BLOB bytes; "" for NULL
  bool ColumnIsNull(int column) const;

 private:
  friend class Connection;
  Statement(sqlite3_stmt* stmt, sqlite3* db) : stmt_(stmt), db_(db) {}
  sqlite3_stmt* stmt_ = nullptr;
  sqlite3* db_ = nullptr;
  absl::Status bind_status_;
};

// A write transaction (BEGIN IMMEDIATE) that rolls back unless Commit() succeeds.
class Transaction {
 public:
  // Begins; returns UNAVAILABLE when the write lock stays busy past the busy timeout.
  static absl::StatusOr<Transaction> BeginImmediate(Connection* connection);
  // Begins a read transaction (BEGIN DEFERRED): a consistent snapshot for several reads.
  static absl::StatusOr<Transaction> BeginRead(Connection* connection);

  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&& other) noexcept;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();

  absl::Status Commit();

 private:
  explicit Transaction(Connection* connection) : connection_(connection) {}
  Connection* connection_ = nullptr;
};

// Maps an sqlite result code (with its message and the SQL involved) to a Status. The message is
// for the server's log; the status also carries a kSqliteErrorPayload payload, so that the RPC
// edge can recognise it and reply without the detail (SqliteErrorKind).
absl::Status SqliteError(int code, sqlite3* db, std::string_view context);

// Type URL of the payload SqliteError attaches; its value is sqlite's generic description of the
// result code (sqlite3_errstr, e.g. "database is locked"), which names no table, column or SQL.
inline constexpr char kSqliteErrorPayload[] = "type.dreambooth/storage.SqliteError";
// The generic description when `status` came from SqliteError (and was passed on unchanged);
// nullopt otherwise.
std::optional<std::string> SqliteErrorKind(const absl::Status& status);

}  // namespace dreambooth::storage

#endif  // DREAMBOOTH_STORAGE_SQLITE_H_
