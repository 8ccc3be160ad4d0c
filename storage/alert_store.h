#pragma once
// AlertStore: the persisted alert state and the notification outbox (docs/reliability.md: "alert
// state and the notification outbox live in SQLite, so a kill -9 and restart neither loses a
// pending notification nor drops a resolved, and does not re-send a message whose delivery was
// recorded"). Tables alert_state and outbox (schema version 3; outbox.failures since version 5;
// see storage/schema.cc).
//
// Use: the evaluator's side calls LoadStates() on start-up and Commit() for every change; the
// delivery thread calls Due(), then MarkDelivered() / Reschedule() / GiveUp() per message, and
// NextAttempt() to know how long it may sleep. Delivery is at-least-once: a crash between a
// POST and its MarkDelivered() repeats that one message; a recorded delivery is never repeated.
//
// Thread: an AlertStore is thread-bound, like SqliteStore: Open() it on the thread that uses
// it; every method and the destructor must run there (debug builds abort otherwise). Open one
// AlertStore per thread that needs one (e.g. the pipeline and the delivery thread); WAL lets
// them work beside the results writer. Methods block on disk I/O and, while another connection
// holds the write lock, up to OpenOptions::busy_timeout. Every write is one short transaction.
//
// Connection: an AlertStore owns its own connection, opened by SqliteStore::Open() (same WAL
// mode, busy timeout, numbered migrations and newer-schema refusal), which it holds privately;
// SqliteStore befriends AlertStore for that one purpose instead of exposing its sqlite3* to
// every module. Callers never see SQL.
//
// Times are stored at millisecond precision (unix ms).

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "probes/clock.h"
#include "probes/result.h"
#include "storage/sqlite_store.h"

namespace gatewatch::storage {

// The evaluator's state of one alert x monitor. `state` is the alerting::AlertState ordinal
// (storage depends on probes only, so it stores the number and does not interpret it).
struct AlertStateRecord {
  std::string alert{}, monitor{};
  int state = 0;
  SystemTime since{}, firing_since{}, last_notified{};
  bool notified = false;
};

// One notification for one notifier. `message` is the event as JSON, independent of any
// notifier's rendering (the notifier renders it at delivery time).
struct OutboxMessage {
  int64_t id = 0;  // assigned by Commit() (ignored there); creation order
  std::string notifier{}, alert{}, monitor{};
  std::string kind{};  // one of kOutboxKinds
  std::string message{};
  SystemTime created_at{}, next_attempt_at{};
  int attempts = 0;          // attempts that did not deliver so far (Reschedule() adds one)
  int failures = 0;          // of those, the RetryCause::kFailure ones
  std::string last_error{};  // "" = none
};

inline constexpr const char* kOutboxKinds[] = {"firing", "resolved", "reminder", "test"};

// Why an attempt did not deliver. A failure (the receiver or the network failed) is counted in
// OutboxMessage::failures, which sets the retry backoff; a rate limit (the receiver asked to be
// called later) is not.
enum class RetryCause : uint8_t { kFailure, kRateLimited };

// Due() returns at most this many messages, whatever the caller asks for.
inline constexpr int kMaxDueLimit = 1'000;

class AlertStore {
 public:
  // Opens (read-write: creates if missing) the database at `path` with SqliteStore::Open()
  // and `options` (migrating it to the latest schema), on the calling thread. `clock` stamps
  // alert_state.updated_ms and must outlive the store. Fails when the schema is older than
  // version 5 (only possible with options.read_only or migrate_to_version_for_test).
  static Result<std::unique_ptr<AlertStore>> Open(const std::string& path, const Clock& clock,
                                                  const OpenOptions& options = {});

  ~AlertStore();
  AlertStore(const AlertStore&) = delete;
  AlertStore& operator=(const AlertStore&) = delete;

  // Every stored alert state, ordered by alert then monitor.
  Result<std::vector<AlertStateRecord>> LoadStates();

  // In ONE transaction: upserts `states` (keyed by alert, monitor), deletes the `removed`
  // (alert, monitor) rows (absent ones are ignored) and enqueues `enqueue` as new pending
  // messages (their id is ignored and assigned in order). Either all of it is stored or, on
  // error, none of it. A message with an unknown kind fails the whole call before anything is
  // written. Nothing to do is not an error.
  Result<void> Commit(std::span<const AlertStateRecord> states,
                      std::span<const std::pair<std::string, std::string>> removed,
                      std::span<const OutboxMessage> enqueue);

  // Pending messages (not delivered, not given up) with next_attempt_at <= now, oldest (lowest
  // id) first, at most `limit` clamped to 1 .. kMaxDueLimit.
  Result<std::vector<OutboxMessage>> Due(SystemTime now, int limit);

  // Transitions of one pending message; each fails, changing nothing, when `id` is not a
  // pending message (unknown, pruned, already delivered or given up).
  // MarkDelivered: recorded as delivered at `at`; never returned by Due() again.
  Result<void> MarkDelivered(int64_t id, SystemTime at);
  // Reschedule: an attempt that did not deliver: attempts + 1, failures + 1 when `cause` is
  // kFailure, next attempt at `next_attempt`, last_error.
  Result<void> Reschedule(int64_t id, SystemTime next_attempt, const std::string& error,
                          RetryCause cause);
  // GiveUp: no more attempts; given up at `at` with `reason` as last_error. attempts is kept.
  Result<void> GiveUp(int64_t id, SystemTime at, const std::string& reason);

  // Pending messages (gatewatch_outbox_pending), due or not.
  Result<int64_t> Pending();
  // The earliest next_attempt_at of a pending message; nullopt when none is pending.
  Result<std::optional<SystemTime>> NextAttempt();

  // Audit retention, incremental: deletes at most `max_rows` delivered or given-up messages
  // finished strictly before `older_than` (one short transaction) and returns how many.
  // Pending messages are never deleted. REQUIRES: max_rows > 0.
  Result<int64_t> PruneDelivered(SystemTime older_than, int max_rows);

  // --- Per-notifier lines, for the delivery thread (alerting/delivery.h) ---------------------
  // Messages of one notifier go out in id order, so the delivery thread looks at each
  // notifier's oldest pending messages whether they are due or not (a later message must wait
  // for an earlier one's retry). Both queries read only the pending rows (index outbox_due),
  // never the delivered history.

  // Pending messages per notifier, due or not: notifier -> count (absent = none).
  Result<std::map<std::string, int64_t>> PendingByNotifier();

  // The oldest pending messages of `notifier`, due or not, lowest id first, at most `limit`
  // clamped to 1 .. kMaxDueLimit.
  Result<std::vector<OutboxMessage>> PendingOf(const std::string& notifier, int limit);

  // The alerts an Alertmanager must still be told are firing, after a restart: for each
  // (notifier, alert, monitor) of `notifiers`, the newest finished (delivered or given up)
  // message that is not a "test"; returned when it was delivered and is a "firing" or
  // "reminder", lowest id first. A delivered "resolved", or any given-up message, ends the
  // pair. Pending messages are not looked at. Reads the finished history of those notifiers
  // (meant for start-up, not for a loop); rows pruned by PruneDelivered() are gone, so a pair
  // whose last delivered message is older than the audit retention is not returned.
  Result<std::vector<OutboxMessage>> ActiveAlerts(std::span<const std::string> notifiers);

  bool OnOwnerThread() const { return store_->OnOwnerThread(); }
  const std::string& path() const { return store_->path(); }

  // Test hooks on this connection (see SqliteStore).
  Result<void> ExecForTest(const std::string& sql);
  Result<int64_t> QueryIntForTest(const std::string& sql);

 private:
  AlertStore(std::unique_ptr<SqliteStore> store, const Clock& clock);

  Result<void> CommitInTransaction(std::span<const AlertStateRecord> states,
                                   std::span<const std::pair<std::string, std::string>> removed,
                                   std::span<const OutboxMessage> enqueue);
  // Runs "UPDATE outbox SET <set_sql>" on one pending message (?1 = id, ?2 = time_ms, ?3 =
  // text when set_sql uses it) as its own transaction; an error when no row changed.
  Result<void> UpdatePending(int64_t id, const char* what, const std::string& set_sql,
                             int64_t time_ms, const std::string& text);
  // Runs a SELECT of kMessageColumns with `texts` bound to ?1.. and then `limit`, if any.
  Result<std::vector<OutboxMessage>> ReadMessages(const std::string& sql,
                                                  const std::vector<std::string>& texts,
                                                  std::optional<int64_t> limit, const char* what);

  std::unique_ptr<SqliteStore> store_;  // owns the connection; never used as a results Store
  const Clock& clock_;
};

}  // namespace gatewatch::storage
