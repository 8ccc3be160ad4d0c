// Restart semantics of the evaluator (docs/reliability.md): the persisted
// state (what TakeChangedStates() hands to SQLite) plus a replay of the stored results of
// the last window must continue every state where it was, without a second "firing" and
// without losing a "resolved".
#include <doctest/doctest.h>

#include <algorithm>
#include <map>

#include "alerting/evaluator.h"
#include "tests/support/fake_clock.h"

namespace gatewatch::alerting {
namespace {

using namespace std::chrono_literals;
using Kind = AlertEvent::Kind;

AlertRule Rule() {
  AlertRule r;
  r.name = "shop-502";
  r.monitors = {"shop"};
  r.kind = AlertKind::kStatusRate;
  r.codes = {502};
  r.above = 0.5;
  r.below = 0.1;
  r.window = 1min;
  r.min_samples = 5;
  r.pending_for = 30s;
  r.resolve_for = 30s;
  r.repeat = 10min;
  r.notify = {"ops"};
  return r;
}

// One daemon life: an evaluator whose state changes go to a shared "database" (the map)
// and whose results go to a shared results table, like the pipeline does.
struct World {
  testing::FakeClock clock;
  std::map<std::pair<std::string, std::string>, storage::AlertStateRecord> db;
  std::vector<probes::ProbeResult> stored;
  std::unique_ptr<Evaluator> eval;
  std::vector<AlertEvent> events;

  void Persist() {
    for (auto& rec : eval->TakeChangedStates()) db[{rec.alert, rec.monitor}] = rec;
    for (auto& key : eval->TakeRemoved()) db.erase(key);
  }
  void Take(std::vector<AlertEvent> e) {
    events.insert(events.end(), e.begin(), e.end());
    Persist();
  }
  // (Re)starts: configure, restore, replay the stored results of the window, evaluate.
  void Start(std::vector<AlertRule> rules) {
    eval = std::make_unique<Evaluator>(clock);
    Take(eval->Configure(std::move(rules), {}));
    std::vector<storage::AlertStateRecord> records;
    for (const auto& [key, rec] : db) records.push_back(rec);
    Take(eval->Restore(records));
    const SystemTime from = clock.Now() - eval->LongestWindow();
    for (const auto& r : stored) {
      if (r.started_at >= from) eval->Replay(r);
    }
    Take(eval->EvaluateAll(clock.Now()));
  }
  void Result(int status, std::chrono::milliseconds step = 2s) {
    probes::ProbeResult r;
    r.monitor = "shop";
    r.region = "local";
    r.started_at = clock.Now();
    r.confirmed = true;
    r.http_status = status;
    r.outcome = status < 400 ? probes::Outcome::kOk : probes::OutcomeForUnexpectedStatus(status);
    stored.push_back(r);
    Take(eval->Observe(r));
    clock.Advance(step);
    Take(eval->Tick(clock.Now()));
  }
  void Idle(std::chrono::milliseconds d) {
    clock.Advance(d);
    Take(eval->Tick(clock.Now()));
  }
  int Count(Kind k) const {
    return static_cast<int>(std::count_if(events.begin(), events.end(), [&](const AlertEvent& e) { return e.kind == k; }));
  }
  AlertState State() const { return eval->Snapshot().at(0).state; }
};

TEST_CASE("Evaluator restart: ok stays ok, and only changed pairs are persisted") {
  World w;
  w.Start({Rule()});
  for (int i = 0; i < 10; ++i) w.Result(200);
  CHECK(w.db.empty());  // an ok pair that never changed is not written
  w.Start({Rule()});
  CHECK(w.State() == AlertState::kOk);
  CHECK(w.events.empty());
}

TEST_CASE("Evaluator restart: pending keeps its start, so `for` is not restarted") {
  World w;
  w.Start({Rule()});
  for (int i = 0; i < 6; ++i) w.Result(502);  // pending since the 5th result (t = 8 s)
  REQUIRE(w.State() == AlertState::kPending);
  REQUIRE(w.db.at({"shop-502", "shop"}).state == static_cast<int>(AlertState::kPending));
  const SystemTime pending_since = w.db.at({"shop-502", "shop"}).since;
  w.clock.Advance(5s);  // down for 5 s
  w.Start({Rule()});
  CHECK(w.State() == AlertState::kPending);
  CHECK(w.eval->Snapshot().at(0).since == pending_since);
  while (w.Count(Kind::kFiring) == 0 && w.clock.Now() - pending_since < 60s) w.Result(502);
  CHECK(w.Count(Kind::kFiring) == 1);
  // Fired 30 s after the pending start before the restart, not 30 s after the restart.
  CHECK(w.events.back().at - pending_since < 33s);
}

TEST_CASE("Evaluator restart: firing is not notified again before repeat, reminders keep their rhythm") {
  World w;
  w.Start({Rule()});
  for (int i = 0; i < 25; ++i) w.Result(502);
  REQUIRE(w.Count(Kind::kFiring) == 1);
  const SystemTime notified_at = w.events.back().at;
  w.clock.Advance(10s);
  w.Start({Rule()});
  CHECK(w.State() == AlertState::kFiring);
  CHECK(w.Count(Kind::kFiring) == 1);  // no second firing
  while (w.clock.Now() - notified_at < 10min + 5s) w.Result(502, 10s);
  CHECK(w.Count(Kind::kFiring) == 1);
  REQUIRE(w.Count(Kind::kReminder) == 1);  // one reminder, `repeat` after the first message
  CHECK(w.events.back().at - notified_at >= 10min);
  CHECK(w.events.back().at - notified_at < 10min + 11s);
}

TEST_CASE("Evaluator restart: a recovery while the daemon was down still produces resolved") {
  World w;
  w.Start({Rule()});
  for (int i = 0; i < 25; ++i) w.Result(502);
  REQUIRE(w.Count(Kind::kFiring) == 1);
  w.clock.Advance(10min);  // down longer than the window: replay finds nothing
  w.Start({Rule()});
  CHECK(w.State() == AlertState::kFiring);  // no verdict without samples: holds
  for (int i = 0; i < 30; ++i) w.Result(200);  // the site answers again
  CHECK(w.Count(Kind::kResolved) == 1);
  CHECK(w.State() == AlertState::kOk);
  CHECK(w.db.at({"shop-502", "shop"}).state == static_cast<int>(AlertState::kOk));
}

TEST_CASE("Evaluator restart: the replayed window decides at once, resolving continues") {
  World w;
  w.Start({Rule()});
  for (int i = 0; i < 25; ++i) w.Result(502);
  for (int i = 0; i < 40; ++i) {
    w.Result(200);
    if (w.State() == AlertState::kResolving) break;
  }
  REQUIRE(w.State() == AlertState::kResolving);
  const SystemTime resolving_since = w.eval->Snapshot().at(0).since;
  w.clock.Advance(3s);
  w.Start({Rule()});
  CHECK(w.State() == AlertState::kResolving);  // the replayed window is still clear
  CHECK(w.eval->Snapshot().at(0).since == resolving_since);
  while (w.Count(Kind::kResolved) == 0 && w.clock.Now() - resolving_since < 60s) w.Result(200);
  CHECK(w.Count(Kind::kResolved) == 1);
  CHECK(w.events.back().at - resolving_since < 33s);
}

TEST_CASE("Evaluator restart: an alert or monitor removed while down gets its resolved, once") {
  World w;
  AlertRule other = Rule();
  other.name = "shop-latency";
  other.kind = AlertKind::kDown;
  other.after = 3;
  other.pending_for = 0s;
  w.Start({Rule(), other});
  for (int i = 0; i < 25; ++i) w.Result(502);
  REQUIRE(w.Count(Kind::kFiring) == 2);
  w.Start({Rule()});  // shop-latency removed from the config while the daemon was down
  REQUIRE(w.Count(Kind::kResolved) == 1);
  const AlertEvent& resolved = w.events.back();
  CHECK(resolved.alert == "shop-latency");
  CHECK(resolved.monitor == "shop");
  CHECK(resolved.notify.empty());  // the rule is gone: the caller routes it like its firing
  CHECK_FALSE(w.db.contains({"shop-latency", "shop"}));
  w.Start({Rule()});  // and a further restart does not resolve it again
  CHECK(w.Count(Kind::kResolved) == 1);
  AlertRule renamed = Rule();
  renamed.monitors = {"shop-renamed"};
  w.Start({renamed});  // the monitor is gone too
  CHECK(w.Count(Kind::kResolved) == 2);
  CHECK(w.events.back().alert == "shop-502");
  CHECK(w.db.empty());
}

TEST_CASE("Evaluator restart: a removed firing that was never notified (silenced) resolves silently") {
  World w;
  storage::AlertStateRecord rec;
  rec.alert = "gone";
  rec.monitor = "shop";
  rec.state = static_cast<int>(AlertState::kFiring);
  rec.notified = false;
  w.db[{"gone", "shop"}] = rec;
  w.Start({Rule()});
  CHECK(w.events.empty());
  CHECK(w.db.empty());
}

TEST_CASE("Evaluator restart: a crash that lost the newest results neither resolves nor re-fires") {
  World w;
  AlertRule down = Rule();
  down.name = "shop-down";
  down.kind = AlertKind::kDown;
  down.after = 2;
  down.pending_for = 0s;
  down.resolve_for = 0s;
  w.Start({down});
  w.Result(502);
  w.Result(502);
  REQUIRE(w.Count(Kind::kFiring) == 1);
  w.stored.pop_back();  // kill -9: the state was committed, the writer's last batch was not
  w.clock.Advance(2s);
  w.Start({down});
  CHECK(w.State() == AlertState::kFiring);  // 1 replayed failure < after: held, not resolved
  for (int i = 0; i < 3; ++i) w.Idle(1s);
  CHECK(w.State() == AlertState::kFiring);
  w.Result(502);  // live: still down
  CHECK(w.Count(Kind::kFiring) == 1);
  CHECK(w.Count(Kind::kResolved) == 0);
  w.Result(200);  // live recovery resolves
  CHECK(w.Count(Kind::kResolved) == 1);
}

}  // namespace
}  // namespace gatewatch::alerting
