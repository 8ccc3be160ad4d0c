#include "storage/schema.h"

#include <string>
#include <string_view>
#include <vector>

#include "storage/sqlite_store.h"
#include "storage/sqlite_util.h"

namespace gatewatch::storage {

// The database's tables, the migrations that build them one version at a time, and the
// migration of a database to the latest version (SqliteStore::Migrate).
//
// Schema (current version 5)
//
// results: one row per probe attempt (docs/probes.md), confirmed or not.
//   id INTEGER PRIMARY KEY, monitor, region, started_at (unix ms), attempt, confirmed (0/1),
//   outcome (stable name, docs/probes.md), failure (0/1 = probes::IsFailure(outcome), for
//   retention and the failure index), http_status (0 = none), resolve_us .. total_us (NULL =
//   phase not reached, never a fake zero), bytes_read, remote_ip, resolved (JSON array of
//   strings), http_version, tls_version, tls_subject, tls_issuer, tls_earliest_expiry (unix
//   ms, NULL = unknown), tls_earliest_expiry_subject, emitter and reason (stable names),
//   headers (JSON object, names lower-case, in arrival order; a repeated header's values
//   are joined with ", " as RFC 9110 allows), body_snippet (BLOB: the bytes as received),
//   detail.
//   Indexes: (monitor, region, started_at) for queries; (failure, started_at) for retention
//   (each retention class is one range); partial (monitor, region, started_at) WHERE
//   failure = 1 for incident evidence.
// rollup_minute, rollup_hour: one row per monitor x region x bucket (UNIQUE), bucket_start
//   unix ms (a multiple of the width), counters: attempts, confirmed, o_<outcome> per
//   outcome name, s_<class> per status class, <phase>_le_<ms> .. <phase>_le_inf,
//   <phase>_count, <phase>_sum_us for phase total and processing. Index on bucket_start for
//   retention. Maintained by Insert() in the batch's transaction.
// latest: (monitor, region, kind) -> result_id, started_at of the newest result; kind 0 =
//   any attempt, 1 = confirmed. Keeps Latest() independent of the size of results.
// alert_state (version 3): one row per alert x monitor the evaluator tracks (PRIMARY KEY
//   (alert, monitor), WITHOUT ROWID): state (the evaluator's AlertState ordinal: 0 ok,
//   1 pending, 2 firing, 3 resolving; storage does not interpret it), since_ms,
//   firing_since_ms, last_notified_ms (unix ms), notified (0/1), updated_ms (unix ms of the
//   commit that wrote the row). Written by AlertStore (storage/alert_store.h).
// outbox (version 3): notifications to deliver, at-least-once (docs/reliability.md). id INTEGER
//   PRIMARY KEY (creation order), notifier (config name), alert, monitor, kind ("firing",
//   "resolved", "reminder" or "test"), message (JSON: the event, independent of any
//   notifier's rendering), created_ms, attempts (attempts that did not deliver so far:
//   failures and rate limits), failures (version 5: of those, the failures, which set the
//   retry backoff), next_attempt_ms, delivered_ms and given_up_ms (NULL until the message is
//   delivered / given up; a row with both NULL is pending), last_error ('' = none).
//   Indexes: partial (next_attempt_ms) WHERE pending, for Due(), Pending() and
//   NextAttempt(); partial (COALESCE(delivered_ms, given_up_ms)) WHERE finished, for the
//   audit retention of PruneDelivered(). A state change and the messages it causes are
//   written in one transaction (AlertStore::Commit).
// incidents (version 4): docs/alerts-and-diagnosis.md incidents, written by IncidentStore
//   (storage/incident_store.h). id INTEGER PRIMARY KEY (creation order), monitor, opened_at,
//   updated_at, closed_at (unix ms; closed_at NULL = open), verdict (current) and
//   first_verdict (docs/alerts-and-diagnosis.md names, not interpreted here), summary, peak_ratio (REAL,
//   0 .. 1, only ever raised), evidence (JSON text, opaque here), alert_fired (0/1, sticky),
//   regions (JSON array of region names).
//   Indexes: partial UNIQUE (monitor) WHERE closed_at IS NULL: at most one open incident per
//   monitor, for every connection; (opened_at) and (monitor, opened_at) for listing newest
//   first; partial (closed_at) WHERE closed_at IS NOT NULL for retention (failure_retention).
//
// Stored names (outcome, emitter, reason) are the stable names of docs/probes.md, never enum ordinals, so
// reordering an enum cannot corrupt stored data. A new Outcome needs a migration adding its
// rollup column; the static_assert below stops the build until someone writes it.
static_assert(kOutcomeCount == 23,
              "a new probes::Outcome needs a migration adding its o_<name> rollup columns");
static_assert(kLatencyBuckets == 14, "new latency buckets need a migration adding columns");

namespace internal {

std::vector<std::string> RollupCounterColumns() {
  std::vector<std::string> cols = {"attempts", "confirmed"};
  for (std::string_view o : probes::kOutcomeNames) cols.push_back("o_" + std::string(o));
  for (std::string_view s : kStatusClassNames) cols.push_back("s_" + std::string(s));
  for (const char* phase : {"total", "processing"}) {
    for (int64_t b : kLatencyBucketBoundsMs) {
      cols.push_back(std::string(phase) + "_le_" + std::to_string(b));
    }
    cols.push_back(std::string(phase) + "_le_inf");
    cols.push_back(std::string(phase) + "_count");
    cols.push_back(std::string(phase) + "_sum_us");
  }
  return cols;
}

const char* RollupTable(RollupWidth w) {
  return w == RollupWidth::kMinute ? "rollup_minute" : "rollup_hour";
}

}  // namespace internal

namespace {

using internal::Join;
using internal::RollupCounterColumns;
using internal::RollupTable;

// Version 1: results, one row per probe attempt, and its indexes.
constexpr const char* kMigration1 = R"sql(
CREATE TABLE results (
  id INTEGER PRIMARY KEY,
  monitor TEXT NOT NULL,
  region TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  confirmed INTEGER NOT NULL,
  outcome TEXT NOT NULL,
  failure INTEGER NOT NULL,
  http_status INTEGER NOT NULL,
  resolve_us INTEGER,
  connect_us INTEGER,
  tls_us INTEGER,
  processing_us INTEGER,
  transfer_us INTEGER,
  total_us INTEGER,
  bytes_read INTEGER NOT NULL,
  remote_ip TEXT NOT NULL,
  resolved TEXT NOT NULL,
  http_version TEXT NOT NULL,
  tls_version TEXT NOT NULL,
  tls_subject TEXT NOT NULL,
  tls_issuer TEXT NOT NULL,
  tls_earliest_expiry INTEGER,
  tls_earliest_expiry_subject TEXT NOT NULL,
  emitter TEXT NOT NULL,
  reason TEXT NOT NULL,
  headers TEXT NOT NULL,
  body_snippet BLOB NOT NULL,
  detail TEXT NOT NULL
);
CREATE INDEX results_by_series ON results (monitor, region, started_at);
CREATE INDEX results_retention ON results (failure, started_at);
CREATE INDEX results_failures ON results (monitor, region, started_at) WHERE failure = 1;
)sql";

// Version 2: rollups and the latest-result index, back-filled from the results a version 1
// database already holds (so rollups always equal a recount of the raw rows). Generated
// from the constants above; the static_asserts pin them to what version 2 means.
std::string Migration2() {
  const std::vector<std::string> cols = RollupCounterColumns();
  std::string sql;
  for (RollupWidth w : {RollupWidth::kMinute, RollupWidth::kHour}) {
    const std::string table = RollupTable(w);
    sql += "CREATE TABLE " + table +
           " (\n  monitor TEXT NOT NULL,\n  region TEXT NOT NULL,\n  bucket_start INTEGER NOT "
           "NULL,\n";
    for (const std::string& c : cols) sql += "  " + c + " INTEGER NOT NULL DEFAULT 0,\n";
    sql += "  UNIQUE (monitor, region, bucket_start)\n);\n";
    sql += "CREATE INDEX " + table + "_retention ON " + table + " (bucket_start);\n";

    // Back-fill: the same counting rules as Insert(), written as SQL aggregates.
    const std::string width = std::to_string(WidthOf(w).count());
    std::vector<std::string> exprs = {"COUNT(*)", "SUM(confirmed)"};
    for (std::string_view o : probes::kOutcomeNames) {
      exprs.push_back("SUM(confirmed = 1 AND outcome = '" + std::string(o) + "')");
    }
    exprs.push_back("SUM(confirmed = 1 AND NOT (http_status BETWEEN 100 AND 599))");
    for (int c = 1; c <= 5; ++c) {
      exprs.push_back("SUM(confirmed = 1 AND http_status BETWEEN " + std::to_string(c * 100) +
                      " AND " + std::to_string(c * 100 + 99) + ")");
    }
    for (const char* phase : {"total_us", "processing_us"}) {
      const std::string p = phase;
      std::string lower;  // "" for the first bucket: negatives land there too
      for (int64_t b : kLatencyBucketBoundsMs) {
        const std::string upper = std::to_string(b * 1000);
        exprs.push_back("SUM(confirmed = 1 AND " + p + " IS NOT NULL" +
                        (lower.empty() ? "" : " AND " + p + " > " + lower) + " AND " + p +
                        " <= " + upper + ")");
        lower = upper;
      }
      exprs.push_back("SUM(confirmed = 1 AND " + p + " > " + lower + ")");
      exprs.push_back("SUM(confirmed = 1 AND " + p + " IS NOT NULL)");
      exprs.push_back("COALESCE(SUM(CASE WHEN confirmed = 1 THEN " + p + " END), 0)");
    }
    sql += "INSERT INTO " + table + " (monitor, region, bucket_start, " + Join(cols, ", ") +
           ")\nSELECT monitor, region, started_at - ((started_at % " + width + ") + " + width +
           ") % " + width + " AS b, " + Join(exprs, ",\n  ") +
           "\nFROM results GROUP BY monitor, region, b;\n";
  }
  sql += R"sql(
CREATE TABLE latest (
  monitor TEXT NOT NULL,
  region TEXT NOT NULL,
  kind INTEGER NOT NULL,
  started_at INTEGER NOT NULL,
  result_id INTEGER NOT NULL,
  PRIMARY KEY (monitor, region, kind)
) WITHOUT ROWID;
INSERT INTO latest (monitor, region, kind, started_at, result_id)
  SELECT monitor, region, 0, MAX(started_at), id FROM results GROUP BY monitor, region;
INSERT INTO latest (monitor, region, kind, started_at, result_id)
  SELECT monitor, region, 1, MAX(started_at), id FROM results WHERE confirmed = 1
  GROUP BY monitor, region;
)sql";
  return sql;
}

// Version 3: alert state and the notification outbox (docs/reliability.md).
constexpr const char* kMigration3 = R"sql(
CREATE TABLE alert_state (
  alert TEXT NOT NULL,
  monitor TEXT NOT NULL,
  state INTEGER NOT NULL,
  since_ms INTEGER NOT NULL,
  firing_since_ms INTEGER NOT NULL,
  last_notified_ms INTEGER NOT NULL,
  notified INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  PRIMARY KEY (alert, monitor)
) WITHOUT ROWID;
CREATE TABLE outbox (
  id INTEGER PRIMARY KEY,
  notifier TEXT NOT NULL,
  alert TEXT NOT NULL,
  monitor TEXT NOT NULL,
  kind TEXT NOT NULL,
  message TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_ms INTEGER NOT NULL,
  delivered_ms INTEGER,
  given_up_ms INTEGER,
  last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX outbox_due ON outbox (next_attempt_ms)
  WHERE delivered_ms IS NULL AND given_up_ms IS NULL;
CREATE INDEX outbox_finished ON outbox (COALESCE(delivered_ms, given_up_ms))
  WHERE delivered_ms IS NOT NULL OR given_up_ms IS NOT NULL;
)sql";

// Version 4: incidents (docs/alerts-and-diagnosis.md).
constexpr const char* kMigration4 = R"sql(
CREATE TABLE incidents (
  id INTEGER PRIMARY KEY,
  monitor TEXT NOT NULL,
  opened_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  closed_at INTEGER,
  verdict TEXT NOT NULL,
  first_verdict TEXT NOT NULL,
  summary TEXT NOT NULL DEFAULT '',
  peak_ratio REAL NOT NULL DEFAULT 0,
  evidence TEXT NOT NULL DEFAULT '{}',
  alert_fired INTEGER NOT NULL DEFAULT 0,
  regions TEXT NOT NULL DEFAULT '[]'
);
CREATE UNIQUE INDEX incidents_one_open ON incidents (monitor) WHERE closed_at IS NULL;
CREATE INDEX incidents_by_opened ON incidents (opened_at);
CREATE INDEX incidents_by_monitor ON incidents (monitor, opened_at);
CREATE INDEX incidents_retention ON incidents (closed_at) WHERE closed_at IS NOT NULL;
)sql";

// Version 5: outbox.failures, so that rate limits (429) no longer grow the retry backoff.
// Older rows counted every attempt that did not deliver in `attempts`; that is the most
// failures they can have had.
constexpr const char* kMigration5 = R"sql(
ALTER TABLE outbox ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
UPDATE outbox SET failures = attempts;
)sql";

// Migration i+1 takes the schema from version i to i+1. Never edit a released step: add one.
const std::vector<std::string>& Migrations() {
  static const std::vector<std::string> steps = {kMigration1, Migration2(), kMigration3,
                                                 kMigration4, kMigration5};
  return steps;
}

}  // namespace

int SqliteStore::LatestSchemaVersion() { return static_cast<int>(Migrations().size()); }

Result<int> SqliteStore::SchemaVersion() {
  GW_CHECK_OWNER_THREAD("SqliteStore");
  auto v = QueryInt("PRAGMA user_version");
  if (!v) return Error(v.error());
  return static_cast<int>(*v);
}

Result<void> SqliteStore::Migrate(int target_version) {
  auto current = SchemaVersion();
  if (!current) return Error(current.error());
  if (*current > LatestSchemaVersion()) {
    return Error("storage: " + path_ + ": schema version " + std::to_string(*current) +
                 " was written by a newer gatewatch (this one knows up to " +
                 std::to_string(LatestSchemaVersion()) + ")");
  }
  const auto& steps = Migrations();
  for (int v = *current; v < target_version; ++v) {
    // One transaction per step: a failed step leaves the previous version intact.
    if (auto r = Exec("BEGIN IMMEDIATE"); !r) return r;
    auto step = Exec(steps[static_cast<size_t>(v)]);
    if (step) step = Exec("PRAGMA user_version = " + std::to_string(v + 1));
    if (step) step = Exec("COMMIT");
    if (!step) {
      (void)Exec("ROLLBACK");
      return Error("storage: " + path_ + ": migration to schema version " + std::to_string(v + 1) +
                   " failed: " + step.error());
    }
  }
  return {};
}

}  // namespace gatewatch::storage
