#include "storage/sqlite_store.h"

#include <sqlite3.h>

#include "storage/result_row.h"
#include "storage/schema.h"
#include "storage/sqlite_util.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <tuple>
#include <utility>

namespace gatewatch::storage {

namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

using internal::BindBlob;
using internal::BindInt;
using internal::BindOptionalUs;
using internal::BindText;
using internal::ColBlob;
using internal::ColInt;
using internal::ColText;
using internal::FromUnixMs;
using internal::HeadersJson;
using internal::Join;
using internal::kColAttempts;
using internal::kColConfirmed;
using internal::kColOutcome0;
using internal::kColProc0;
using internal::kColStatus0;
using internal::kColTotal0;
using internal::kResultColumns;
using internal::kRollupCounters;
using internal::ReadResult;
using internal::ResolvedJson;
using internal::RollupCounterColumns;
using internal::RollupTable;
using internal::Stmt;
using internal::ToUnixMs;
using internal::ToUnixMsClamped;

int64_t FloorTo(int64_t ms, int64_t width) { return ms - ((ms % width) + width) % width; }

using Counters = std::array<int64_t, kRollupCounters>;

// RAII for statements prepared per call.
// Resets a statement when leaving scope, so a cached statement never keeps a read
// transaction or the bound (static) strings alive.
class ResetOnExit {
 public:
  explicit ResetOnExit(sqlite3_stmt* s) : s_(s) {}
  ~ResetOnExit() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  ResetOnExit(const ResetOnExit&) = delete;
  ResetOnExit& operator=(const ResetOnExit&) = delete;

 private:
  sqlite3_stmt* s_;
};

void AddPhase(Counters& c, size_t first_bucket, const std::optional<microseconds>& d) {
  if (!d) return;
  c[first_bucket + LatencyBucket(*d)] += 1;
  c[first_bucket + kLatencyBuckets] += 1;               // _count
  c[first_bucket + kLatencyBuckets + 1] += d->count();  // _sum_us
}

void Count(Counters& c, const probes::ProbeResult& r) {
  c[kColAttempts] += 1;
  if (!r.confirmed) return;
  c[kColConfirmed] += 1;
  c[kColOutcome0 + static_cast<size_t>(r.outcome)] += 1;
  c[kColStatus0 + static_cast<size_t>(StatusClassOf(r.http_status))] += 1;
  AddPhase(c, kColTotal0, r.phases.total);
  AddPhase(c, kColProc0, r.phases.processing);
}

using SeriesKey = std::tuple<std::string_view, std::string_view, int64_t>;  // views into batch

}  // namespace

SqliteStore::SqliteStore(sqlite3* db, std::string path)
    : db_(db), path_(std::move(path)), owner_(std::this_thread::get_id()) {}

SqliteStore::~SqliteStore() {
  GW_CHECK_OWNER_THREAD("SqliteStore");
  for (sqlite3_stmt* s : {insert_result_, upsert_minute_, upsert_hour_, upsert_latest_}) {
    sqlite3_finalize(s);
  }
  sqlite3_close_v2(db_);
}

std::string SqliteStore::LastError(const std::string& what) const {
  const std::string message = sqlite3_errmsg(db_);
  const std::string code = sqlite3_errstr(sqlite3_extended_errcode(db_));
  // The code's text only when it adds something ("file is not a database" says it all).
  return "storage: " + path_ + ": " + what + ": " + message +
         (code == message ? "" : " (" + code + ")");
}

Result<void> SqliteStore::Exec(const std::string& sql) {
  char* message = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
    std::string text = message != nullptr ? message : sqlite3_errmsg(db_);
    sqlite3_free(message);
    const std::string head = sql.substr(0, sql.find('\n', 1));
    return Error("storage: " + path_ + ": " + head + ": " + text);
  }
  return {};
}

Result<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path,
                                                       const OpenOptions& options) {
  namespace fs = std::filesystem;
  const fs::path parent = fs::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty() && !fs::is_directory(parent, ec)) {
    return Error("storage: cannot open database " + path + ": directory " + parent.string() +
                 " does not exist (create it first)");
  }
  if (options.read_only && !fs::exists(path, ec)) {
    return Error("storage: cannot open database " + path + " read-only: no such file");
  }
  sqlite3* db = nullptr;
  const int flags =
      (options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
      SQLITE_OPEN_NOMUTEX;  // thread-bound: no need for SQLite's own mutexes
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    std::string message = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close_v2(db);
    return Error("storage: cannot open database " + path + ": " + message);
  }
  std::unique_ptr<SqliteStore> store(new SqliteStore(db, path));
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, static_cast<int>(options.busy_timeout.count()));

  if (!options.read_only) {
    // WAL: readers and the one writer do not block each other; NORMAL is durable across
    // process crashes in WAL mode (a power cut may lose the last transactions, not corrupt).
    std::string mode;
    {
      Stmt wal;  // finalized before the migrations: an open statement blocks COMMIT
      if (sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, wal.out(), nullptr) != SQLITE_OK ||
          sqlite3_step(wal.get()) != SQLITE_ROW) {
        return Error(store->LastError("PRAGMA journal_mode=WAL"));
      }
      mode = ColText(wal.get(), 0);
    }
    if (mode != "wal") {
      return Error("storage: " + path + ": cannot switch to WAL mode (journal_mode is " + mode +
                   ")");
    }
    if (auto r = store->Exec("PRAGMA synchronous=NORMAL"); !r) return Error(r.error());
    const int target = options.migrate_to_version_for_test > 0 ? options.migrate_to_version_for_test
                                                               : LatestSchemaVersion();
    if (auto r = store->Migrate(target); !r) return Error(r.error());
    if (target == LatestSchemaVersion()) {
      if (auto r = store->Prepare(); !r) return Error(r.error());
    }
  } else {
    auto version = store->SchemaVersion();
    if (!version) return Error(version.error());
    if (*version != LatestSchemaVersion()) {
      return Error("storage: " + path + ": schema version " + std::to_string(*version) +
                   ", this gatewatch reads version " + std::to_string(LatestSchemaVersion()) +
                   " (open it read-write once to migrate)");
    }
  }
  return store;
}

Result<void> SqliteStore::Prepare() {
  auto prep = [&](const std::string& sql, sqlite3_stmt** out) -> Result<void> {
    if (sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, out, nullptr) !=
        SQLITE_OK) {
      return Error(LastError("prepare"));
    }
    return {};
  };
  auto r = prep(
      "INSERT INTO results (monitor, region, started_at, attempt, confirmed, outcome, failure, "
      "http_status, resolve_us, connect_us, tls_us, processing_us, transfer_us, total_us, "
      "bytes_read, remote_ip, resolved, http_version, tls_version, tls_subject, tls_issuer, "
      "tls_earliest_expiry, tls_earliest_expiry_subject, emitter, reason, headers, "
      "body_snippet, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "
      "?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28)",
      &insert_result_);
  if (!r) return r;

  const std::vector<std::string> cols = RollupCounterColumns();
  for (RollupWidth w : {RollupWidth::kMinute, RollupWidth::kHour}) {
    const std::string table = RollupTable(w);
    std::vector<std::string> params, updates;
    for (size_t i = 0; i < cols.size() + 3; ++i) params.push_back("?" + std::to_string(i + 1));
    for (const std::string& c : cols) updates.push_back(c + " = " + c + " + excluded." + c);
    r = prep("INSERT INTO " + table + " (monitor, region, bucket_start, " + Join(cols, ", ") +
                 ") VALUES (" + Join(params, ", ") +
                 ") ON CONFLICT (monitor, region, bucket_start) DO UPDATE SET " +
                 Join(updates, ", "),
             w == RollupWidth::kMinute ? &upsert_minute_ : &upsert_hour_);
    if (!r) return r;
  }
  return prep(
      "INSERT INTO latest (monitor, region, kind, started_at, result_id) VALUES (?1, ?2, ?3, "
      "?4, ?5) ON CONFLICT (monitor, region, kind) DO UPDATE SET started_at = "
      "excluded.started_at, result_id = excluded.result_id WHERE excluded.started_at >= "
      "latest.started_at",
      &upsert_latest_);
}

Result<void> SqliteStore::Insert(std::span<const probes::ProbeResult> batch) {
  GW_CHECK_OWNER_THREAD("SqliteStore");
  if (insert_result_ == nullptr) {
    return Error("storage: " + path_ + ": store is read-only or not migrated: cannot insert");
  }
  if (batch.empty()) return {};
  // IMMEDIATE takes the write lock now (waiting up to busy_timeout), instead of failing
  // halfway when a read transaction cannot be upgraded.
  if (lock_wait_observer_) lock_wait_observer_(true);
  auto begun = Exec("BEGIN IMMEDIATE");
  if (lock_wait_observer_) lock_wait_observer_(false);
  if (!begun) return begun;
  auto r = InsertInTransaction(batch);
  if (r) r = Exec("COMMIT");
  if (!r) {
    if (!sqlite3_get_autocommit(db_)) (void)Exec("ROLLBACK");
    return r;
  }
  return {};
}

Result<void> SqliteStore::InsertInTransaction(std::span<const probes::ProbeResult> batch) {
  std::map<SeriesKey, Counters> minute, hour;
  struct Newest {
    int64_t started_at = 0;
    int64_t id = -1;
  };
  std::map<std::pair<std::string_view, std::string_view>, std::array<Newest, 2>> latest;

  for (const probes::ProbeResult& p : batch) {
    sqlite3_stmt* s = insert_result_;
    ResetOnExit reset(s);
    const int64_t started = ToUnixMs(p.started_at);
    const std::string resolved = ResolvedJson(p.resolved);
    const std::string headers = HeadersJson(p.headers);
    int rc = BindText(s, 1, p.monitor);
    rc |= BindText(s, 2, p.region);
    rc |= BindInt(s, 3, started);
    rc |= BindInt(s, 4, p.attempt);
    rc |= BindInt(s, 5, p.confirmed ? 1 : 0);
    rc |= BindText(s, 6, probes::ToString(p.outcome));
    rc |= BindInt(s, 7, probes::IsFailure(p.outcome) ? 1 : 0);
    rc |= BindInt(s, 8, p.http_status);
    rc |= BindOptionalUs(s, 9, p.phases.resolve);
    rc |= BindOptionalUs(s, 10, p.phases.connect);
    rc |= BindOptionalUs(s, 11, p.phases.tls);
    rc |= BindOptionalUs(s, 12, p.phases.processing);
    rc |= BindOptionalUs(s, 13, p.phases.transfer);
    rc |= BindOptionalUs(s, 14, p.phases.total);
    rc |= BindInt(s, 15, p.bytes_read);
    rc |= BindText(s, 16, p.remote_ip);
    rc |= BindText(s, 17, resolved);
    rc |= BindText(s, 18, p.http_version);
    rc |= BindText(s, 19, p.tls.version);
    rc |= BindText(s, 20, p.tls.subject);
    rc |= BindText(s, 21, p.tls.issuer);
    rc |= p.tls.earliest_expiry ? BindInt(s, 22, ToUnixMs(*p.tls.earliest_expiry))
                                : sqlite3_bind_null(s, 22);
    rc |= BindText(s, 23, p.tls.earliest_expiry_subject);
    rc |= BindText(s, 24, probes::ToString(p.emitter));
    rc |= BindText(s, 25, probes::ToString(p.reason));
    rc |= BindText(s, 26, headers);
    rc |= BindBlob(s, 27, p.body_snippet);
    rc |= BindText(s, 28, p.detail);
    if (rc != SQLITE_OK) return Error(LastError("bind result"));
    if (sqlite3_step(s) != SQLITE_DONE) return Error(LastError("insert result"));
    const int64_t id = static_cast<int64_t>(sqlite3_last_insert_rowid(db_));

    Count(minute[{p.monitor, p.region, FloorTo(started, WidthOf(RollupWidth::kMinute).count())}],
          p);
    Count(hour[{p.monitor, p.region, FloorTo(started, WidthOf(RollupWidth::kHour).count())}], p);
    auto& newest = latest[{p.monitor, p.region}];
    for (int kind = 0; kind < 2; ++kind) {
      if (kind == 1 && !p.confirmed) continue;
      Newest& n = newest[static_cast<size_t>(kind)];
      if (n.id < 0 || started >= n.started_at) n = {started, id};
    }
  }

  for (auto* agg : {&minute, &hour}) {
    sqlite3_stmt* s = agg == &minute ? upsert_minute_ : upsert_hour_;
    for (const auto& [key, counters] : *agg) {
      ResetOnExit reset(s);
      int rc = BindText(s, 1, std::get<0>(key));
      rc |= BindText(s, 2, std::get<1>(key));
      rc |= BindInt(s, 3, std::get<2>(key));
      for (size_t i = 0; i < counters.size(); ++i) {
        rc |= BindInt(s, static_cast<int>(i + 4), counters[i]);
      }
      if (rc != SQLITE_OK) return Error(LastError("bind rollup"));
      if (sqlite3_step(s) != SQLITE_DONE) return Error(LastError("upsert rollup"));
    }
  }
  for (const auto& [key, newest] : latest) {
    for (int kind = 0; kind < 2; ++kind) {
      const Newest& n = newest[static_cast<size_t>(kind)];
      if (n.id < 0) continue;
      sqlite3_stmt* s = upsert_latest_;
      ResetOnExit reset(s);
      int rc = BindText(s, 1, key.first);
      rc |= BindText(s, 2, key.second);
      rc |= BindInt(s, 3, kind);
      rc |= BindInt(s, 4, n.started_at);
      rc |= BindInt(s, 5, n.id);
      if (rc != SQLITE_OK) return Error(LastError("bind latest"));
      if (sqlite3_step(s) != SQLITE_DONE) return Error(LastError("upsert latest"));
    }
  }
  return {};
}

namespace {

// Runs a prepared SELECT, calling `row` for each result row.
template <typename F>
Result<void> ForEachRow(sqlite3* db, sqlite3_stmt* s, const std::string& what, F&& row) {
  for (;;) {
    const int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) return {};
    if (rc != SQLITE_ROW) {
      return Error("storage: " + what + ": " + internal::Errmsg(db));
    }
    if (auto r = row(s); !r) return r;
  }
}

}  // namespace

namespace {

// Every row of a prepared results query, as ProbeResults.
Result<std::vector<probes::ProbeResult>> ReadResults(sqlite3* db, sqlite3_stmt* stmt, const char* what) {
  std::vector<probes::ProbeResult> out;
  auto r = ForEachRow(db, stmt, what, [&](sqlite3_stmt* row) -> Result<void> {
    auto result = ReadResult(row);
    if (!result) return Error(result.error());
    out.push_back(std::move(*result));
    return {};
  });
  if (!r) return Error(r.error());
  return out;
}

}  // namespace

Result<std::vector<probes::ProbeResult>> SqliteStore::Results(const ResultQuery& q) {
  GW_CHECK_OWNER_THREAD("SqliteStore");
  std::string sql = std::string("SELECT ") + kResultColumns +
                    " FROM results WHERE monitor = ?1 AND started_at >= ?2 AND started_at < ?3";
  if (q.region) sql += " AND region = ?4";
  if (q.failures_only) sql += " AND failure = 1";
  sql += " ORDER BY started_at DESC, id DESC LIMIT ?5";
  Stmt s;
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, s.out(), nullptr) != SQLITE_OK) {
    return Error(LastError("prepare results query"));
  }
  BindText(s.get(), 1, q.monitor);
  BindInt(s.get(), 2, ToUnixMsClamped(q.since));
  BindInt(s.get(), 3, ToUnixMsClamped(q.until));
  if (q.region) BindText(s.get(), 4, *q.region);
  BindInt(s.get(), 5, std::clamp(q.limit, 1, kMaxResultLimit));
  return ReadResults(db_, s.get(), "results query");
}

Result<std::vector<OutcomeCounts>> SqliteStore::CountOutcomes(const OutcomeQuery& q) {
  GW_CHECK_OWNER_THREAD("SqliteStore");
  // Without a monitor, "failure IN (0, 1)" lets the (failure, started_at) index serve the
  // time range as two range scans instead of a full scan.
  std::string sql =
      "SELECT monitor, region, outcome, COUNT(*) FROM results WHERE confirmed = 1 AND "
      "started_at >= ?1 AND started_at < ?2";
  sql += q.monitor ? " AND monitor = ?3" : " AND failure IN (0, 1)";
  sql += " GROUP BY monitor, region, outcome ORDER BY monitor, region";
  Stmt s;
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, s.out(), nullptr) != SQLITE_OK) {
    return Error(LastError("prepare outcome counts"));
  }
  BindInt(s.get(), 1, ToUnixMsClamped(q.since));
  BindInt(s.get(), 2, ToUnixMsClamped(q.until));
  if (q.monitor) BindText(s.get(), 3, *q.monitor);
  std::vector<OutcomeCounts> out;
  auto r = ForEachRow(db_, s.get(), "outcome counts", [&](sqlite3_stmt* row) -> Result<void> {
    std::string monitor = ColText(row, 0), region = ColText(row, 1), name = ColText(row, 2);
    auto o = probes::OutcomeFromString(name);
    if (!o) return Error("storage: unknown outcome '" + name + "' in results");
    if (out.empty() || out.back().monitor != monitor || out.back().region != region) {
      out.push_back(OutcomeCounts{.monitor = std::move(monitor), .region = std::move(region)});
    }
    out.back().by_outcome[static_cast<size_t>(*o)] += ColInt(row, 3);
    return {};
  });
  if (!r) return Error(r.error());
  return out;
}

Result<std::vector<probes::ProbeResult>> SqliteStore::Latest(const LatestQuery& q) {
  GW_CHECK_OWNER_THREAD("SqliteStore");
  std::string cols;
  std::string all = kResultColumns;
  // Qualify every column with the results alias (both tables have monitor and region).
  size_t start = 0;
  while (start < all.size()) {
    size_t comma = all.find(", ", start);
    if (comma == std::string::npos) comma = all.size();
    if (!cols.empty()) cols += ", ";
    cols += "r." + all.substr(start, comma - start);
    start = comma + 2;
  }
  std::string sql =
      "SELECT " + cols + " FROM latest l JOIN results r ON r.id = l.result_id WHERE l.kind = ?1";
  if (q.monitor) sql += " AND l.monitor = ?2";
  sql += " ORDER BY l.monitor, l.region";
  Stmt s;
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, s.out(), nullptr) != SQLITE_OK) {
    return Error(LastError("prepare latest query"));
  }
  BindInt(s.get(), 1, q.confirmed_only ? 1 : 0);
  if (q.monitor) BindText(s.get(), 2, *q.monitor);
  return ReadResults(db_, s.get(), "latest query");
}

Result<std::vector<Rollup>> SqliteStore::Rollups(const RollupQuery& q) {
  GW_CHECK_OWNER_THREAD("SqliteStore");
  const std::vector<std::string> cols = RollupCounterColumns();
  std::string sql = "SELECT monitor, region, bucket_start, " + Join(cols, ", ") + " FROM " +
                    RollupTable(q.width) +
                    " WHERE monitor = ?1 AND bucket_start >= ?2 AND bucket_start < ?3";
  if (q.region) sql += " AND region = ?4";
  sql += " ORDER BY bucket_start, region";
  Stmt s;
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, s.out(), nullptr) != SQLITE_OK) {
    return Error(LastError("prepare rollup query"));
  }
  BindText(s.get(), 1, q.monitor);
  BindInt(s.get(), 2, ToUnixMsClamped(q.since));
  BindInt(s.get(), 3, ToUnixMsClamped(q.until));
  if (q.region) BindText(s.get(), 4, *q.region);
  std::vector<Rollup> out;
  auto r = ForEachRow(db_, s.get(), "rollup query", [&](sqlite3_stmt* row) -> Result<void> {
    Rollup u;
    u.monitor = ColText(row, 0);
    u.region = ColText(row, 1);
    u.bucket_start = FromUnixMs(ColInt(row, 2));
    auto c = [&](size_t i) { return ColInt(row, static_cast<int>(i + 3)); };
    u.attempts = c(kColAttempts);
    u.confirmed = c(kColConfirmed);
    for (size_t i = 0; i < kOutcomeCount; ++i) u.by_outcome[i] = c(kColOutcome0 + i);
    for (size_t i = 0; i < u.by_status_class.size(); ++i) {
      u.by_status_class[i] = c(kColStatus0 + i);
    }
    for (auto [h, first] : {std::pair{&u.total, kColTotal0}, std::pair{&u.processing, kColProc0}}) {
      for (size_t i = 0; i < kLatencyBuckets; ++i) h->buckets[i] = c(first + i);
      h->count = c(first + kLatencyBuckets);
      h->sum_us = c(first + kLatencyBuckets + 1);
    }
    out.push_back(std::move(u));
    return {};
  });
  if (!r) return Error(r.error());
  return out;
}

Result<PruneStats> SqliteStore::Prune(SystemTime now, const StorageConfig& config, int max_rows) {
  GW_CHECK_OWNER_THREAD("SqliteStore");
  if (max_rows <= 0) return Error("storage: Prune: max_rows must be positive");
  const int64_t now_ms = ToUnixMs(now);
  struct Kind {
    std::string table_and_filter;  // "<table> WHERE <condition on ?1>"
    int64_t cut;
    int64_t PruneStats::*count;
  };
  const Kind kinds[] = {
      {"results WHERE failure = 0 AND started_at < ?1", now_ms - config.raw_retention.count(),
       &PruneStats::raw_results},
      {"results WHERE failure = 1 AND started_at < ?1", now_ms - config.failure_retention.count(),
       &PruneStats::failed_results},
      {"rollup_minute WHERE bucket_start < ?1", now_ms - config.minute_rollup_retention.count(),
       &PruneStats::minute_rollups},
      {"rollup_hour WHERE bucket_start < ?1", now_ms - config.hour_rollup_retention.count(),
       &PruneStats::hour_rollups},
      // Closed incidents are the written root-cause record: kept as long as the failed results
      // they summarise (docs/alerts-and-diagnosis.md). Open ones have closed_at NULL and never match.
      {"incidents WHERE closed_at < ?1", now_ms - config.failure_retention.count(),
       &PruneStats::incidents},
  };
  PruneStats stats;
  int64_t budget = max_rows;
  for (const Kind& k : kinds) {
    if (budget == 0) break;
    const std::string table = k.table_and_filter.substr(0, k.table_and_filter.find(' '));
    // Bounded: one short write transaction per kind and call.
    const std::string sql = "DELETE FROM " + table + " WHERE rowid IN (SELECT rowid FROM " +
                            k.table_and_filter + " LIMIT ?2)";
    Stmt s;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, s.out(), nullptr) != SQLITE_OK) {
      return Error(LastError("prepare prune"));
    }
    BindInt(s.get(), 1, k.cut);
    BindInt(s.get(), 2, budget);
    if (sqlite3_step(s.get()) != SQLITE_DONE) return Error(LastError("prune " + table));
    const int64_t n = sqlite3_changes(db_);
    stats.*(k.count) += n;
    budget -= n;
  }
  if (budget == 0) {
    for (const Kind& k : kinds) {
      Stmt s;
      const std::string sql = "SELECT EXISTS (SELECT 1 FROM " + k.table_and_filter + ")";
      if (sqlite3_prepare_v2(db_, sql.c_str(), -1, s.out(), nullptr) != SQLITE_OK) {
        return Error(LastError("prepare prune check"));
      }
      BindInt(s.get(), 1, k.cut);
      if (sqlite3_step(s.get()) != SQLITE_ROW) return Error(LastError("prune check"));
      if (ColInt(s.get(), 0) != 0) {
        stats.more = true;
        break;
      }
    }
  }
  return stats;
}

Result<CheckpointStats> SqliteStore::Checkpoint() {
  GW_CHECK_OWNER_THREAD("SqliteStore");
  Stmt s;
  if (sqlite3_prepare_v2(db_, "PRAGMA wal_checkpoint(TRUNCATE)", -1, s.out(), nullptr) !=
      SQLITE_OK) {
    return Error(LastError("prepare wal_checkpoint"));
  }
  // One row (busy, log, checkpointed); busy = 1 when a lock it needed stayed taken.
  if (sqlite3_step(s.get()) != SQLITE_ROW)
    return Error(LastError("PRAGMA wal_checkpoint(TRUNCATE)"));
  CheckpointStats stats;
  stats.complete = ColInt(s.get(), 0) == 0;
  stats.wal_frames = ColInt(s.get(), 1);
  stats.copied = ColInt(s.get(), 2);
  return stats;
}

Result<void> SqliteStore::ExecForTest(const std::string& sql) {
  GW_CHECK_OWNER_THREAD("SqliteStore");
  return Exec(sql);
}

Result<int64_t> SqliteStore::QueryIntForTest(const std::string& sql) {
  GW_CHECK_OWNER_THREAD("SqliteStore");
  return QueryInt(sql);
}

Result<int64_t> SqliteStore::QueryInt(const std::string& sql) {
  Stmt s;
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, s.out(), nullptr) != SQLITE_OK) {
    return Error(LastError("prepare " + sql));
  }
  if (sqlite3_step(s.get()) != SQLITE_ROW) return Error(LastError(sql));
  return ColInt(s.get(), 0);
}

}  // namespace gatewatch::storage
