// daemon::Diagnostics on its own: a real SQLite file, a FakeClock, Tick() driven by hand.
#include "daemon/diagnosis.h"

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "daemon/config.h"
#include "storage/incident_store.h"
#include "storage/sqlite_store.h"
#include "tests/support/fake_clock.h"
#include "tests/support/temp_dir.h"

namespace gatewatch::daemon {
namespace {

using namespace std::chrono_literals;

TEST_CASE("Diagnostics: a mass outage opens every incident, max_per_tick at a time") {
  // 50 monitors fail at once and the budget is 10 diagnoses per tick. Open incidents are
  // visited every tick too (refresh, close); they must not use up the budget before the
  // monitors still waiting for theirs (they did: the first few hundred incidents of a
  // 2,000-monitor outage opened, the rest never).
  constexpr int kMonitors = 50;
  testing::TempDir dir;
  const std::string db = dir.File("gw.db");
  testing::FakeClock clock;
  std::string toml;
  for (int i = 0; i < kMonitors; ++i) {
    toml += "[[monitors]]\nname = \"m" + std::to_string(100 + i) + "\"\nurl = \"http://127.0.0.1:9/\"\n";
  }
  auto cfg = ParseConfig(toml, "outage.toml");
  REQUIRE(cfg.has_value());
  const auto config = std::make_shared<const Config>(std::move(cfg).value());

  auto store = storage::SqliteStore::Open(db);
  REQUIRE(store.has_value());
  std::vector<probes::ProbeResult> results;
  for (int i = 0; i < kMonitors; ++i) {
    probes::ProbeResult r;
    r.monitor = "m" + std::to_string(100 + i);
    r.region = "local";
    r.started_at = clock.Now() - 2s;
    r.outcome = probes::Outcome::kConnectRefused;
    r.confirmed = true;
    results.push_back(r);
  }
  REQUIRE((*store)->Insert(results).has_value());
  auto incidents = storage::IncidentStore::Open(db, clock);
  REQUIRE(incidents.has_value());

  DiagnosisOptions options;
  options.max_per_tick = 10;
  Diagnostics diagnostics(clock, **incidents, **store, options);
  REQUIRE(diagnostics.Configure(config).has_value());
  for (const auto& r : results) diagnostics.Observe(r);

  std::vector<size_t> open_after;
  for (int tick = 0; tick < 8; ++tick) {
    clock.Advance(1s);
    diagnostics.Tick(clock.Now());
    open_after.push_back(diagnostics.OpenSnapshot().size());
  }
  CHECK(open_after[0] == 10);  // the budget holds...
  CHECK(open_after[1] == 20);
  CHECK(open_after[4] == kMonitors);  // ...and every monitor gets its incident in turn
  CHECK(open_after.back() == kMonitors);

  // Refreshes and closes of open incidents share the budget in turn as well: none is
  // starved, so a recovery closes every one of them (after two intervals healthy: 2 x 30 s).
  for (auto r : results) {
    r.outcome = probes::Outcome::kOk;
    r.http_status = 200;
    r.started_at = clock.Now();
    diagnostics.Observe(r);
  }
  size_t open = kMonitors;
  int ticks = 0;
  for (; ticks < 60 && open > 0; ++ticks) {
    clock.Advance(5s);
    diagnostics.Tick(clock.Now());
    open = diagnostics.OpenSnapshot().size();
  }
  CHECK(open == 0);
  CHECK(ticks > 5);  // not before the monitors were healthy for two intervals
}

TEST_CASE("Diagnostics: a gateway's incident waits for its own first result (no 'unknown' at start)") {
  // At start an upstream can fail before the gateway has a result of its own: judging the
  // gateway then gives `unknown` ("no confirmed results"); the incident waits and opens with
  // a real verdict once the gateway has answered.
  testing::TempDir dir;
  const std::string db = dir.File("gw.db");
  testing::FakeClock clock;
  auto cfg = ParseConfig(
      "[[monitors]]\nname = \"shop\"\nurl = \"http://127.0.0.1:9/\"\nupstreams = [\"api\"]\n"
      "[[monitors]]\nname = \"api\"\nurl = \"http://127.0.0.1:9/\"\n",
      "start.toml");
  REQUIRE(cfg.has_value());
  auto store = storage::SqliteStore::Open(db);
  REQUIRE(store.has_value());
  auto incidents = storage::IncidentStore::Open(db, clock);
  REQUIRE(incidents.has_value());
  Diagnostics diagnostics(clock, **incidents, **store);
  REQUIRE(diagnostics.Configure(std::make_shared<const Config>(std::move(cfg).value())).has_value());
  const auto result = [&](const std::string& monitor, probes::Outcome o, int status) {
    probes::ProbeResult r;
    r.monitor = monitor;
    r.region = "local";
    r.started_at = clock.Now();
    r.outcome = o;
    r.http_status = status;
    r.confirmed = true;
    REQUIRE((*store)->Insert(std::span<const probes::ProbeResult>(&r, 1)).has_value());
    diagnostics.Observe(r);
  };
  const auto open_of = [&](const std::string& monitor) -> std::string {
    for (const auto& inc : diagnostics.OpenSnapshot()) {
      if (inc.monitor == monitor) return inc.verdict;
    }
    return "";
  };

  result("api", probes::Outcome::kConnectRefused, 0);  // the upstream first
  clock.Advance(1s);
  diagnostics.Tick(clock.Now());
  CHECK(open_of("shop").empty());  // nothing of its own yet: no incident, no `unknown`
  CHECK(open_of("api") == "not_listening");

  result("shop", probes::Outcome::kOk, 200);  // the gateway still answers
  clock.Advance(1s);
  diagnostics.Tick(clock.Now());
  CHECK(open_of("shop") == "upstream_down");
}

TEST_CASE("Diagnostics: results the writer has not committed count, and only the newest few are held") {
  // Nothing is in SQLite: the diagnosis must see the results it was handed (the writer may
  // not have committed them yet), but hold only the newest of them — by age (recent_max_age)
  // and by count (kMaxRecentResults). Holding 8 full results of each of 10,000 failing
  // monitors cost ~75 MB in a mass outage.
  testing::TempDir dir;
  const std::string db = dir.File("gw.db");
  testing::FakeClock clock;
  auto cfg = ParseConfig(
      "[[monitors]]\nname = \"slow\"\nurl = \"http://127.0.0.1:9/\"\ninterval = \"1s\"\ntimeout = \"1s\"\n"
      "[[monitors]]\nname = \"fast\"\nurl = \"http://127.0.0.1:9/\"\ninterval = \"1s\"\ntimeout = \"1s\"\n",
      "held.toml");
  REQUIRE(cfg.has_value());
  auto store = storage::SqliteStore::Open(db);
  REQUIRE(store.has_value());
  auto incidents = storage::IncidentStore::Open(db, clock);
  REQUIRE(incidents.has_value());
  DiagnosisOptions options;
  options.recent_max_age = 5s;
  Diagnostics diagnostics(clock, **incidents, **store, options);
  REQUIRE(diagnostics.Configure(std::make_shared<const Config>(std::move(cfg).value())).has_value());

  auto failure = [&](const std::string& monitor, SystemTime at) {
    probes::ProbeResult r;
    r.monitor = monitor;
    r.region = "local";
    r.started_at = at;
    r.outcome = probes::Outcome::kHttp502;
    r.http_status = 502;
    r.emitter = probes::Emitter::kNginx;
    r.body_snippet = std::string(1024, 'x');
    r.confirmed = true;
    return r;
  };
  // "slow" fails once a second for 20 s: only those of the last 5 s are held (6: t-5 .. t).
  for (int i = 0; i < 20; ++i) {
    diagnostics.Observe(failure("slow", clock.Now()));
    clock.Advance(1s);
  }
  CHECK(diagnostics.ResultsHeld() == 6);
  // "fast" fails 20 times within 2 s: the count bound holds.
  for (int i = 0; i < 20; ++i) diagnostics.Observe(failure("fast", clock.Now() + i * 100ms));
  CHECK(diagnostics.ResultsHeld() == 6 + kMaxRecentResults);

  // What is held is what the diagnosis sees: both incidents open from memory alone.
  diagnostics.Tick(clock.Now() + 2s);
  const auto open = diagnostics.OpenSnapshot();
  REQUIRE(open.size() == 2);
  const auto slow = diagnostics.Current("slow");
  REQUIRE(slow.has_value());
  CHECK(slow->evidence.results == 6);
  CHECK(slow->evidence.failures == 6);
  CHECK(slow->evidence.sample_body.size() == probes::kSampleBodyBytes);  // the newest keeps its body

  // A monitor out of trouble holds nothing: healthy, then its incident closes, then a result.
  auto healthy = [&] {
    for (const char* name : {"slow", "fast"}) {
      probes::ProbeResult ok = failure(name, clock.Now());
      ok.outcome = probes::Outcome::kOk;
      ok.http_status = 200;
      ok.emitter = probes::Emitter::kNone;
      ok.body_snippet.clear();
      diagnostics.Observe(ok);
    }
  };
  clock.Advance(5s);
  healthy();
  for (int i = 0; i < 10 && !diagnostics.OpenSnapshot().empty(); ++i) {
    clock.Advance(1s);
    diagnostics.Tick(clock.Now());
  }
  REQUIRE(diagnostics.OpenSnapshot().empty());
  healthy();
  CHECK(diagnostics.ResultsHeld() == 0);
}

TEST_CASE("Diagnostics: an incident opened before the writer committed the healthy region is re-diagnosed, and a firing never uses the stale verdict") {
  // east stays healthy, west fails. east's result came before west's failure, so it is not
  // held in memory (shop was not in trouble yet) and the writer has not committed it: the
  // incident opens seeing west alone ("gateway_fault in 1/1 regions"). Once the writer has
  // committed it the verdict must be `regional`: after `settle` on its own, and at once when
  // an alert fires (the message leads with it).
  testing::TempDir dir;
  const std::string db = dir.File("gw.db");
  testing::FakeClock clock;
  auto cfg = ParseConfig(R"(
[regions.east]
source_address = "127.0.0.1"
[regions.west]
source_address = "127.0.0.1"
[[monitors]]
name = "shop"
url = "http://127.0.0.1:9/"
regions = ["east", "west"]
upstreams = ["api"]
[[monitors]]
name = "api"
url = "http://127.0.0.1:9/api"
regions = ["east", "west"]
)", "regions.toml");
  REQUIRE(cfg.has_value());
  const auto config = std::make_shared<const Config>(std::move(cfg).value());
  auto store = storage::SqliteStore::Open(db);
  REQUIRE(store.has_value());
  auto incidents = storage::IncidentStore::Open(db, clock);
  REQUIRE(incidents.has_value());
  Diagnostics diagnostics(clock, **incidents, **store, DiagnosisOptions{});
  REQUIRE(diagnostics.Configure(config).has_value());

  const auto result = [&](const std::string& monitor, const std::string& region, int status) {
    probes::ProbeResult r;
    r.monitor = monitor;
    r.region = region;
    r.started_at = clock.Now();
    r.confirmed = true;
    r.http_status = status;
    r.outcome = status == 200 ? probes::Outcome::kOk : probes::Outcome::kHttp502;
    r.emitter = status == 200 ? probes::Emitter::kNone : probes::Emitter::kNginx;
    return r;
  };
  // Upstream healthy everywhere (committed), then east healthy and west failing, neither committed.
  REQUIRE((*store)->Insert(std::vector<probes::ProbeResult>{result("api", "east", 200), result("api", "west", 200)}).has_value());
  const probes::ProbeResult east = result("shop", "east", 200);
  diagnostics.Observe(result("api", "east", 200));
  diagnostics.Observe(result("api", "west", 200));
  diagnostics.Observe(east);
  diagnostics.Observe(result("shop", "west", 502));
  clock.Advance(100ms);
  diagnostics.Tick(clock.Now());
  REQUIRE(diagnostics.OpenSnapshot().size() == 1);
  CHECK(diagnostics.OpenSnapshot()[0].verdict == "gateway_fault");  // east not seen yet

  SUBCASE("re-diagnosed once settle has passed") {
    REQUIRE((*store)->Insert(std::vector<probes::ProbeResult>{east}).has_value());  // the writer commits
    clock.Advance(1s);
    diagnostics.Tick(clock.Now());
    CHECK(diagnostics.OpenSnapshot()[0].verdict == "gateway_fault");  // not yet: within settle
    clock.Advance(600ms);
    diagnostics.Tick(clock.Now());
    CHECK(diagnostics.OpenSnapshot()[0].verdict == "regional");
  }
  SUBCASE("an alert firing after settle re-diagnoses before the message uses it") {
    REQUIRE((*store)->Insert(std::vector<probes::ProbeResult>{east}).has_value());
    clock.Advance(1600ms);
    diagnostics.AlertFired("shop");  // before any Tick re-diagnosed it
    const auto d = diagnostics.Current("shop");
    REQUIRE(d.has_value());
    CHECK(probes::ToString(d->verdict) == "regional");
    CHECK(d->summary.find("healthy in east") != std::string::npos);
    CHECK(diagnostics.OpenSnapshot().size() == 1);
    diagnostics.Tick(clock.Now());
    CHECK(diagnostics.OpenSnapshot()[0].verdict == "regional");
  }
  SUBCASE("a firing within settle keeps the fresh diagnosis (one per incident, not one per event)") {
    clock.Advance(500ms);
    diagnostics.AlertFired("shop");
    CHECK(probes::ToString(diagnostics.Current("shop")->verdict) == "gateway_fault");
  }
}

}  // namespace
}  // namespace gatewatch::daemon
