#include "storage/alert_store.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "storage/sqlite_store.h"
#include "tests/storage/samples.h"
#include "tests/support/fake_clock.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace gatewatch::storage {
namespace {

using namespace std::chrono_literals;
using gatewatch::testing::FakeClock;
using gatewatch::testing::TempDir;
using gatewatch::testing::WaitFor;
using testing::kBaseMs;
using testing::Ms;

using Key = std::pair<std::string, std::string>;

std::unique_ptr<AlertStore> OpenOrFail(const std::string& path, const Clock& clock,
                                       OpenOptions options = {}) {
  auto store = AlertStore::Open(path, clock, options);
  INFO((store ? std::string() : store.error()));
  REQUIRE(store.has_value());
  return std::move(*store);
}

void CommitOrFail(AlertStore& store, const std::vector<AlertStateRecord>& states,
                  const std::vector<Key>& removed, const std::vector<OutboxMessage>& enqueue) {
  auto r = store.Commit(states, removed, enqueue);
  INFO((r ? std::string() : r.error()));
  REQUIRE(r.has_value());
}

void RequireOk(const Result<void>& r) {
  INFO((r ? std::string() : r.error()));
  REQUIRE(r.has_value());
}

AlertStateRecord State(const std::string& alert, const std::string& monitor, int state,
                       int64_t since_ms) {
  return {.alert = alert,
          .monitor = monitor,
          .state = state,
          .since = Ms(since_ms),
          .firing_since = Ms(since_ms - 1'000),
          .last_notified = Ms(since_ms + 1'000),
          .notified = state == 2};
}

OutboxMessage Message(const std::string& notifier, const std::string& kind, int64_t next_ms,
                      const std::string& body = "{}") {
  return {.notifier = notifier,
          .alert = "down",
          .monitor = "shop",
          .kind = kind,
          .message = body,
          .created_at = Ms(kBaseMs),
          .next_attempt_at = Ms(next_ms)};
}

void CheckSameState(const AlertStateRecord& got, const AlertStateRecord& want) {
  CHECK(got.alert == want.alert);
  CHECK(got.monitor == want.monitor);
  CHECK(got.state == want.state);
  CHECK(got.since == want.since);
  CHECK(got.firing_since == want.firing_since);
  CHECK(got.last_notified == want.last_notified);
  CHECK(got.notified == want.notified);
}

std::vector<OutboxMessage> DueOrFail(AlertStore& store, SystemTime now, int limit) {
  auto due = store.Due(now, limit);
  INFO((due ? std::string() : due.error()));
  REQUIRE(due.has_value());
  return *due;
}

int64_t PendingOrFail(AlertStore& store) {
  auto n = store.Pending();
  INFO((n ? std::string() : n.error()));
  REQUIRE(n.has_value());
  return *n;
}

int64_t QueryOrFail(AlertStore& store, const std::string& sql) {
  auto n = store.QueryIntForTest(sql);
  INFO(sql << (n ? std::string() : ": " + n.error()));
  REQUIRE(n.has_value());
  return *n;
}

TEST_CASE("AlertStore: migrates a version 2 database, keeping its results") {
  TempDir dir;
  const std::string path = dir.File("gw.db");
  FakeClock clock;
  {
    auto v2 = SqliteStore::Open(path, {.migrate_to_version_for_test = 2});
    REQUIRE(v2.has_value());
    auto version = (*v2)->SchemaVersion();
    REQUIRE(version.has_value());
    REQUIRE(*version == 2);
    CHECK_FALSE((*v2)->QueryIntForTest("SELECT COUNT(*) FROM outbox").has_value());
    CHECK_FALSE((*v2)->QueryIntForTest("SELECT COUNT(*) FROM alert_state").has_value());
    // A row as a version 2 gatewatch wrote it (Insert needs the latest schema).
    RequireOk((*v2)->ExecForTest(
        "INSERT INTO results (monitor, region, started_at, attempt, confirmed, outcome, "
        "failure, http_status, processing_us, total_us, bytes_read, remote_ip, resolved, "
        "http_version, tls_version, tls_subject, tls_issuer, tls_earliest_expiry_subject, "
        "emitter, reason, headers, body_snippet, detail) VALUES ('m', 'local', " +
        std::to_string(kBaseMs + 1'000) +
        ", 0, 1, 'ok', 0, 200, 1500, 2500, 10, '127.0.0.1', '[\"127.0.0.1\"]', '1.1', '', '', "
        "'', '', 'none', 'unknown', '{}', X'', '')"));
    RequireOk((*v2)->ExecForTest(
        "INSERT INTO rollup_minute (monitor, region, bucket_start, attempts, confirmed) "
        "VALUES ('m', 'local', " +
        std::to_string(kBaseMs) + ", 1, 1)"));
  }
  SUBCASE("an AlertStore on a version 2 schema is refused") {
    auto old = AlertStore::Open(path, clock, {.migrate_to_version_for_test = 2});
    REQUIRE_FALSE(old.has_value());
    CHECK(old.error().find("schema version 2") != std::string::npos);
  }
  SUBCASE("a normal open migrates to the latest version (3 or later) and keeps the results") {
    auto alerts = OpenOrFail(path, clock);
    CHECK(SqliteStore::LatestSchemaVersion() >= 3);
    CHECK(QueryOrFail(*alerts, "PRAGMA user_version") == SqliteStore::LatestSchemaVersion());
    CHECK(QueryOrFail(*alerts, "SELECT COUNT(*) FROM alert_state") == 0);
    CHECK(QueryOrFail(*alerts, "SELECT COUNT(*) FROM outbox") == 0);
    CHECK(QueryOrFail(*alerts,
                      "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name IN "
                      "('outbox_due', 'outbox_finished')") == 2);
    CommitOrFail(*alerts, {State("down", "m", 2, kBaseMs)}, {},
                 {Message("slack", "firing", kBaseMs)});
    CHECK(PendingOrFail(*alerts) == 1);

    auto results = SqliteStore::Open(path);
    REQUIRE(results.has_value());
    auto rows = (*results)->Results({.monitor = "m", .limit = kMaxResultLimit});
    REQUIRE(rows.has_value());
    REQUIRE(rows->size() == 1);
    CHECK(rows->front().started_at == Ms(kBaseMs + 1'000));
    CHECK(rows->front().remote_ip == "127.0.0.1");
    auto rollups = (*results)->Rollups({.monitor = "m", .since = Ms(kBaseMs)});
    REQUIRE(rollups.has_value());
    REQUIRE(rollups->size() == 1);
    CHECK(rollups->front().attempts == 1);
  }
}

TEST_CASE("AlertStore: migrates a version 4 outbox, whose failures start at its attempts") {
  TempDir dir;
  const std::string path = dir.File("gw.db");
  FakeClock clock;
  {
    // The schema and rows as a version 4 gatewatch wrote them: attempts counted every attempt
    // that did not deliver, rate limits included.
    auto v4 = SqliteStore::Open(path, {.migrate_to_version_for_test = 4});
    REQUIRE(v4.has_value());
    auto version = (*v4)->SchemaVersion();
    REQUIRE(version.has_value());
    REQUIRE(*version == 4);
    CHECK_FALSE((*v4)->QueryIntForTest("SELECT MAX(failures) FROM outbox").has_value());
    const std::string t = std::to_string(kBaseMs);
    RequireOk((*v4)->ExecForTest(
        "INSERT INTO outbox (notifier, alert, monitor, kind, message, created_ms, attempts, "
        "next_attempt_ms, last_error) VALUES ('slack', 'down', 'shop', 'firing', '{}', " +
        t + ", 3, " + t + ", 'http 503'), ('slack', 'down', 'shop', 'resolved', '{}', " + t +
        ", 0, " + t + ", '')"));
    RequireOk((*v4)->ExecForTest(
        "INSERT INTO outbox (notifier, alert, monitor, kind, message, created_ms, attempts, "
        "next_attempt_ms, delivered_ms) VALUES ('slack', 'slow', 'api', 'firing', '{}', " +
        t + ", 2, " + t + ", " + t + ")"));
  }
  SUBCASE("an AlertStore on a version 4 schema is refused") {
    auto old = AlertStore::Open(path, clock, {.migrate_to_version_for_test = 4});
    REQUIRE_FALSE(old.has_value());
    CHECK(old.error().find("schema version 4") != std::string::npos);
  }
  SUBCASE("a normal open migrates, and rate limits no longer count as failures") {
    auto store = OpenOrFail(path, clock);
    CHECK(QueryOrFail(*store, "PRAGMA user_version") == SqliteStore::LatestSchemaVersion());
    CHECK(QueryOrFail(*store,
                      "SELECT failures FROM outbox WHERE kind = 'firing' AND "
                      "alert = 'slow'") == 2);
    auto pending = store->PendingOf("slack", 10);
    REQUIRE(pending.has_value());
    REQUIRE(pending->size() == 2);
    const OutboxMessage head = (*pending)[0];
    CHECK(head.kind == "firing");
    CHECK(head.attempts == 3);
    CHECK(head.failures == 3);  // at most every earlier attempt failed
    CHECK(head.last_error == "http 503");
    CHECK((*pending)[1].attempts == 0);
    CHECK((*pending)[1].failures == 0);

    RequireOk(
        store->Reschedule(head.id, Ms(kBaseMs + 7'000), "http 429", RetryCause::kRateLimited));
    RequireOk(store->Reschedule(head.id, Ms(kBaseMs + 9'000), "http 500", RetryCause::kFailure));
    pending = store->PendingOf("slack", 1);
    REQUIRE(pending.has_value());
    REQUIRE(pending->size() == 1);
    CHECK(pending->front().attempts == 5);
    CHECK(pending->front().failures == 4);
    CHECK(pending->front().next_attempt_at == Ms(kBaseMs + 9'000));

    // New messages start with no failures; failures are stored as given.
    OutboxMessage fresh = Message("slack", "firing", kBaseMs + 10'000);
    fresh.failures = 2;
    CommitOrFail(*store, {}, {}, {Message("slack", "firing", kBaseMs + 10'000), fresh});
    pending = store->PendingOf("slack", 10);
    REQUIRE(pending.has_value());
    REQUIRE(pending->size() == 4);
    CHECK((*pending)[2].failures == 0);
    CHECK((*pending)[3].failures == 2);
  }
}

TEST_CASE("AlertStore: alert states round-trip, are replaced and removed") {
  TempDir dir;
  const std::string path = dir.File("gw.db");
  FakeClock clock(Ms(kBaseMs + 5'000));
  const AlertStateRecord a = State("down", "shop", 2, kBaseMs + 123);
  const AlertStateRecord b = State("down", "api", 1, kBaseMs - 7);  // before the hour
  const AlertStateRecord c = State("slow", "api", 0, 0);            // around the epoch
  {
    auto store = OpenOrFail(path, clock);
    auto empty = store->LoadStates();
    REQUIRE(empty.has_value());
    CHECK(empty->empty());
    CommitOrFail(*store, {a, b, c}, {}, {});
    CHECK(QueryOrFail(*store, "SELECT MIN(updated_ms) FROM alert_state") == kBaseMs + 5'000);
  }
  auto store = OpenOrFail(path, clock);  // a fresh connection reads the file
  auto loaded = store->LoadStates();
  REQUIRE(loaded.has_value());
  REQUIRE(loaded->size() == 3);  // ordered by alert, then monitor
  CheckSameState((*loaded)[0], b);
  CheckSameState((*loaded)[1], a);
  CheckSameState((*loaded)[2], c);

  AlertStateRecord a2 = a;
  a2.state = 3;
  a2.since = Ms(kBaseMs + 60'000);
  a2.notified = false;
  clock.Advance(1min);
  CommitOrFail(*store, {a2}, {{"down", "api"}, {"never", "stored"}}, {});
  loaded = store->LoadStates();
  REQUIRE(loaded.has_value());
  REQUIRE(loaded->size() == 2);
  CheckSameState((*loaded)[0], a2);
  CheckSameState((*loaded)[1], c);
  CHECK(QueryOrFail(*store, "SELECT updated_ms FROM alert_state WHERE monitor = 'shop'") ==
        kBaseMs + 65'000);
  CHECK(QueryOrFail(*store, "SELECT updated_ms FROM alert_state WHERE alert = 'slow'") ==
        kBaseMs + 5'000);

  // Nothing to do is not an error and writes nothing.
  RequireOk(store->Commit({}, {}, {}));
  CHECK(QueryOrFail(*store, "SELECT COUNT(*) FROM alert_state") == 2);
}

TEST_CASE("AlertStore: Commit writes a state change and its messages together or not at all") {
  TempDir dir;
  const std::string path = dir.File("gw.db");
  FakeClock clock;
  auto store = OpenOrFail(path, clock);
  const AlertStateRecord before = State("down", "shop", 1, kBaseMs);
  const AlertStateRecord gone = State("down", "api", 2, kBaseMs);
  CommitOrFail(*store, {before, gone}, {}, {});
  // The second message fails inside the transaction, after the state rows and the first
  // message were written.
  RequireOk(store->ExecForTest(
      "CREATE TEMP TRIGGER boom BEFORE INSERT ON main.outbox WHEN NEW.notifier = 'boom' "
      "BEGIN SELECT RAISE(ABORT, 'boom'); END"));

  AlertStateRecord firing = before;
  firing.state = 2;
  firing.since = Ms(kBaseMs + 30'000);
  auto r = store->Commit(std::vector<AlertStateRecord>{firing}, std::vector<Key>{{"down", "api"}},
                         std::vector<OutboxMessage>{Message("slack", "firing", kBaseMs),
                                                    Message("boom", "firing", kBaseMs)});
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().find("boom") != std::string::npos);
  auto loaded = store->LoadStates();
  REQUIRE(loaded.has_value());
  REQUIRE(loaded->size() == 2);
  CheckSameState((*loaded)[0], gone);
  CheckSameState((*loaded)[1], before);
  CHECK(QueryOrFail(*store, "SELECT COUNT(*) FROM outbox") == 0);
  CHECK(PendingOrFail(*store) == 0);

  SUBCASE("an unknown kind fails before anything is written") {
    auto bad = store->Commit(std::vector<AlertStateRecord>{firing}, {},
                             std::vector<OutboxMessage>{Message("slack", "fired", kBaseMs)});
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().find("unknown message kind 'fired'") != std::string::npos);
    loaded = store->LoadStates();
    REQUIRE(loaded.has_value());
    CheckSameState((*loaded)[1], before);
  }
  SUBCASE("the connection commits afterwards") {
    CommitOrFail(*store, {firing}, {{"down", "api"}},
                 {Message("slack", "firing", kBaseMs), Message("mail", "resolved", kBaseMs)});
    loaded = store->LoadStates();
    REQUIRE(loaded.has_value());
    REQUIRE(loaded->size() == 1);
    CheckSameState(loaded->front(), firing);
    CHECK(PendingOrFail(*store) == 2);
  }
}

TEST_CASE("Outbox: Due returns pending messages oldest first, bounded, once they are due") {
  TempDir dir;
  FakeClock clock;
  auto store = OpenOrFail(dir.File("gw.db"), clock);
  auto none = store->NextAttempt();
  REQUIRE(none.has_value());
  CHECK_FALSE(none->has_value());
  CHECK(DueOrFail(*store, SystemTime::max(), kMaxDueLimit).empty());

  OutboxMessage full = Message("slack", "resolved", kBaseMs + 500,
                               R"({"alert":"down","regions":["eu","us"],"text":"ü \u0000"})");
  full.created_at = Ms(kBaseMs - 1'500);
  full.attempts = 0;
  CommitOrFail(*store, {}, {},
               {Message("a", "firing", kBaseMs + 2'000), full, Message("c", "reminder", kBaseMs),
                Message("d", "test", kBaseMs + 1'000)});

  auto next = store->NextAttempt();
  REQUIRE(next.has_value());
  REQUIRE(next->has_value());
  CHECK(**next == Ms(kBaseMs));

  auto names = [](const std::vector<OutboxMessage>& ms) {
    std::string out;
    for (const auto& m : ms) out += m.notifier;
    return out;
  };
  CHECK(names(DueOrFail(*store, Ms(kBaseMs - 1), 10)).empty());
  CHECK(names(DueOrFail(*store, Ms(kBaseMs), 10)) == "c");  // next_attempt <= now
  CHECK(names(DueOrFail(*store, Ms(kBaseMs + 999), 10)) == "slackc");
  CHECK(names(DueOrFail(*store, Ms(kBaseMs + 1'000), 10)) == "slackcd");
  CHECK(names(DueOrFail(*store, Ms(kBaseMs + 2'000), 10)) == "aslackcd");  // creation order
  CHECK(names(DueOrFail(*store, Ms(kBaseMs + 2'000), 2)) == "aslack");
  CHECK(names(DueOrFail(*store, Ms(kBaseMs + 2'000), 0)) == "a");  // clamped to 1
  CHECK(names(DueOrFail(*store, SystemTime::max(), -5)) == "a");

  const auto due = DueOrFail(*store, Ms(kBaseMs + 500), 10);
  REQUIRE(due.size() == 2);
  const OutboxMessage& got = due[0];
  CHECK(got.id > 0);
  CHECK(got.notifier == "slack");
  CHECK(got.alert == "down");
  CHECK(got.monitor == "shop");
  CHECK(got.kind == "resolved");
  CHECK(got.message == full.message);
  CHECK(got.created_at == full.created_at);
  CHECK(got.next_attempt_at == full.next_attempt_at);
  CHECK(got.attempts == 0);
  CHECK(got.last_error.empty());
  CHECK(due[1].id > got.id);
  CHECK(PendingOrFail(*store) == 4);
}

TEST_CASE("Outbox: delivered, rescheduled and given-up messages leave the pending set") {
  TempDir dir;
  const std::string path = dir.File("gw.db");
  FakeClock clock;
  int64_t delivered_id = 0;
  {
    auto store = OpenOrFail(path, clock);
    CommitOrFail(*store, {}, {},
                 {Message("a", "firing", kBaseMs), Message("b", "firing", kBaseMs),
                  Message("c", "firing", kBaseMs)});
    auto due = DueOrFail(*store, Ms(kBaseMs), 10);
    REQUIRE(due.size() == 3);
    const int64_t a = due[0].id, b = due[1].id, c = due[2].id;
    delivered_id = a;

    RequireOk(store->MarkDelivered(a, Ms(kBaseMs + 10)));
    CHECK(PendingOrFail(*store) == 2);

    RequireOk(store->Reschedule(b, Ms(kBaseMs + 30'000), "http 429", RetryCause::kRateLimited));
    RequireOk(store->Reschedule(b, Ms(kBaseMs + 60'000), "http 503", RetryCause::kFailure));
    RequireOk(
        store->Reschedule(b, Ms(kBaseMs + 120'000), "timeout after 10s", RetryCause::kFailure));
    CHECK(PendingOrFail(*store) == 2);  // rescheduled is still pending
    due = DueOrFail(*store, Ms(kBaseMs + 60'000), 10);
    REQUIRE(due.size() == 1);
    CHECK(due[0].id == c);
    auto next = store->NextAttempt();
    REQUIRE(next.has_value());
    REQUIRE(next->has_value());
    CHECK(**next == Ms(kBaseMs));  // c
    due = DueOrFail(*store, Ms(kBaseMs + 120'000), 10);
    REQUIRE(due.size() == 2);
    CHECK(due[0].id == b);
    CHECK(due[0].attempts == 3);
    CHECK(due[0].failures == 2);  // the 429 is not a failure
    CHECK(due[0].last_error == "timeout after 10s");
    CHECK(due[0].next_attempt_at == Ms(kBaseMs + 120'000));

    RequireOk(store->GiveUp(c, Ms(kBaseMs + 20), "http 404: webhook gone"));
    CHECK(PendingOrFail(*store) == 1);
    next = store->NextAttempt();
    REQUIRE(next.has_value());
    REQUIRE(next->has_value());
    CHECK(**next == Ms(kBaseMs + 120'000));  // b
    CHECK(QueryOrFail(*store, "SELECT given_up_ms FROM outbox WHERE id = " + std::to_string(c)) ==
          kBaseMs + 20);
    CHECK(QueryOrFail(*store,
                      "SELECT last_error = 'http 404: webhook gone' FROM outbox WHERE "
                      "id = " +
                          std::to_string(c)) == 1);

    // Transitions apply to pending messages only.
    for (int64_t id : {a, c, int64_t{999'999}}) {
      CAPTURE(id);
      auto r = store->MarkDelivered(id, Ms(kBaseMs + 30));
      REQUIRE_FALSE(r.has_value());
      CHECK(r.error().find("not pending") != std::string::npos);
      CHECK_FALSE(store->Reschedule(id, Ms(kBaseMs), "x", RetryCause::kFailure).has_value());
      CHECK_FALSE(store->GiveUp(id, Ms(kBaseMs), "x").has_value());
    }
    CHECK(QueryOrFail(*store, "SELECT delivered_ms FROM outbox WHERE id = " + std::to_string(a)) ==
          kBaseMs + 10);
  }
  // After a restart the recorded delivery holds: never due again.
  auto store = OpenOrFail(path, clock);
  auto due = DueOrFail(*store, SystemTime::max(), kMaxDueLimit);
  REQUIRE(due.size() == 1);
  CHECK(due[0].id != delivered_id);
  CHECK(PendingOrFail(*store) == 1);

  SUBCASE("PruneDelivered deletes finished messages past their age, a few at a time") {
    auto n = store->PruneDelivered(Ms(kBaseMs + 10), 10);  // strictly older: none
    REQUIRE(n.has_value());
    CHECK(*n == 0);
    n = store->PruneDelivered(SystemTime::max(), 1);
    REQUIRE(n.has_value());
    CHECK(*n == 1);
    n = store->PruneDelivered(SystemTime::max(), 10);
    REQUIRE(n.has_value());
    CHECK(*n == 1);
    n = store->PruneDelivered(SystemTime::max(), 10);
    REQUIRE(n.has_value());
    CHECK(*n == 0);
    CHECK(QueryOrFail(*store, "SELECT COUNT(*) FROM outbox") == 1);  // pending stays
    CHECK(PendingOrFail(*store) == 1);
    CHECK_FALSE(store->PruneDelivered(SystemTime::max(), 0).has_value());
  }
}

TEST_CASE("Outbox: PendingByNotifier and PendingOf give each notifier's line, due or not") {
  TempDir dir;
  FakeClock clock;
  auto store = OpenOrFail(dir.File("gw.db"), clock);
  auto counts = store->PendingByNotifier();
  REQUIRE(counts.has_value());
  CHECK(counts->empty());
  CHECK(store->PendingOf("slack", 10).value().empty());

  // slack: a message waiting for its retry (not due) comes first all the same.
  CommitOrFail(*store, {}, {},
               {Message("slack", "firing", kBaseMs + 60'000, R"({"n":1})"),
                Message("mail", "firing", kBaseMs), Message("slack", "resolved", kBaseMs),
                Message("slack", "firing", kBaseMs), Message("mail", "resolved", kBaseMs)});
  auto all = DueOrFail(*store, SystemTime::max(), 10);
  REQUIRE(all.size() == 5);
  RequireOk(store->MarkDelivered(all[3].id, Ms(kBaseMs)));  // slack's third: delivered
  RequireOk(store->GiveUp(all[4].id, Ms(kBaseMs), "x"));    // mail's second: given up

  counts = store->PendingByNotifier();
  REQUIRE(counts.has_value());
  CHECK(*counts == std::map<std::string, int64_t>{{"mail", 1}, {"slack", 2}});

  auto slack = store->PendingOf("slack", 10);
  REQUIRE(slack.has_value());
  REQUIRE(slack->size() == 2);
  CHECK((*slack)[0].id == all[0].id);  // not due before kBaseMs + 60 s, still the head
  CHECK((*slack)[0].message == R"({"n":1})");
  CHECK((*slack)[0].next_attempt_at == Ms(kBaseMs + 60'000));
  CHECK((*slack)[1].id == all[2].id);
  CHECK((*slack)[1].kind == "resolved");
  CHECK(store->PendingOf("slack", 1).value().size() == 1);  // limit
  CHECK(store->PendingOf("slack", 0).value().size() == 1);  // clamped to 1
  CHECK(store->PendingOf("mail", 10).value().front().id == all[1].id);
  CHECK(store->PendingOf("nobody", 10).value().empty());
}

TEST_CASE("Outbox: ActiveAlerts gives the pairs whose newest finished message fired") {
  TempDir dir;
  const std::string path = dir.File("gw.db");
  FakeClock clock;
  auto store = OpenOrFail(path, clock);
  auto msg = [](const std::string& notifier, const std::string& kind, const std::string& alert,
                const std::string& monitor) {
    OutboxMessage m = Message(notifier, kind, kBaseMs, R"({"kind":")" + kind + R"("})");
    m.alert = alert;
    m.monitor = monitor;
    return m;
  };
  // Per (notifier, alert, monitor), in id order; d = delivered, g = given up, p = pending.
  const std::vector<std::pair<OutboxMessage, char>> rows = {
      {msg("am", "firing", "a", "m1"), 'd'},     // a/m1: active
      {msg("am", "firing", "a", "m2"), 'd'},     // a/m2: ended by ...
      {msg("am", "resolved", "a", "m2"), 'd'},   // ... its delivered resolved
      {msg("am", "firing", "b", "m1"), 'd'},     // b/m1: active, the reminder is newest
      {msg("am", "reminder", "b", "m1"), 'd'},   //
      {msg("am", "firing", "c", "m1"), 'd'},     // c/m1: active, its resolved still pending
      {msg("am", "resolved", "c", "m1"), 'p'},   //
      {msg("am", "firing", "d", "m1"), 'd'},     // d/m1: ended by ...
      {msg("am", "resolved", "d", "m1"), 'g'},   // ... a given-up resolved
      {msg("am", "firing", "e", "m1"), 'g'},     // e/m1: never arrived
      {msg("am", "firing", "f", "m1"), 'd'},     // f/m1: active, test messages do not count
      {msg("am", "test", "f", "m1"), 'd'},       //
      {msg("am", "firing", "g", "m1"), 'p'},     // g/m1: not delivered yet
      {msg("other", "firing", "a", "m1"), 'd'},  // a notifier not asked for
      {msg("am2", "firing", "a", "m1"), 'd'},    // a second notifier
  };
  std::vector<OutboxMessage> enqueue;
  for (const auto& [m, state] : rows) enqueue.push_back(m);
  CommitOrFail(*store, {}, {}, enqueue);
  auto stored = DueOrFail(*store, SystemTime::max(), kMaxDueLimit);
  REQUIRE(stored.size() == rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].second == 'd') RequireOk(store->MarkDelivered(stored[i].id, Ms(kBaseMs + 1)));
    if (rows[i].second == 'g') RequireOk(store->GiveUp(stored[i].id, Ms(kBaseMs + 1), "x"));
  }

  auto describe = [](const std::vector<OutboxMessage>& ms) {
    std::string out;
    for (const auto& m : ms) {
      out += m.notifier + ":" + m.alert + "/" + m.monitor + ":" + m.kind + " ";
    }
    return out;
  };
  const std::vector<std::string> am = {"am"};
  auto active = store->ActiveAlerts(am);
  REQUIRE(active.has_value());
  CHECK(describe(*active) == "am:a/m1:firing am:b/m1:reminder am:c/m1:firing am:f/m1:firing ");
  CHECK((*active)[1].message == R"({"kind":"reminder"})");
  const std::vector<std::string> both = {"am", "am2"};
  active = store->ActiveAlerts(both);
  REQUIRE(active.has_value());
  CHECK(describe(*active) ==
        "am:a/m1:firing am:b/m1:reminder am:c/m1:firing am:f/m1:firing am2:a/m1:firing ");
  active = store->ActiveAlerts({});
  REQUIRE(active.has_value());
  CHECK(active->empty());

  // Pruned history is gone: a pair whose rows were pruned is no longer active.
  auto pruned = store->PruneDelivered(SystemTime::max(), kMaxDueLimit);
  REQUIRE(pruned.has_value());
  active = store->ActiveAlerts(am);
  REQUIRE(active.has_value());
  CHECK(active->empty());
}

// The child of the crash test: commits one state change and two messages per step, reporting
// each committed step number on `fd`, until it is killed. Never returns.
[[noreturn]] void CommitForever(const std::string& path, int fd) {
  RealClock clock;
  auto store = AlertStore::Open(path, clock);
  if (!store) _exit(3);
  for (int64_t seq = 0;; ++seq) {
    const std::string body =
        R"({"seq":)" + std::to_string(seq) + R"(,"pad":")" + std::string(512, 'x') + R"("})";
    std::vector<AlertStateRecord> states = {State("down", "shop", 2, kBaseMs + seq)};
    std::vector<OutboxMessage> messages = {Message("slack", "firing", kBaseMs, body),
                                           Message("mail", "firing", kBaseMs, body)};
    if (!(*store)->Commit(states, {}, messages)) _exit(4);
    if (write(fd, &seq, sizeof seq) != sizeof seq) _exit(5);
  }
}

TEST_CASE("Outbox: kill -9 while committing loses, duplicates and re-sends nothing") {
  TempDir dir;
  const std::string path = dir.File("gw.db");
  {
    FakeClock clock;
    OpenOrFail(path, clock);  // create and migrate before the child starts
  }
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    close(fds[0]);
    CommitForever(path, fds[1]);
  }
  close(fds[1]);
  REQUIRE(fcntl(fds[0], F_SETFL, O_NONBLOCK) == 0);
  std::string bytes;
  auto drain = [&] {
    char buf[4096];
    for (;;) {
      const ssize_t n = read(fds[0], buf, sizeof buf);
      if (n <= 0) return n;  // 0 = EOF (the child is gone), -1 = nothing more for now
      bytes.append(buf, static_cast<size_t>(n));
    }
  };
  const size_t kWant = 300;  // committed steps before the kill
  const bool enough = WaitFor(
      [&] {
        // EOF: the child died on its own (see its exit status below).
        return drain() == 0 || bytes.size() >= kWant * sizeof(int64_t);
      },
      30s);
  kill(child, SIGKILL);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  INFO("child status " << status);
  REQUIRE(enough);
  CHECK(WIFSIGNALED(status));
  REQUIRE(WaitFor([&] { return drain() == 0; }, 5s));
  close(fds[0]);
  REQUIRE(bytes.size() % sizeof(int64_t) == 0);
  int64_t last_reported = -1;
  std::memcpy(&last_reported, bytes.data() + bytes.size() - sizeof(int64_t), sizeof(int64_t));
  REQUIRE(last_reported >= static_cast<int64_t>(kWant) - 1);

  FakeClock clock;
  auto store = OpenOrFail(path, clock);
  CHECK(QueryOrFail(*store, "SELECT integrity_check = 'ok' FROM pragma_integrity_check") == 1);
  // Steps 0 .. committed-1 are stored, each message exactly once: the kill may have hit after
  // a commit that was not reported yet, never before one that was.
  const int64_t committed =
      QueryOrFail(*store, "SELECT COUNT(*) FROM outbox WHERE notifier = 'slack'");
  CAPTURE(committed);
  CAPTURE(last_reported);
  CHECK(committed >= last_reported + 1);
  for (const char* notifier : {"slack", "mail"}) {
    CAPTURE(notifier);
    const std::string where = std::string(" FROM outbox WHERE notifier = '") + notifier + "'";
    CHECK(QueryOrFail(*store, "SELECT COUNT(*)" + where) == committed);
    CHECK(QueryOrFail(*store, "SELECT COUNT(DISTINCT json_extract(message, '$.seq'))" + where) ==
          committed);
    CHECK(QueryOrFail(*store, "SELECT MIN(json_extract(message, '$.seq'))" + where) == 0);
    CHECK(QueryOrFail(*store, "SELECT MAX(json_extract(message, '$.seq'))" + where) ==
          committed - 1);
  }
  CHECK(PendingOrFail(*store) == 2 * committed);
  // The state is the one committed with the last messages.
  auto states = store->LoadStates();
  REQUIRE(states.has_value());
  REQUIRE(states->size() == 1);
  CHECK(states->front().since == Ms(kBaseMs + committed - 1));

  // A recorded delivery is not repeated after a restart.
  auto due = DueOrFail(*store, Ms(kBaseMs), 3);
  REQUIRE(due.size() == 3);
  for (const OutboxMessage& m : due) RequireOk(store->MarkDelivered(m.id, Ms(kBaseMs + 1)));
  store.reset();
  store = OpenOrFail(path, clock);
  CHECK(PendingOrFail(*store) == 2 * committed - 3);
  const auto again = DueOrFail(*store, Ms(kBaseMs), kMaxDueLimit);
  for (const OutboxMessage& m : again) {
    for (const OutboxMessage& d : due) CHECK(m.id != d.id);
  }
  CHECK(again.front().id > due.back().id);
}

}  // namespace
}  // namespace gatewatch::storage
