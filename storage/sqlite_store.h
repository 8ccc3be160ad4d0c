#pragma once
// SqliteStore: the Store on one SQLite connection (WAL mode, synchronous=NORMAL).
//
// Thread: the connection belongs to the thread that called Open(); every method (and the
// destructor) must run on that thread. Debug builds abort when this is violated
// (OnOwnerThread()). Open one SqliteStore per thread: one writer (storage::Writer) and any
// number of readers can share a database file thanks to WAL.
//
// Schema: numbered migrations, tracked in PRAGMA user_version, each applied in its own
// transaction by a read-write Open(). See storage/schema.cc for the tables.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "storage/store.h"

struct sqlite3;
struct sqlite3_stmt;

namespace gatewatch::storage {

// What one WAL checkpoint did (SqliteStore::Checkpoint).
struct CheckpointStats {
  bool complete = false;   // every WAL frame is in the database file and the WAL is empty
  int64_t wal_frames = 0;  // frames left in the WAL (0 when complete: it was truncated)
  int64_t copied = 0;      // of those, frames also in the database file
};

struct OpenOptions {
  bool read_only = false;  // no migration; fails unless the schema is current
  // How long a statement waits for another connection's lock before failing with "busy".
  std::chrono::milliseconds busy_timeout{5000};
  // Test hook: migrate only up to this schema version (0 = the latest). Used to build an
  // old database in the migration test.
  int migrate_to_version_for_test = 0;
};

class SqliteStore final : public Store {
 public:
  // The schema version this build creates and expects.
  static int LatestSchemaVersion();

  // Opens (read-write: creates if missing) the database at `path` and migrates it to the
  // latest schema. The parent directory must exist: creating it is the caller's job, and a
  // missing one is reported as such. Fails on a database written by a newer gatewatch.
  static Result<std::unique_ptr<SqliteStore>> Open(const std::string& path,
                                                   const OpenOptions& options = {});

  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  Result<void> Insert(std::span<const probes::ProbeResult> batch) override;
  Result<std::vector<probes::ProbeResult>> Results(const ResultQuery& q) override;
  Result<std::vector<OutcomeCounts>> CountOutcomes(const OutcomeQuery& q) override;
  Result<std::vector<probes::ProbeResult>> Latest(const LatestQuery& q) override;
  Result<std::vector<Rollup>> Rollups(const RollupQuery& q) override;
  Result<PruneStats> Prune(SystemTime now, const StorageConfig& config, int max_rows) override;

  // PRAGMA user_version.
  Result<int> SchemaVersion();

  // PRAGMA wal_checkpoint(TRUNCATE): copies the WAL into the database file and truncates the
  // WAL to zero bytes, so that the database file alone is complete. Waits up to busy_timeout
  // for other connections' writes and read transactions; one still in the way leaves it
  // incomplete (complete = false), which is not an error: nothing is lost, the WAL keeps
  // what the file lacks. Idle connections (no open read transaction) are not in the way.
  Result<CheckpointStats> Checkpoint();

  // Called on the owner thread around Insert()'s wait for the database's write lock (its
  // BEGIN IMMEDIATE): waiting = true before, false once the lock is taken or the wait failed.
  // Time between the two is spent on another connection's lock, never on the disk, so a
  // long one says "locked" sooner than a slow write can (storage::Writer::Activity()).
  void SetLockWaitObserver(std::function<void(bool waiting)> observer) {
    lock_wait_observer_ = std::move(observer);
  }

  bool OnOwnerThread() const { return std::this_thread::get_id() == owner_; }
  const std::string& path() const { return path_; }

  // Test hooks: run SQL statements (e.g. "BEGIN IMMEDIATE" to hold the write lock from a
  // second connection, or rows in an old schema); a single integer-valued query.
  Result<void> ExecForTest(const std::string& sql);
  Result<int64_t> QueryIntForTest(const std::string& sql);

 private:
  // Module access (storage/ only): AlertStore (storage/alert_store.h) and IncidentStore
  // (storage/incident_store.h) keep their tables in the same database and reuse this class's Open()
  // (WAL, busy timeout, migrations, schema checks) and owner check instead of copying them;
  // they run their own statements on db_ (and through Exec() and QueryInt()) and report errors
  // through LastError(). They touch nothing else.
  friend class AlertStore;
  friend class IncidentStore;

  SqliteStore(sqlite3* db, std::string path);

  Result<void> Migrate(int target_version);
  Result<void> Prepare();
  Result<void> Exec(const std::string& sql);
  Result<int64_t> QueryInt(const std::string& sql);
  Result<void> InsertInTransaction(std::span<const probes::ProbeResult> batch);
  std::string LastError(const std::string& what) const;

  sqlite3* db_ = nullptr;
  std::string path_;
  std::thread::id owner_;
  // Prepared once, finalized in the destructor (owned).
  sqlite3_stmt* insert_result_ = nullptr;
  sqlite3_stmt* upsert_minute_ = nullptr;
  sqlite3_stmt* upsert_hour_ = nullptr;
  sqlite3_stmt* upsert_latest_ = nullptr;
  std::function<void(bool waiting)> lock_wait_observer_;
};

}  // namespace gatewatch::storage
