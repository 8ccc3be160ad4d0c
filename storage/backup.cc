#include "storage/backup.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "storage/sqlite_util.h"

namespace gatewatch::storage {
namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using internal::Errmsg;

// A connection closed on scope exit (on the thread that opened it, as every one here).
class Connection {
 public:
  Connection() = default;
  ~Connection() { sqlite3_close_v2(db_); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  sqlite3** out() { return &db_; }
  sqlite3* get() const { return db_; }

 private:
  sqlite3* db_ = nullptr;
};

bool IsLock(int rc) {
  rc &= 0xff;  // extended codes: SQLITE_BUSY_RECOVERY, SQLITE_LOCKED_SHAREDCACHE, ...
  return rc == SQLITE_BUSY || rc == SQLITE_LOCKED;
}

// Lock waits of one backup, all counted against one budget.
class LockWait {
 public:
  explicit LockWait(milliseconds budget) : budget_(budget) {}
  // Waits a little before a retry; false once the budget is spent (give up).
  bool Pause() {
    if (waited_ >= budget_) return false;
    const auto start = SteadyClock::now();
    // Not a synchronisation: a pause before retrying a lock another process holds.
    std::this_thread::sleep_for(std::min(kPause, budget_ - waited_));
    waited_ += std::chrono::duration_cast<milliseconds>(SteadyClock::now() - start);
    return true;
  }
  milliseconds waited() const { return waited_; }

 private:
  static constexpr milliseconds kPause{20};
  const milliseconds budget_;
  milliseconds waited_{0};
};

// Runs a statement to completion; the first column of each row goes to `rows`.
int Run(sqlite3* db, const char* sql, std::vector<std::string>* rows = nullptr) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr);
  if (rc == SQLITE_OK) {
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      if (rows == nullptr) continue;
      const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
      rows->emplace_back(text != nullptr ? text : "");
    }
  }
  sqlite3_finalize(stmt);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

Result<int64_t> QueryInt(sqlite3* db, const char* sql, const std::string& what) {
  std::vector<std::string> rows;
  if (Run(db, sql, &rows) != SQLITE_OK || rows.size() != 1) {
    return Error("backup: " + what + ": " + Errmsg(db));
  }
  return std::stoll(rows[0]);
}

Result<void> Fsync(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0));
  if (fd < 0) return Error("backup: cannot open " + path + " to sync it: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  if (rc != 0) return Error("backup: cannot sync " + path + ": " + std::strerror(saved));
  return {};
}

// A database file and the files SQLite keeps beside it.
void RemoveWithSidecars(const std::string& path) {
  std::error_code ec;
  for (const char* suffix : {"", "-journal", "-wal", "-shm"}) fs::remove(path + suffix, ec);
}

std::string LockedTooLong(const std::string& what, const LockWait& wait) {
  return "backup: " + what + " stayed locked for " + std::to_string(wait.waited().count()) +
         " ms (another process holds a lock on it)";
}

// Copies the snapshot of `source` into the new file `tmp`, in steps.
Result<void> Copy(const std::string& source, const std::string& tmp, const BackupOptions& options,
                  LockWait& wait, BackupReport& report) {
  Connection src;
  // Only reads. Read-write (falling back to read-only for a write-protected file) so that as
  // the last connection to a stopped daemon's database it removes the -wal and -shm files
  // that opening it created, as a read-only connection cannot.
  if (sqlite3_open_v2(source.c_str(), src.out(), SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    return Error("backup: cannot open " + source + ": " + Errmsg(src.get()));
  }
  sqlite3_extended_result_codes(src.get(), 1);
  // The snapshot every step reads: a read transaction held until the copy is done. Its
  // first statement also tells a gatewatch database from any other file.
  if (Run(src.get(), "BEGIN") != SQLITE_OK) {
    return Error("backup: " + source + ": BEGIN: " + Errmsg(src.get()));
  }
  std::vector<std::string> tables;
  for (;;) {
    tables.clear();
    const int rc = Run(
        src.get(), "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = 'results'",
        &tables);
    if (rc == SQLITE_OK) break;
    if (!IsLock(rc)) return Error("backup: cannot read " + source + ": " + Errmsg(src.get()));
    if (!wait.Pause()) return Error(LockedTooLong(source, wait));
  }
  if (tables.size() != 1 || tables[0] != "1") {
    return Error("backup: " + source + " is not a gatewatch database (it has no results table)");
  }

  Connection dst;
  if (sqlite3_open_v2(tmp.c_str(), dst.out(), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                      nullptr) != SQLITE_OK) {
    return Error("backup: cannot create " + tmp + ": " + Errmsg(dst.get()));
  }
  sqlite3_extended_result_codes(dst.get(), 1);
  sqlite3_backup* backup = sqlite3_backup_init(dst.get(), "main", src.get(), "main");
  if (backup == nullptr) return Error("backup: " + tmp + ": " + Errmsg(dst.get()));
  int rc;
  for (;;) {
    rc = sqlite3_backup_step(backup, options.pages_per_step);
    ++report.steps;
    if (rc == SQLITE_OK) continue;
    if (rc == SQLITE_DONE) break;
    if (IsLock(rc) && wait.Pause()) continue;
    break;
  }
  report.pages = sqlite3_backup_pagecount(backup);
  const int finished = sqlite3_backup_finish(backup);
  if (rc != SQLITE_DONE) {
    if (IsLock(rc)) return Error(LockedTooLong(source + " or " + tmp, wait));
    return Error("backup: copying " + source + " to " + tmp + ": " + sqlite3_errstr(rc) + ": " +
                 Errmsg(dst.get()));
  }
  if (finished != SQLITE_OK) return Error("backup: finishing " + tmp + ": " + Errmsg(dst.get()));
  return {};
}

// Makes the copy a single file (journal_mode DELETE; gatewatch switches a database it opens
// back to WAL), checks it, and reads what the report says about it.
Result<void> Verify(const std::string& tmp, BackupReport& report) {
  Connection db;
  if (sqlite3_open_v2(tmp.c_str(), db.out(), SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    return Error("backup: cannot open the copy " + tmp + ": " + Errmsg(db.get()));
  }
  std::vector<std::string> mode;
  if (Run(db.get(), "PRAGMA journal_mode=DELETE", &mode) != SQLITE_OK || mode.size() != 1 ||
      mode[0] != "delete") {
    return Error("backup: " + tmp + ": cannot leave WAL mode: " + Errmsg(db.get()));
  }
  std::vector<std::string> problems;
  if (Run(db.get(), "PRAGMA integrity_check", &problems) != SQLITE_OK) {
    return Error("backup: " + tmp + ": integrity check: " + Errmsg(db.get()));
  }
  if (problems != std::vector<std::string>{"ok"}) {
    std::string first = problems.empty() ? "no answer" : problems.front();
    return Error("backup: the copy failed its integrity check (" + std::to_string(problems.size()) +
                 " problems, first: " + first + ")");
  }
  auto version = QueryInt(db.get(), "PRAGMA user_version", "schema version of the copy");
  if (!version) return Error(version.error());
  report.schema_version = static_cast<int>(*version);
  auto rows = QueryInt(db.get(), "SELECT COUNT(*) FROM results", "results of the copy");
  if (!rows) return Error(rows.error());
  report.result_rows = *rows;
  return {};
}

}  // namespace

Result<BackupReport> BackupDatabase(const std::string& source, const std::string& dest,
                                    const BackupOptions& options) {
  if (options.pages_per_step <= 0) return Error("backup: pages_per_step must be positive");
  std::error_code ec;
  if (!fs::is_regular_file(source, ec)) {
    return Error("backup: no database at " + source + " (has the daemon run yet?)");
  }
  if (fs::is_directory(dest, ec)) {
    return Error("backup: " + dest + " is a directory: name the backup file, e.g. " +
                 (fs::path(dest) / "gatewatch-backup.db").string());
  }
  const fs::path parent = fs::path(dest).has_parent_path() ? fs::path(dest).parent_path() : ".";
  if (!fs::is_directory(parent, ec)) {
    return Error("backup: cannot write " + dest + ": directory " + parent.string() +
                 " does not exist (create it first)");
  }
  if (::access(parent.c_str(), W_OK | X_OK) != 0) {
    return Error("backup: cannot write " + dest + ": directory " + parent.string() + ": " +
                 std::strerror(errno));
  }
  if (fs::exists(dest, ec)) {
    if (fs::equivalent(source, dest, ec)) {
      return Error("backup: " + dest + " is the database itself: name another file");
    }
    if (!options.overwrite) return Error("backup: " + dest + " exists (--force replaces it)");
  }

  const std::string tmp = dest + ".tmp";
  RemoveWithSidecars(tmp);  // left by an interrupted backup: this name is ours
  LockWait wait(options.max_lock_wait);
  BackupReport report;
  Result<void> r = Copy(source, tmp, options, wait, report);
  report.lock_wait = wait.waited();
  if (r) r = Verify(tmp, report);
  if (r) r = Fsync(tmp, /*directory=*/false);
  if (r) {
    // Files of an earlier database at dest would be applied to the copy when it is opened.
    for (const char* suffix : {"-journal", "-wal", "-shm"}) fs::remove(dest + suffix, ec);
    fs::rename(tmp, dest, ec);
    if (ec) r = Error("backup: cannot rename " + tmp + " to " + dest + ": " + ec.message());
  }
  if (!r) {
    RemoveWithSidecars(tmp);
    return Error(r.error());
  }
  // The rename itself is durable once the directory is synced.
  if (auto synced = Fsync(parent.string(), /*directory=*/true); !synced)
    return Error(synced.error());
  report.bytes = static_cast<int64_t>(fs::file_size(dest, ec));
  return report;
}

}  // namespace gatewatch::storage
