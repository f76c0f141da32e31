#include "storage/sqlite.h"

#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace dreambooth::storage {
namespace {
// Debian's Abseil is built without std::string_view support in StrCat.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }
}  // namespace

namespace {
absl::StatusCode SqliteStatusCode(int code) {
  switch (code & 0xFF) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::StatusCode::kUnavailable;
    case SQLITE_CONSTRAINT:
      return absl::StatusCode::kFailedPrecondition;
    case SQLITE_FULL:
      return absl::StatusCode::kResourceExhausted;
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
      return absl::StatusCode::kUnavailable;
    default:
      return absl::StatusCode::kInternal;
  }
}
}  // namespace

absl::Status SqliteError(int code, sqlite3* db, std::string_view context) {
  const std::string message = absl::StrCat("sqlite: ", db != nullptr ? sqlite3_errmsg(db) : "",
                                           " (", sqlite3_errstr(code), ") in: ", Sv(context));
  absl::Status status(SqliteStatusCode(code), message);
  status.SetPayload(kSqliteErrorPayload, absl::Cord(sqlite3_errstr(code)));
  return status;
}

std::optional<std::string> SqliteErrorKind(const absl::Status& status) {
  const auto kind = status.GetPayload(kSqliteErrorPayload);
  if (!kind.has_value()) return std::nullopt;
  return std::string(*kind);
}

absl::StatusOr<Connection> Connection::Open(const std::string& path, int busy_timeout_ms) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  Connection connection(db);
  if (rc != SQLITE_OK) return SqliteError(rc, db, absl::StrCat("open ", path));
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, busy_timeout_ms);
  // journal_mode returns a row; Exec ignores it.
  absl::Status s =
      connection.Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
  if (!s.ok()) return s;
  return connection;
}

Connection::Connection(Connection&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}

Connection& Connection::operator=(Connection&& other) noexcept {
  if (this != &other) {
    if (db_ != nullptr) sqlite3_close_v2(db_);
    db_ = std::exchange(other.db_, nullptr);
  }
  return *this;
}

Connection::~Connection() {
  if (db_ != nullptr) sqlite3_close_v2(db_);
}

absl::Status Connection::Exec(std::string_view sql) {
  char* error = nullptr;
  const std::string text(sql);
  const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &error);
  if (error != nullptr) sqlite3_free(error);
  if (rc != SQLITE_OK) return SqliteError(rc, db_, sql);
  return absl::OkStatus();
}

absl::StatusOr<Statement> Connection::Prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteError(rc, db_, sql);
  return Statement(stmt, db_);
}

int64_t Connection::Changes() const { return sqlite3_changes(db_); }

Statement::Statement(Statement&& other) noexcept
    : stmt_(std::exchange(other.stmt_, nullptr)),
      db_(other.db_),
      bind_status_(std::move(other.bind_status_)) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    if (stmt_ != nullptr) sqlite3_finalize(stmt_);
    stmt_ = std::exchange(other.stmt_, nullptr);
    db_ = other.db_;
    bind_status_ = std::move(other.bind_status_);
  }
  return *this;
}

Statement::~Statement() {
  if (stmt_ != nullptr) sqlite3_finalize(stmt_);
}

namespace {
absl::Status BindResult(int rc, sqlite3* db, int index) {
  if (rc == SQLITE_OK) return absl::OkStatus();
  return SqliteError(rc, db, absl::StrCat("bind parameter ", index));
}
}  // namespace

Statement& Statement::Bind(int index, int64_t value) {
  bind_status_.Update(BindResult(sqlite3_bind_int64(stmt_, index, value), db_, index));
  return *this;
}

Statement& Statement::Bind(int index, double value) {
  bind_status_.Update(BindResult(sqlite3_bind_double(stmt_, index, value), db_, index));
  return *this;
}

Statement& Statement::Bind(int index, std::string_view text) {
  bind_status_.Update(BindResult(
      sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT),
      db_, index));
  return *this;
}

Statement& Statement::BindBlob(int index, std::string_view bytes) {
  bind_status_.Update(
      BindResult(sqlite3_bind_blob(stmt_, index, bytes.data(), static_cast<int>(bytes.size()),
                                   SQLITE_TRANSIENT),
                 db_, index));
  return *this;
}

Statement& Statement::BindNull(int index) {
  bind_status_.Update(BindResult(sqlite3_bind_null(stmt_, index), db_, index));
  return *this;
}

absl::StatusOr<bool> Statement::Step() {
  if (!bind_status_.ok()) return bind_status_;
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqliteError(rc, db_, sqlite3_sql(stmt_));
}

absl::Status Statement::Run() {
  while (true) {
    absl::StatusOr<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

int64_t Statement::ColumnInt(int column) const { return sqlite3_column_int64(stmt_, column); }

double Statement::ColumnDouble(int column) const { return sqlite3_column_double(stmt_, column); }

std::string Statement::ColumnText(int column) const {
  const void* data = sqlite3_column_blob(stmt_, column);
  const int size = sqlite3_column_bytes(stmt_, column);
  if (data == nullptr || size <= 0) return std::string();
  return std::string(static_cast<const char*>(data), size);
}

bool Statement::ColumnIsNull(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

absl::StatusOr<Transaction> Transaction::BeginImmediate(Connection* connection) {
  absl::Status s = connection->Exec("BEGIN IMMEDIATE");
  if (!s.ok()) return s;
  return Transaction(connection);
}

absl::StatusOr<Transaction> Transaction::BeginRead(Connection* connection) {
  absl::Status s = connection->Exec("BEGIN DEFERRED");
  if (!s.ok()) return s;
  return Transaction(connection);
}

Transaction::Transaction(Transaction&& other) noexcept
    : connection_(std::exchange(other.connection_, nullptr)) {}

Transaction& Transaction::operator=(Transaction&& other) noexcept {
  if (this != &other) {
    if (connection_ != nullptr) connection_->Exec("ROLLBACK").IgnoreError();
    connection_ = std::exchange(other.connection_, nullptr);
  }
  return *this;
}

Transaction::~Transaction() {
  if (connection_ != nullptr) connection_->Exec("ROLLBACK").IgnoreError();
}

absl::Status Transaction::Commit() {
  if (connection_ == nullptr) return absl::FailedPreconditionError("transaction already ended");
  absl::Status s = connection_->Exec("COMMIT");
  if (s.ok()) connection_ = nullptr;
  return s;
}

}  // namespace dreambooth::storage
