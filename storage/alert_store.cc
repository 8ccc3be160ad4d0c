#include "storage/alert_store.h"

#include <sqlite3.h>

#include "storage/sqlite_util.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace gatewatch::storage {

namespace {

using std::chrono::milliseconds;

using internal::BindInt;
using internal::BindText;
using internal::ColInt;
using internal::ColText;
using internal::FromUnixMs;
using internal::Stmt;
// Every time written here is clamped (SystemTime::max() and friends stay representable).
int64_t ToUnixMs(SystemTime t) { return internal::ToUnixMsClamped(t); }

bool KnownKind(std::string_view kind) {
  return std::any_of(std::begin(kOutboxKinds), std::end(kOutboxKinds),
                     [&](const char* k) { return kind == k; });
}

constexpr const char* kPending = "delivered_ms IS NULL AND given_up_ms IS NULL";

// The columns ReadMessage() reads, in its order.
constexpr const char* kMessageColumns =
    "id, notifier, alert, monitor, kind, message, created_ms, next_attempt_ms, attempts, "
    "last_error, failures";

OutboxMessage ReadMessage(sqlite3_stmt* s) {
  return OutboxMessage{
      .id = ColInt(s, 0),
      .notifier = ColText(s, 1),
      .alert = ColText(s, 2),
      .monitor = ColText(s, 3),
      .kind = ColText(s, 4),
      .message = ColText(s, 5),
      .created_at = FromUnixMs(ColInt(s, 6)),
      .next_attempt_at = FromUnixMs(ColInt(s, 7)),
      .attempts = static_cast<int>(ColInt(s, 8)),
      .failures = static_cast<int>(ColInt(s, 10)),
      .last_error = ColText(s, 9),
  };
}

}  // namespace

AlertStore::AlertStore(std::unique_ptr<SqliteStore> store, const Clock& clock)
    : store_(std::move(store)), clock_(clock) {}

// store_ closes the connection (and checks the thread) after this body.
AlertStore::~AlertStore() = default;

Result<std::unique_ptr<AlertStore>> AlertStore::Open(const std::string& path, const Clock& clock,
                                                     const OpenOptions& options) {
  auto store = SqliteStore::Open(path, options);
  if (!store) return Error(store.error());
  auto version = (*store)->SchemaVersion();
  if (!version) return Error(version.error());
  if (*version < 5) {
    return Error("storage: " + path + ": schema version " + std::to_string(*version) +
                 " predates this gatewatch's alert state and outbox (version 5; open it "
                 "read-write once to migrate)");
  }
  return std::unique_ptr<AlertStore>(new AlertStore(std::move(*store), clock));
}

Result<std::vector<AlertStateRecord>> AlertStore::LoadStates() {
  GW_CHECK_OWNER_THREAD("AlertStore");
  sqlite3* db = store_->db_;
  Stmt s;
  if (sqlite3_prepare_v2(db,
                         "SELECT alert, monitor, state, since_ms, firing_since_ms, "
                         "last_notified_ms, notified FROM alert_state ORDER BY alert, monitor",
                         -1, s.out(), nullptr) != SQLITE_OK) {
    return Error(store_->LastError("prepare alert state query"));
  }
  std::vector<AlertStateRecord> out;
  for (;;) {
    const int rc = sqlite3_step(s.get());
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return Error(store_->LastError("alert state query"));
    out.push_back(AlertStateRecord{
        .alert = ColText(s.get(), 0),
        .monitor = ColText(s.get(), 1),
        .state = static_cast<int>(ColInt(s.get(), 2)),
        .since = FromUnixMs(ColInt(s.get(), 3)),
        .firing_since = FromUnixMs(ColInt(s.get(), 4)),
        .last_notified = FromUnixMs(ColInt(s.get(), 5)),
        .notified = ColInt(s.get(), 6) != 0,
    });
  }
  return out;
}

Result<void> AlertStore::Commit(std::span<const AlertStateRecord> states,
                                std::span<const std::pair<std::string, std::string>> removed,
                                std::span<const OutboxMessage> enqueue) {
  GW_CHECK_OWNER_THREAD("AlertStore");
  for (const OutboxMessage& m : enqueue) {
    if (!KnownKind(m.kind)) {
      return Error("storage: outbox: unknown message kind '" + m.kind + "' (alert " + m.alert +
                   ", monitor " + m.monitor + ", notifier " + m.notifier + ")");
    }
  }
  if (states.empty() && removed.empty() && enqueue.empty()) return {};
  // IMMEDIATE takes the write lock now (waiting up to busy_timeout) instead of failing halfway
  // when a read transaction cannot be upgraded.
  if (auto r = store_->Exec("BEGIN IMMEDIATE"); !r) return r;
  auto r = CommitInTransaction(states, removed, enqueue);
  if (r) r = store_->Exec("COMMIT");
  if (!r) {
    if (!sqlite3_get_autocommit(store_->db_)) (void)store_->Exec("ROLLBACK");
    return r;
  }
  return {};
}

Result<void> AlertStore::CommitInTransaction(
    std::span<const AlertStateRecord> states,
    std::span<const std::pair<std::string, std::string>> removed,
    std::span<const OutboxMessage> enqueue) {
  sqlite3* db = store_->db_;
  const int64_t now_ms = ToUnixMs(clock_.Now());
  if (!states.empty()) {
    Stmt s;
    if (sqlite3_prepare_v2(
            db,
            "INSERT INTO alert_state (alert, monitor, state, since_ms, firing_since_ms, "
            "last_notified_ms, notified, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
            "ON CONFLICT (alert, monitor) DO UPDATE SET state = excluded.state, since_ms = "
            "excluded.since_ms, firing_since_ms = excluded.firing_since_ms, last_notified_ms = "
            "excluded.last_notified_ms, notified = excluded.notified, updated_ms = "
            "excluded.updated_ms",
            -1, s.out(), nullptr) != SQLITE_OK) {
      return Error(store_->LastError("prepare alert state upsert"));
    }
    for (const AlertStateRecord& st : states) {
      sqlite3_reset(s.get());
      int rc = BindText(s.get(), 1, st.alert);
      rc |= BindText(s.get(), 2, st.monitor);
      rc |= BindInt(s.get(), 3, st.state);
      rc |= BindInt(s.get(), 4, ToUnixMs(st.since));
      rc |= BindInt(s.get(), 5, ToUnixMs(st.firing_since));
      rc |= BindInt(s.get(), 6, ToUnixMs(st.last_notified));
      rc |= BindInt(s.get(), 7, st.notified ? 1 : 0);
      rc |= BindInt(s.get(), 8, now_ms);
      if (rc != SQLITE_OK) return Error(store_->LastError("bind alert state"));
      if (sqlite3_step(s.get()) != SQLITE_DONE) {
        return Error(store_->LastError("write alert state " + st.alert + "/" + st.monitor));
      }
    }
  }
  if (!removed.empty()) {
    Stmt s;
    if (sqlite3_prepare_v2(db, "DELETE FROM alert_state WHERE alert = ?1 AND monitor = ?2", -1,
                           s.out(), nullptr) != SQLITE_OK) {
      return Error(store_->LastError("prepare alert state delete"));
    }
    for (const auto& [alert, monitor] : removed) {
      sqlite3_reset(s.get());
      int rc = BindText(s.get(), 1, alert);
      rc |= BindText(s.get(), 2, monitor);
      if (rc != SQLITE_OK) return Error(store_->LastError("bind alert state delete"));
      if (sqlite3_step(s.get()) != SQLITE_DONE) {
        return Error(store_->LastError("delete alert state " + alert + "/" + monitor));
      }
    }
  }
  if (!enqueue.empty()) {
    Stmt s;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO outbox (notifier, alert, monitor, kind, message, "
                           "created_ms, attempts, next_attempt_ms, last_error, failures) VALUES "
                           "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                           -1, s.out(), nullptr) != SQLITE_OK) {
      return Error(store_->LastError("prepare outbox insert"));
    }
    for (const OutboxMessage& m : enqueue) {
      sqlite3_reset(s.get());
      int rc = BindText(s.get(), 1, m.notifier);
      rc |= BindText(s.get(), 2, m.alert);
      rc |= BindText(s.get(), 3, m.monitor);
      rc |= BindText(s.get(), 4, m.kind);
      rc |= BindText(s.get(), 5, m.message);
      rc |= BindInt(s.get(), 6, ToUnixMs(m.created_at));
      rc |= BindInt(s.get(), 7, m.attempts);
      rc |= BindInt(s.get(), 8, ToUnixMs(m.next_attempt_at));
      rc |= BindText(s.get(), 9, m.last_error);
      rc |= BindInt(s.get(), 10, m.failures);
      if (rc != SQLITE_OK) return Error(store_->LastError("bind outbox message"));
      if (sqlite3_step(s.get()) != SQLITE_DONE) {
        return Error(store_->LastError("enqueue " + m.kind + " for " + m.alert + "/" + m.monitor +
                                       " to " + m.notifier));
      }
    }
  }
  return {};
}

Result<std::vector<OutboxMessage>> AlertStore::Due(SystemTime now, int limit) {
  GW_CHECK_OWNER_THREAD("AlertStore");
  sqlite3* db = store_->db_;
  const std::string sql = std::string("SELECT ") + kMessageColumns + " FROM outbox WHERE " +
                          kPending + " AND next_attempt_ms <= ?1 ORDER BY id LIMIT ?2";
  Stmt s;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, s.out(), nullptr) != SQLITE_OK) {
    return Error(store_->LastError("prepare outbox due query"));
  }
  BindInt(s.get(), 1, ToUnixMs(now));
  BindInt(s.get(), 2, std::clamp(limit, 1, kMaxDueLimit));
  std::vector<OutboxMessage> out;
  for (;;) {
    const int rc = sqlite3_step(s.get());
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return Error(store_->LastError("outbox due query"));
    out.push_back(ReadMessage(s.get()));
  }
  return out;
}

Result<void> AlertStore::UpdatePending(int64_t id, const char* what, const std::string& set_sql,
                                       int64_t time_ms, const std::string& text) {
  GW_CHECK_OWNER_THREAD("AlertStore");
  sqlite3* db = store_->db_;
  const std::string sql =
      "UPDATE outbox SET " + set_sql + " WHERE id = ?1 AND " + std::string(kPending);
  Stmt s;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, s.out(), nullptr) != SQLITE_OK) {
    return Error(store_->LastError(std::string("prepare outbox ") + what));
  }
  int rc = BindInt(s.get(), 1, id);
  rc |= BindInt(s.get(), 2, time_ms);
  if (sqlite3_bind_parameter_count(s.get()) >= 3) rc |= BindText(s.get(), 3, text);
  if (rc != SQLITE_OK) return Error(store_->LastError(std::string("bind outbox ") + what));
  // One statement outside BEGIN: its own (autocommit) transaction.
  if (sqlite3_step(s.get()) != SQLITE_DONE) {
    return Error(
        store_->LastError(std::string("outbox ") + what + " of message " + std::to_string(id)));
  }
  if (sqlite3_changes(db) == 0) {
    return Error("storage: " + store_->path() + ": outbox " + what + ": message " +
                 std::to_string(id) +
                 " is not pending (unknown, pruned, already delivered or given up)");
  }
  return {};
}

Result<void> AlertStore::MarkDelivered(int64_t id, SystemTime at) {
  return UpdatePending(id, "mark delivered", "delivered_ms = ?2", ToUnixMs(at), {});
}

Result<void> AlertStore::Reschedule(int64_t id, SystemTime next_attempt, const std::string& error,
                                    RetryCause cause) {
  return UpdatePending(id, "reschedule",
                       cause == RetryCause::kFailure
                           ? "attempts = attempts + 1, failures = failures + 1, next_attempt_ms = "
                             "?2, last_error = ?3"
                           : "attempts = attempts + 1, next_attempt_ms = ?2, last_error = ?3",
                       ToUnixMs(next_attempt), error);
}

Result<void> AlertStore::GiveUp(int64_t id, SystemTime at, const std::string& reason) {
  return UpdatePending(id, "give up", "given_up_ms = ?2, last_error = ?3", ToUnixMs(at), reason);
}

Result<int64_t> AlertStore::Pending() {
  GW_CHECK_OWNER_THREAD("AlertStore");
  return store_->QueryInt(std::string("SELECT COUNT(*) FROM outbox WHERE ") + kPending);
}

Result<std::optional<SystemTime>> AlertStore::NextAttempt() {
  GW_CHECK_OWNER_THREAD("AlertStore");
  sqlite3* db = store_->db_;
  const std::string sql = std::string("SELECT MIN(next_attempt_ms) FROM outbox WHERE ") + kPending;
  Stmt s;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, s.out(), nullptr) != SQLITE_OK) {
    return Error(store_->LastError("prepare outbox next attempt query"));
  }
  if (sqlite3_step(s.get()) != SQLITE_ROW) {
    return Error(store_->LastError("outbox next attempt query"));
  }
  if (sqlite3_column_type(s.get(), 0) == SQLITE_NULL) return std::optional<SystemTime>();
  return std::optional<SystemTime>(FromUnixMs(ColInt(s.get(), 0)));
}

Result<int64_t> AlertStore::PruneDelivered(SystemTime older_than, int max_rows) {
  GW_CHECK_OWNER_THREAD("AlertStore");
  if (max_rows <= 0) return Error("storage: PruneDelivered: max_rows must be positive");
  sqlite3* db = store_->db_;
  // The condition repeats outbox_finished's WHERE and expression, so the index serves it.
  Stmt s;
  if (sqlite3_prepare_v2(db,
                         "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE "
                         "(delivered_ms IS NOT NULL OR given_up_ms IS NOT NULL) AND "
                         "COALESCE(delivered_ms, given_up_ms) < ?1 LIMIT ?2)",
                         -1, s.out(), nullptr) != SQLITE_OK) {
    return Error(store_->LastError("prepare outbox prune"));
  }
  BindInt(s.get(), 1, ToUnixMs(older_than));
  BindInt(s.get(), 2, max_rows);
  if (sqlite3_step(s.get()) != SQLITE_DONE) return Error(store_->LastError("outbox prune"));
  return static_cast<int64_t>(sqlite3_changes(db));
}

Result<std::map<std::string, int64_t>> AlertStore::PendingByNotifier() {
  GW_CHECK_OWNER_THREAD("AlertStore");
  // INDEXED BY: without it the planner may walk the whole table (the delivered history).
  const std::string sql =
      std::string("SELECT notifier, COUNT(*) FROM outbox INDEXED BY outbox_due WHERE ") + kPending +
      " GROUP BY notifier";
  Stmt s;
  if (sqlite3_prepare_v2(store_->db_, sql.c_str(), -1, s.out(), nullptr) != SQLITE_OK) {
    return Error(store_->LastError("prepare outbox pending per notifier query"));
  }
  std::map<std::string, int64_t> out;
  for (;;) {
    const int rc = sqlite3_step(s.get());
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return Error(store_->LastError("outbox pending per notifier query"));
    out.emplace(ColText(s.get(), 0), ColInt(s.get(), 1));
  }
  return out;
}

Result<std::vector<OutboxMessage>> AlertStore::ReadMessages(const std::string& sql,
                                                            const std::vector<std::string>& texts,
                                                            std::optional<int64_t> limit,
                                                            const char* what) {
  Stmt s;
  if (sqlite3_prepare_v2(store_->db_, sql.c_str(), -1, s.out(), nullptr) != SQLITE_OK) {
    return Error(store_->LastError(std::string("prepare ") + what));
  }
  int rc = SQLITE_OK;
  int i = 1;
  for (const std::string& t : texts) rc |= BindText(s.get(), i++, t);
  if (limit) rc |= BindInt(s.get(), i, *limit);
  if (rc != SQLITE_OK) return Error(store_->LastError(std::string("bind ") + what));
  std::vector<OutboxMessage> out;
  for (;;) {
    rc = sqlite3_step(s.get());
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return Error(store_->LastError(what));
    out.push_back(ReadMessage(s.get()));
  }
  return out;
}

Result<std::vector<OutboxMessage>> AlertStore::PendingOf(const std::string& notifier, int limit) {
  GW_CHECK_OWNER_THREAD("AlertStore");
  // INDEXED BY: ORDER BY id would otherwise tempt the planner into a rowid walk from the
  // oldest row, i.e. through the whole delivered history, to find the few pending ones.
  const std::string sql = std::string("SELECT ") + kMessageColumns +
                          " FROM outbox INDEXED BY outbox_due WHERE " + kPending +
                          " AND notifier = ?1 ORDER BY id LIMIT ?2";
  return ReadMessages(sql, {notifier}, std::clamp(limit, 1, kMaxDueLimit), "outbox pending query");
}

Result<std::vector<OutboxMessage>> AlertStore::ActiveAlerts(
    std::span<const std::string> notifiers) {
  GW_CHECK_OWNER_THREAD("AlertStore");
  if (notifiers.empty()) return std::vector<OutboxMessage>{};
  std::string placeholders;
  for (size_t i = 0; i < notifiers.size(); ++i) placeholders += i == 0 ? "?" : ", ?";
  // Per pair the newest finished row decides; the outer filter keeps the still-firing ones.
  const std::string sql =
      std::string("SELECT ") + kMessageColumns +
      " FROM outbox WHERE id IN (SELECT MAX(id) FROM outbox WHERE (delivered_ms IS NOT NULL OR "
      "given_up_ms IS NOT NULL) AND kind != 'test' AND notifier IN (" +
      placeholders +
      ") GROUP BY notifier, alert, monitor) AND delivered_ms IS NOT NULL AND kind IN "
      "('firing', 'reminder') ORDER BY id";
  return ReadMessages(sql, std::vector<std::string>(notifiers.begin(), notifiers.end()),
                      std::nullopt, "outbox active alerts query");
}

Result<void> AlertStore::ExecForTest(const std::string& sql) { return store_->ExecForTest(sql); }

Result<int64_t> AlertStore::QueryIntForTest(const std::string& sql) {
  return store_->QueryIntForTest(sql);
}

}  // namespace gatewatch::storage
