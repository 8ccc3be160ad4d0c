#pragma once
// IncidentStore: the incident records of docs/alerts-and-diagnosis.md ("one open incident per monitor at a
// time: it opens at the first confirmed failure, carries the current verdict, records the peak
// failure ratio, and closes after the monitor is healthy ... kept for failure_retention").
// Table incidents (schema version 4, see storage/schema.cc).
//
// Use: the pipeline (the one writer of incidents) calls OpenIncidents() on start-up to resume
// what was open before a restart or a kill -9, then OpenIncident() / Update() / Close() as the
// verdict engine decides. The HTTP threads open their own store with
// OpenOptions{.read_only = true} and call List() / OpenIncidents() / Get(). Retention is part
// of SqliteStore::Prune() (closed incidents older than StorageConfig::failure_retention), so
// the results writer's incremental prune covers it; Prune() here is the same step on its own.
//
// Storage does not interpret verdicts (docs/alerts-and-diagnosis.md names, stored as text) nor evidence (a
// JSON text, stored as given): it enforces the one-open-per-monitor rule (a partial UNIQUE
// index, so it holds across connections and processes), the peak ratio as a maximum and
// alert_fired as sticky.
//
// Thread: an IncidentStore is thread-bound, like SqliteStore and AlertStore: Open() it on the
// thread that uses it; every method and the destructor must run there (debug builds abort
// otherwise). Methods block on disk I/O and, while another connection holds the write lock, up
// to OpenOptions::busy_timeout. Every write is one statement, hence one short transaction.
//
// Connection: an IncidentStore owns its own connection, opened by SqliteStore::Open() (WAL,
// busy timeout, migrations, newer-schema refusal; read-only when asked), which SqliteStore
// lends it as a friend. Callers never see SQL.
//
// Times are stored at millisecond precision (unix ms).

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "probes/clock.h"
#include "probes/result.h"
#include "storage/sqlite_store.h"

namespace gatewatch::storage {

struct Incident {
  int64_t id = 0;  // assigned by OpenIncident(); increasing in creation order
  std::string monitor{};
  std::string verdict{};               // current verdict (docs/alerts-and-diagnosis.md name)
  std::string first_verdict{};         // the verdict it opened with; never changes
  std::string summary{};               // one line for humans
  std::string evidence{};              // JSON text, as last given ("{}" when none was given)
  std::vector<std::string> regions{};  // as last given, in the given order
  SystemTime opened_at{}, updated_at{};
  std::optional<SystemTime> closed_at{};  // nullopt = open
  double peak_ratio = 0;                  // the highest failure ratio seen, 0 .. 1
  bool alert_fired = false;               // an alert fired during the incident (sticky)

  bool open() const { return !closed_at.has_value(); }
};

// Incidents that were open at some time in [since, until): opened_at < until, and either
// still open or closed_at >= since (an incident closed at `since` is listed: its close is in
// the window). Newest opened first.
struct IncidentQuery {
  std::optional<std::string> monitor{};  // nullopt = every monitor
  bool open_only = false;
  SystemTime since{};
  SystemTime until = SystemTime::max();
  int limit = 100;  // clamped to 1 .. kMaxIncidentLimit
};

// List() returns at most this many incidents, whatever the caller asks for.
inline constexpr int kMaxIncidentLimit = 1'000;

class IncidentStore {
 public:
  // Opens the database at `path` with SqliteStore::Open() and `options` on the calling thread
  // (read-write: creates it if missing and migrates it to the latest schema; read-only: fails
  // unless the schema is current). Fails when the schema is older than version 4 (only
  // possible with migrate_to_version_for_test). `clock` must outlive the store; it is taken
  // for the same Open() shape as AlertStore, but every stored time is an explicit argument.
  static Result<std::unique_ptr<IncidentStore>> Open(const std::string& path, const Clock& clock,
                                                     const OpenOptions& options = {});

  ~IncidentStore();
  IncidentStore(const IncidentStore&) = delete;
  IncidentStore& operator=(const IncidentStore&) = delete;

  // Opens an incident for `monitor` at `at` with verdict = first_verdict = `verdict`,
  // peak_ratio = `ratio` and alert_fired = false, and returns it as stored. Fails, writing
  // nothing, when `monitor` already has an open incident (the error names its id), or on bad
  // input: empty monitor or verdict, `ratio` not in [0, 1], `evidence` not JSON ("" = "{}").
  Result<Incident> OpenIncident(const std::string& monitor, const std::string& verdict,
                                const std::string& summary, const std::string& evidence,
                                const std::vector<std::string>& regions, double ratio,
                                SystemTime at);

  // Replaces the verdict, summary, evidence and regions of open incident `id`;
  // peak_ratio = max(peak_ratio, ratio); alert_fired becomes true when `alert_fired` is true
  // and then stays true; updated_at = max(updated_at, at) (a wall clock stepping back never
  // moves it backwards). Fails, changing nothing, when `id` is not an open incident (unknown,
  // pruned or closed) or on bad input (as OpenIncident()).
  Result<void> Update(int64_t id, const std::string& verdict, const std::string& summary,
                      const std::string& evidence, const std::vector<std::string>& regions,
                      double ratio, bool alert_fired, SystemTime at);

  // Closes open incident `id` at `at` (clamped to no earlier than opened_at), optionally with
  // a final verdict and summary; updated_at as Update(). The monitor may then open a new one.
  // Fails, changing nothing, when `id` is not an open incident or the final verdict is empty.
  Result<void> Close(int64_t id, SystemTime at,
                     const std::optional<std::string>& final_verdict = std::nullopt,
                     const std::optional<std::string>& final_summary = std::nullopt);

  // Every open incident, oldest opened first (ties: lower id first).
  Result<std::vector<Incident>> OpenIncidents();

  // Incidents matching `q`, newest opened first (ties: higher id first).
  Result<std::vector<Incident>> List(const IncidentQuery& q);

  // Incident `id`; nullopt when there is none (never was, or pruned).
  Result<std::optional<Incident>> Get(int64_t id);

  // Retention, incremental: deletes at most `max_rows` incidents closed strictly before
  // `older_than` (one short transaction) and returns how many. Open incidents are never
  // deleted. SqliteStore::Prune() does the same with now - failure_retention.
  // REQUIRES: max_rows > 0.
  Result<int64_t> Prune(SystemTime older_than, int max_rows);

  bool OnOwnerThread() const { return store_->OnOwnerThread(); }
  const std::string& path() const { return store_->path(); }
  bool read_only() const { return read_only_; }

  // Test hooks on this connection (see SqliteStore).
  Result<void> ExecForTest(const std::string& sql);
  Result<int64_t> QueryIntForTest(const std::string& sql);

 private:
  IncidentStore(std::unique_ptr<SqliteStore> store, bool read_only);

  Result<void> CheckWritable(const char* what) const;
  // Why open incident `id` could not be changed: "unknown" or "closed at ...".
  std::string NotOpen(int64_t id, const char* what);
  // Runs "SELECT <incident columns> FROM incidents <tail>", `bind` binding its parameters
  // (returning an SQLite result code).
  Result<std::vector<Incident>> Query(const std::string& tail,
                                      const std::function<int(sqlite3_stmt*)>& bind,
                                      const char* what);

  std::unique_ptr<SqliteStore> store_;  // owns the connection; never used as a results Store
  bool read_only_ = false;
};

}  // namespace gatewatch::storage
