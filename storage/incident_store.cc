#include "storage/incident_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>

#include "storage/sqlite_util.h"

namespace gatewatch::storage {

namespace {

using internal::BindInt;
using internal::BindText;
using internal::ColInt;
using internal::ColText;
using internal::FromUnixMs;
using internal::Stmt;
// Every time written or compared here is clamped (SystemTime::max() and friends stay
// representable).
int64_t ToUnixMs(SystemTime t) { return internal::ToUnixMsClamped(t); }

constexpr const char* kColumns =
    "id, monitor, verdict, first_verdict, summary, evidence, regions, opened_at, updated_at, "
    "closed_at, peak_ratio, alert_fired";

Result<Incident> ReadIncident(sqlite3_stmt* s) {
  Incident inc;
  inc.id = ColInt(s, 0);
  inc.monitor = ColText(s, 1);
  inc.verdict = ColText(s, 2);
  inc.first_verdict = ColText(s, 3);
  inc.summary = ColText(s, 4);
  inc.evidence = ColText(s, 5);
  const auto regions = nlohmann::json::parse(ColText(s, 6), nullptr, false);
  if (regions.is_discarded() || !regions.is_array()) {
    return Error("storage: incidents row " + std::to_string(inc.id) +
                 ": regions is not a JSON array");
  }
  for (const auto& r : regions) {
    if (r.is_string()) inc.regions.push_back(r.get<std::string>());
  }
  inc.opened_at = FromUnixMs(ColInt(s, 7));
  inc.updated_at = FromUnixMs(ColInt(s, 8));
  if (sqlite3_column_type(s, 9) != SQLITE_NULL) inc.closed_at = FromUnixMs(ColInt(s, 9));
  inc.peak_ratio = sqlite3_column_double(s, 10);
  inc.alert_fired = ColInt(s, 11) != 0;
  return inc;
}

std::string RegionsJson(const std::vector<std::string>& regions) {
  nlohmann::json arr = regions;
  // replace: bytes that are not UTF-8 must not throw (no exception leaves storage).
  return arr.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The fields every write checks; `evidence` is normalised ("" = "{}").
Result<void> ValidateFields(std::string_view what, const std::string& verdict,
                            std::string& evidence, double ratio) {
  const std::string head = "storage: incidents: " + std::string(what) + ": ";
  if (verdict.empty()) return Error(head + "verdict is empty");
  if (!std::isfinite(ratio) || ratio < 0 || ratio > 1) {
    return Error(head + "ratio " + std::to_string(ratio) + " is not a share in [0, 1]");
  }
  if (evidence.empty()) evidence = "{}";
  if (!nlohmann::json::accept(evidence)) return Error(head + "evidence is not valid JSON");
  return {};
}

}  // namespace

IncidentStore::IncidentStore(std::unique_ptr<SqliteStore> store, bool read_only)
    : store_(std::move(store)), read_only_(read_only) {}

// store_ closes the connection (and checks the thread) after this body.
IncidentStore::~IncidentStore() = default;

Result<std::unique_ptr<IncidentStore>> IncidentStore::Open(const std::string& path,
                                                           const Clock& /*clock*/,
                                                           const OpenOptions& options) {
  auto store = SqliteStore::Open(path, options);
  if (!store) return Error(store.error());
  auto version = (*store)->SchemaVersion();
  if (!version) return Error(version.error());
  if (*version < 4) {
    return Error("storage: " + path + ": schema version " + std::to_string(*version) +
                 " has no incidents (version 4; open it read-write once to migrate)");
  }
  return std::unique_ptr<IncidentStore>(new IncidentStore(std::move(*store), options.read_only));
}

Result<void> IncidentStore::CheckWritable(const char* what) const {
  if (!read_only_) return {};
  return Error("storage: " + store_->path() + ": incidents: " + what +
               ": the store was opened read-only");
}

std::string IncidentStore::NotOpen(int64_t id, const char* what) {
  const std::string head =
      "storage: " + store_->path() + ": incidents: " + what + ": incident " + std::to_string(id);
  auto found = Get(id);
  if (!found) return head + " is not open (" + found.error() + ")";
  if (!found->has_value()) return head + " does not exist (unknown or pruned)";
  return head + " of monitor " + (*found)->monitor + " is closed (at " +
         FormatTime((*found)->closed_at.value_or(SystemTime{})) + ")";
}

Result<Incident> IncidentStore::OpenIncident(const std::string& monitor, const std::string& verdict,
                                             const std::string& summary,
                                             const std::string& evidence,
                                             const std::vector<std::string>& regions, double ratio,
                                             SystemTime at) {
  GW_CHECK_OWNER_THREAD("IncidentStore");
  if (auto r = CheckWritable("open"); !r) return Error(r.error());
  if (monitor.empty()) return Error("storage: incidents: open: monitor is empty");
  std::string ev = evidence;
  if (auto r = ValidateFields("open for " + monitor, verdict, ev, ratio); !r) {
    return Error(r.error());
  }
  sqlite3* db = store_->db_;
  Stmt s;
  if (sqlite3_prepare_v2(db,
                         "INSERT INTO incidents (monitor, opened_at, updated_at, verdict, "
                         "first_verdict, summary, peak_ratio, evidence, alert_fired, regions) "
                         "VALUES (?1, ?2, ?2, ?3, ?3, ?4, ?5, ?6, 0, ?7)",
                         -1, s.out(), nullptr) != SQLITE_OK) {
    return Error(store_->LastError("prepare incident insert"));
  }
  const std::string regions_json = RegionsJson(regions);
  const int64_t at_ms = ToUnixMs(at);
  int rc = BindText(s.get(), 1, monitor);
  rc |= BindInt(s.get(), 2, at_ms);
  rc |= BindText(s.get(), 3, verdict);
  rc |= BindText(s.get(), 4, summary);
  rc |= sqlite3_bind_double(s.get(), 5, ratio);
  rc |= BindText(s.get(), 6, ev);
  rc |= BindText(s.get(), 7, regions_json);
  if (rc != SQLITE_OK) return Error(store_->LastError("bind incident"));
  // One statement outside BEGIN: its own (autocommit) transaction.
  if (sqlite3_step(s.get()) != SQLITE_DONE) {
    // The partial UNIQUE index incidents_one_open is what refuses a second open incident, so
    // the rule holds for every connection and process, not only for this object.
    if (sqlite3_extended_errcode(db) == SQLITE_CONSTRAINT_UNIQUE) {
      auto open = Query(
          "WHERE monitor = ?1 AND closed_at IS NULL",
          [&](sqlite3_stmt* q) { return BindText(q, 1, monitor); }, "open incident of monitor");
      const std::string id =
          open && !open->empty() ? " (id " + std::to_string(open->front().id) + ")" : "";
      return Error("storage: " + store_->path() + ": incidents: monitor " + monitor +
                   " already has an open incident" + id + ": close it before opening another");
    }
    return Error(store_->LastError("open incident for " + monitor));
  }
  Incident inc;
  inc.id = static_cast<int64_t>(sqlite3_last_insert_rowid(db));
  inc.monitor = monitor;
  inc.verdict = verdict;
  inc.first_verdict = verdict;
  inc.summary = summary;
  inc.evidence = std::move(ev);
  inc.regions = regions;
  inc.opened_at = inc.updated_at = FromUnixMs(at_ms);
  inc.peak_ratio = ratio;
  return inc;
}

Result<void> IncidentStore::Update(int64_t id, const std::string& verdict,
                                   const std::string& summary, const std::string& evidence,
                                   const std::vector<std::string>& regions, double ratio,
                                   bool alert_fired, SystemTime at) {
  GW_CHECK_OWNER_THREAD("IncidentStore");
  if (auto r = CheckWritable("update"); !r) return r;
  std::string ev = evidence;
  if (auto r = ValidateFields("update of incident " + std::to_string(id), verdict, ev, ratio); !r) {
    return r;
  }
  sqlite3* db = store_->db_;
  Stmt s;
  // max() and the OR keep peak_ratio and alert_fired monotonic inside the one statement, so
  // no read-modify-write race exists even with another writer connection.
  if (sqlite3_prepare_v2(db,
                         "UPDATE incidents SET verdict = ?2, summary = ?3, evidence = ?4, "
                         "regions = ?5, peak_ratio = max(peak_ratio, ?6), alert_fired = "
                         "(alert_fired OR ?7), updated_at = max(updated_at, ?8) WHERE id = ?1 "
                         "AND closed_at IS NULL",
                         -1, s.out(), nullptr) != SQLITE_OK) {
    return Error(store_->LastError("prepare incident update"));
  }
  const std::string regions_json = RegionsJson(regions);
  int rc = BindInt(s.get(), 1, id);
  rc |= BindText(s.get(), 2, verdict);
  rc |= BindText(s.get(), 3, summary);
  rc |= BindText(s.get(), 4, ev);
  rc |= BindText(s.get(), 5, regions_json);
  rc |= sqlite3_bind_double(s.get(), 6, ratio);
  rc |= BindInt(s.get(), 7, alert_fired ? 1 : 0);
  rc |= BindInt(s.get(), 8, ToUnixMs(at));
  if (rc != SQLITE_OK) return Error(store_->LastError("bind incident update"));
  if (sqlite3_step(s.get()) != SQLITE_DONE) {
    return Error(store_->LastError("update incident " + std::to_string(id)));
  }
  if (sqlite3_changes(db) == 0) return Error(NotOpen(id, "update"));
  return {};
}

Result<void> IncidentStore::Close(int64_t id, SystemTime at,
                                  const std::optional<std::string>& final_verdict,
                                  const std::optional<std::string>& final_summary) {
  GW_CHECK_OWNER_THREAD("IncidentStore");
  if (auto r = CheckWritable("close"); !r) return r;
  if (final_verdict && final_verdict->empty()) {
    return Error("storage: incidents: close of incident " + std::to_string(id) +
                 ": final verdict is empty");
  }
  sqlite3* db = store_->db_;
  Stmt s;
  // closed_at >= opened_at even when the wall clock stepped back: a closed incident never has
  // a negative duration, and the close itself never fails for it (the monitor must be able to
  // open its next incident).
  if (sqlite3_prepare_v2(db,
                         "UPDATE incidents SET closed_at = max(opened_at, ?2), updated_at = "
                         "max(updated_at, ?2), verdict = COALESCE(?3, verdict), summary = "
                         "COALESCE(?4, summary) WHERE id = ?1 AND closed_at IS NULL",
                         -1, s.out(), nullptr) != SQLITE_OK) {
    return Error(store_->LastError("prepare incident close"));
  }
  int rc = BindInt(s.get(), 1, id);
  rc |= BindInt(s.get(), 2, ToUnixMs(at));
  rc |= final_verdict ? BindText(s.get(), 3, *final_verdict) : sqlite3_bind_null(s.get(), 3);
  rc |= final_summary ? BindText(s.get(), 4, *final_summary) : sqlite3_bind_null(s.get(), 4);
  if (rc != SQLITE_OK) return Error(store_->LastError("bind incident close"));
  if (sqlite3_step(s.get()) != SQLITE_DONE) {
    return Error(store_->LastError("close incident " + std::to_string(id)));
  }
  if (sqlite3_changes(db) == 0) return Error(NotOpen(id, "close"));
  return {};
}

Result<std::vector<Incident>> IncidentStore::Query(const std::string& tail,
                                                   const std::function<int(sqlite3_stmt*)>& bind,
                                                   const char* what) {
  sqlite3* db = store_->db_;
  const std::string sql = std::string("SELECT ") + kColumns + " FROM incidents " + tail;
  Stmt s;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, s.out(), nullptr) != SQLITE_OK) {
    return Error(store_->LastError(std::string("prepare ") + what + " query"));
  }
  if (bind(s.get()) != SQLITE_OK) return Error(store_->LastError(std::string("bind ") + what));
  std::vector<Incident> out;
  for (;;) {
    const int rc = sqlite3_step(s.get());
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return Error(store_->LastError(std::string(what) + " query"));
    auto inc = ReadIncident(s.get());
    if (!inc) return Error(inc.error());
    out.push_back(std::move(*inc));
  }
  return out;
}

Result<std::vector<Incident>> IncidentStore::OpenIncidents() {
  GW_CHECK_OWNER_THREAD("IncidentStore");
  return Query(
      "WHERE closed_at IS NULL ORDER BY opened_at, id", [](sqlite3_stmt*) { return SQLITE_OK; },
      "open incidents");
}

Result<std::vector<Incident>> IncidentStore::List(const IncidentQuery& q) {
  GW_CHECK_OWNER_THREAD("IncidentStore");
  // Open at some time in [since, until); an open incident extends forever.
  std::string tail = "WHERE opened_at < ?1 AND (closed_at IS NULL OR closed_at >= ?2)";
  if (q.monitor) tail += " AND monitor = ?3";
  if (q.open_only) tail += " AND closed_at IS NULL";
  tail += " ORDER BY opened_at DESC, id DESC LIMIT ?4";
  return Query(
      tail,
      [&](sqlite3_stmt* s) {
        int rc = BindInt(s, 1, ToUnixMs(q.until));
        rc |= BindInt(s, 2, ToUnixMs(q.since));
        if (q.monitor) rc |= BindText(s, 3, *q.monitor);
        rc |= BindInt(s, 4, std::clamp(q.limit, 1, kMaxIncidentLimit));
        return rc;
      },
      "incident list");
}

Result<std::optional<Incident>> IncidentStore::Get(int64_t id) {
  GW_CHECK_OWNER_THREAD("IncidentStore");
  auto rows = Query(
      "WHERE id = ?1", [&](sqlite3_stmt* s) { return BindInt(s, 1, id); }, "incident");
  if (!rows) return Error(rows.error());
  if (rows->empty()) return std::optional<Incident>();
  return std::optional<Incident>(std::move(rows->front()));
}

Result<int64_t> IncidentStore::Prune(SystemTime older_than, int max_rows) {
  GW_CHECK_OWNER_THREAD("IncidentStore");
  if (auto r = CheckWritable("prune"); !r) return Error(r.error());
  if (max_rows <= 0) return Error("storage: incidents: Prune: max_rows must be positive");
  sqlite3* db = store_->db_;
  // "closed_at < ?1" implies the partial index's "closed_at IS NOT NULL", so
  // incidents_retention serves it; open incidents (NULL) never match.
  Stmt s;
  if (sqlite3_prepare_v2(db,
                         "DELETE FROM incidents WHERE id IN (SELECT id FROM incidents WHERE "
                         "closed_at < ?1 LIMIT ?2)",
                         -1, s.out(), nullptr) != SQLITE_OK) {
    return Error(store_->LastError("prepare incident prune"));
  }
  BindInt(s.get(), 1, ToUnixMs(older_than));
  BindInt(s.get(), 2, max_rows);
  if (sqlite3_step(s.get()) != SQLITE_DONE) return Error(store_->LastError("incident prune"));
  return static_cast<int64_t>(sqlite3_changes(db));
}

Result<void> IncidentStore::ExecForTest(const std::string& sql) { return store_->ExecForTest(sql); }

Result<int64_t> IncidentStore::QueryIntForTest(const std::string& sql) {
  return store_->QueryIntForTest(sql);
}

}  // namespace gatewatch::storage
