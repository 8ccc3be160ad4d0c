#include "storage/incident_store.h"

#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "storage/alert_store.h"
#include "storage/sqlite_store.h"
#include "tests/storage/samples.h"
#include "tests/support/fake_clock.h"
#include "tests/support/temp_dir.h"

namespace gatewatch::storage {
namespace {

using namespace std::chrono_literals;
using gatewatch::testing::FakeClock;
using gatewatch::testing::TempDir;
using testing::kBaseMs;
using testing::Ms;

constexpr int64_t kHourMs = 3'600'000;

std::unique_ptr<IncidentStore> OpenStoreOrFail(const std::string& path, const Clock& clock,
                                               OpenOptions options = {}) {
  auto store = IncidentStore::Open(path, clock, options);
  INFO((store ? std::string() : store.error()));
  REQUIRE(store.has_value());
  return std::move(*store);
}

void RequireOk(const Result<void>& r) {
  INFO((r ? std::string() : r.error()));
  REQUIRE(r.has_value());
}

// Checks that `r` failed and its error contains every one of `words`.
template <typename T>
void RequireError(const Result<T>& r, const std::vector<std::string>& words) {
  REQUIRE_FALSE(r.has_value());
  for (const std::string& w : words) {
    INFO("error: " << r.error() << "\nwanted: " << w);
    CHECK(r.error().find(w) != std::string::npos);
  }
}

Incident OpenOrFail(IncidentStore& store, const std::string& monitor, int64_t at_ms,
                    const std::string& verdict = "unknown", double ratio = 0.5) {
  auto inc =
      store.OpenIncident(monitor, verdict, monitor + " fails", "{}", {"local"}, ratio, Ms(at_ms));
  INFO((inc ? std::string() : inc.error()));
  REQUIRE(inc.has_value());
  return *inc;
}

Incident GetOrFail(IncidentStore& store, int64_t id) {
  auto inc = store.Get(id);
  INFO((inc ? std::string() : inc.error()));
  REQUIRE(inc.has_value());
  REQUIRE(inc->has_value());
  return **inc;
}

std::vector<int64_t> Ids(const Result<std::vector<Incident>>& incidents) {
  INFO((incidents ? std::string() : incidents.error()));
  REQUIRE(incidents.has_value());
  std::vector<int64_t> ids;
  for (const Incident& i : *incidents) ids.push_back(i.id);
  return ids;
}

int64_t QueryOrFail(IncidentStore& store, const std::string& sql) {
  auto n = store.QueryIntForTest(sql);
  INFO(sql << (n ? std::string() : ": " + n.error()));
  REQUIRE(n.has_value());
  return *n;
}

void CheckSame(const Incident& got, const Incident& want) {
  CHECK(got.id == want.id);
  CHECK(got.monitor == want.monitor);
  CHECK(got.verdict == want.verdict);
  CHECK(got.first_verdict == want.first_verdict);
  CHECK(got.summary == want.summary);
  CHECK(got.evidence == want.evidence);
  CHECK(got.regions == want.regions);
  CHECK(got.opened_at == want.opened_at);
  CHECK(got.updated_at == want.updated_at);
  CHECK(got.closed_at == want.closed_at);
  CHECK(got.peak_ratio == want.peak_ratio);
  CHECK(got.alert_fired == want.alert_fired);
}

TEST_CASE("Incidents: open, update and close keep every field") {
  TempDir dir;
  FakeClock clock;
  auto store = OpenStoreOrFail(dir.File("gw.db"), clock);
  // Evidence is stored as given, spacing and non-ASCII included: storage does not re-encode it.
  const std::string evidence1 = R"({ "counts" : {"http_502": 2}, "note": "caf\u00e9 é" })";
  const std::string evidence2 =
      R"({"upstreams":[{"name":"shop-api-1","outcome":"connect_refused"}]})";

  auto opened = store->OpenIncident("shop", "transient", "nginx answers 502", evidence1,
                                    {"eu", "us"}, 0.25, Ms(kBaseMs + 1'000));
  INFO((opened ? std::string() : opened.error()));
  REQUIRE(opened.has_value());
  Incident want{.id = opened->id,
                .monitor = "shop",
                .verdict = "transient",
                .first_verdict = "transient",
                .summary = "nginx answers 502",
                .evidence = evidence1,
                .regions = {"eu", "us"},
                .opened_at = Ms(kBaseMs + 1'000),
                .updated_at = Ms(kBaseMs + 1'000),
                .closed_at = std::nullopt,
                .peak_ratio = 0.25,
                .alert_fired = false};
  CHECK(opened->id > 0);
  CHECK(opened->open());
  CheckSame(*opened, want);
  CheckSame(GetOrFail(*store, want.id), want);
  CHECK(Ids(store->OpenIncidents()) == std::vector<int64_t>{want.id});

  RequireOk(store->Update(want.id, "upstream_down", "shop-api-1 refuses connections", evidence2,
                          {"us"}, 0.75, true, Ms(kBaseMs + 5'000)));
  want.verdict = "upstream_down";
  want.summary = "shop-api-1 refuses connections";
  want.evidence = evidence2;
  want.regions = {"us"};
  want.updated_at = Ms(kBaseMs + 5'000);
  want.peak_ratio = 0.75;
  want.alert_fired = true;
  CheckSame(GetOrFail(*store, want.id), want);

  SUBCASE("closing keeps the verdict and summary unless final ones are given") {
    RequireOk(store->Close(want.id, Ms(kBaseMs + 9'000)));
    want.closed_at = Ms(kBaseMs + 9'000);
    want.updated_at = Ms(kBaseMs + 9'000);
  }
  SUBCASE("closing with a final verdict and summary") {
    RequireOk(store->Close(want.id, Ms(kBaseMs + 9'000), "gateway_fault", "recovered"));
    want.closed_at = Ms(kBaseMs + 9'000);
    want.updated_at = Ms(kBaseMs + 9'000);
    want.verdict = "gateway_fault";
    want.summary = "recovered";
  }
  const Incident closed = GetOrFail(*store, want.id);
  CHECK_FALSE(closed.open());
  CheckSame(closed, want);
  CHECK(Ids(store->OpenIncidents()).empty());
  CHECK(Ids(store->List({})) == std::vector<int64_t>{want.id});
}

TEST_CASE("Incidents: peak ratio is a maximum and alert_fired is sticky") {
  TempDir dir;
  FakeClock clock;
  auto store = OpenStoreOrFail(dir.File("gw.db"), clock);
  const Incident inc = OpenOrFail(*store, "shop", kBaseMs, "transient", 0.4);
  struct Step {
    double ratio;
    bool alert_fired;
    int64_t at_ms;
    double want_peak;
    bool want_fired;
    int64_t want_updated_ms;
  };
  const Step steps[] = {
      {0.9, false, kBaseMs + 1'000, 0.9, false, kBaseMs + 1'000},
      {0.1, true, kBaseMs + 2'000, 0.9, true, kBaseMs + 2'000},
      {0.2, false, kBaseMs + 3'000, 0.9, true, kBaseMs + 3'000},
      // The wall clock stepped back: updated_at does not move backwards.
      {1.0, false, kBaseMs + 500, 1.0, true, kBaseMs + 3'000},
      {0.0, false, kBaseMs + 4'000, 1.0, true, kBaseMs + 4'000},
  };
  int n = 0;
  for (const Step& s : steps) {
    CAPTURE(n++);
    const std::string verdict = "verdict_" + std::to_string(n);
    RequireOk(store->Update(inc.id, verdict, "", "", {}, s.ratio, s.alert_fired, Ms(s.at_ms)));
    const Incident got = GetOrFail(*store, inc.id);
    CHECK(got.peak_ratio == s.want_peak);
    CHECK(got.alert_fired == s.want_fired);
    CHECK(got.updated_at == Ms(s.want_updated_ms));
    CHECK(got.verdict == verdict);  // the verdict is replaced, never kept as a maximum
    CHECK(got.first_verdict == "transient");
    CHECK(got.evidence == "{}");  // "" is stored as an empty JSON object
  }
}

TEST_CASE("Incidents: one open incident per monitor") {
  TempDir dir;
  FakeClock clock;
  const std::string path = dir.File("gw.db");
  auto store = OpenStoreOrFail(path, clock);
  const Incident first = OpenOrFail(*store, "shop", kBaseMs);

  auto again = store->OpenIncident("shop", "upstream_down", "", "{}", {}, 1.0, Ms(kBaseMs + 10));
  RequireError(again, {"shop", "already has an open incident", "id " + std::to_string(first.id)});
  CHECK(QueryOrFail(*store, "SELECT COUNT(*) FROM incidents") == 1);

  // The rule lives in the database (a partial UNIQUE index), not in this object: another
  // connection, and plain SQL, are refused too.
  auto other = OpenStoreOrFail(path, clock);
  RequireError(other->OpenIncident("shop", "unknown", "", "{}", {}, 0.5, Ms(kBaseMs + 20)),
               {"already has an open incident"});
  CHECK_FALSE(other
                  ->ExecForTest("INSERT INTO incidents (monitor, opened_at, updated_at, verdict, "
                                "first_verdict) VALUES ('shop', 1, 1, 'x', 'x')")
                  .has_value());
  CHECK(QueryOrFail(*store, "SELECT COUNT(*) FROM incidents") == 1);

  const Incident api = OpenOrFail(*other, "api", kBaseMs + 30);  // another monitor: fine

  RequireOk(store->Close(first.id, Ms(kBaseMs + 40)));
  const Incident second = OpenOrFail(*store, "shop", kBaseMs + 50, "upstream_down");
  CHECK(second.id > first.id);
  CHECK(Ids(store->OpenIncidents()) == std::vector<int64_t>{api.id, second.id});
  RequireError(store->OpenIncident("shop", "x", "", "{}", {}, 0, Ms(kBaseMs + 60)),
               {"id " + std::to_string(second.id)});
}

TEST_CASE("Incidents: Update and Close change only an open incident") {
  TempDir dir;
  FakeClock clock;
  auto store = OpenStoreOrFail(dir.File("gw.db"), clock);

  SUBCASE("an unknown id") {
    RequireError(store->Update(999, "dns", "", "{}", {}, 0.5, false, Ms(kBaseMs)),
                 {"incident 999", "does not exist"});
    RequireError(store->Close(999, Ms(kBaseMs)), {"incident 999", "does not exist"});
    auto none = store->Get(999);
    REQUIRE(none.has_value());
    CHECK_FALSE(none->has_value());
  }
  SUBCASE("a closed incident stays as it was closed") {
    const Incident inc = OpenOrFail(*store, "shop", kBaseMs, "transient", 0.3);
    RequireOk(store->Close(inc.id, Ms(kBaseMs + 1'000)));
    const Incident closed = GetOrFail(*store, inc.id);
    RequireError(
        store->Update(inc.id, "upstream_down", "x", "{}", {"eu"}, 0.9, true, Ms(kBaseMs + 2'000)),
        {"incident " + std::to_string(inc.id), "shop", "is closed"});
    RequireError(store->Close(inc.id, Ms(kBaseMs + 3'000), "dns"), {"is closed"});
    CheckSame(GetOrFail(*store, inc.id), closed);
    CHECK(closed.closed_at == Ms(kBaseMs + 1'000));
  }
  SUBCASE("a close stamped before the opening is clamped to the opening") {
    const Incident inc = OpenOrFail(*store, "shop", kBaseMs);
    RequireOk(store->Close(inc.id, Ms(kBaseMs - 5'000)));
    const Incident closed = GetOrFail(*store, inc.id);
    CHECK(closed.closed_at == Ms(kBaseMs));
    CHECK(closed.updated_at == Ms(kBaseMs));
  }
}

TEST_CASE("Incidents: bad input is refused with a clear error and writes nothing") {
  TempDir dir;
  FakeClock clock;
  auto store = OpenStoreOrFail(dir.File("gw.db"), clock);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  struct Row {
    const char* name;
    std::string monitor, verdict, evidence;
    double ratio;
    std::string want;
  };
  const Row rows[] = {
      {"empty monitor", "", "dns", "{}", 0.5, "monitor is empty"},
      {"empty verdict", "shop", "", "{}", 0.5, "verdict is empty"},
      {"NaN ratio", "shop", "dns", "{}", nan, "not a share in [0, 1]"},
      {"infinite ratio", "shop", "dns", "{}", inf, "not a share in [0, 1]"},
      {"negative ratio", "shop", "dns", "{}", -0.1, "not a share in [0, 1]"},
      {"ratio above one", "shop", "dns", "{}", 1.5, "not a share in [0, 1]"},
      {"evidence not JSON", "shop", "dns", "{\"counts\": ", 0.5, "evidence is not valid JSON"},
  };
  for (const Row& r : rows) {
    CAPTURE(r.name);
    RequireError(
        store->OpenIncident(r.monitor, r.verdict, "", r.evidence, {}, r.ratio, Ms(kBaseMs)),
        {r.want});
  }
  CHECK(QueryOrFail(*store, "SELECT COUNT(*) FROM incidents") == 0);

  const Incident inc = OpenOrFail(*store, "shop", kBaseMs, "dns", 0.5);
  for (const Row& r : rows) {
    if (r.monitor.empty()) continue;  // Update takes an id, not a monitor
    CAPTURE(r.name);
    RequireError(store->Update(inc.id, r.verdict, "changed", r.evidence, {"eu"}, r.ratio, true,
                               Ms(kBaseMs + 1'000)),
                 {r.want, "incident " + std::to_string(inc.id)});
  }
  RequireError(store->Close(inc.id, Ms(kBaseMs + 1'000), ""), {"final verdict is empty"});
  CheckSame(GetOrFail(*store, inc.id), inc);
}

TEST_CASE("Incidents: a corrupt stored row is reported, not skipped") {
  TempDir dir;
  FakeClock clock;
  auto store = OpenStoreOrFail(dir.File("gw.db"), clock);
  const Incident inc = OpenOrFail(*store, "shop", kBaseMs);
  RequireOk(store->ExecForTest("UPDATE incidents SET regions = 'eu,us'"));
  RequireError(store->List({}), {"incidents row " + std::to_string(inc.id), "regions"});
  RequireError(store->OpenIncidents(), {"regions"});
}

TEST_CASE("Incidents: List filters by monitor, open state and time, newest first, bounded") {
  TempDir dir;
  FakeClock clock;
  auto store = OpenStoreOrFail(dir.File("gw.db"), clock);
  const int64_t t0 = kBaseMs;
  auto at = [&](int64_t hours) { return Ms(t0 + hours * kHourMs); };
  // a: shop [0h, 1h)   b: api [2h, 3h)   c: shop [4h, open)   d: api [5h, open)   e: web [6h, 7h)
  const int64_t a = OpenOrFail(*store, "shop", t0).id;
  RequireOk(store->Close(a, at(1)));
  const int64_t b = OpenOrFail(*store, "api", t0 + 2 * kHourMs).id;
  RequireOk(store->Close(b, at(3)));
  const int64_t c = OpenOrFail(*store, "shop", t0 + 4 * kHourMs).id;
  const int64_t d = OpenOrFail(*store, "api", t0 + 5 * kHourMs).id;
  const int64_t e = OpenOrFail(*store, "web", t0 + 6 * kHourMs).id;
  RequireOk(store->Close(e, at(7)));
  using V = std::vector<int64_t>;

  CHECK(Ids(store->List({})) == V{e, d, c, b, a});
  CHECK(Ids(store->List({.monitor = "shop"})) == V{c, a});
  CHECK(Ids(store->List({.monitor = "nope"})).empty());
  CHECK(Ids(store->List({.open_only = true})) == V{d, c});
  CHECK(Ids(store->List({.monitor = "api", .open_only = true})) == V{d});
  // Time: listed when open at some time in [since, until).
  CHECK(Ids(store->List({.since = at(3) + 1ms})) == V{e, d, c});  // a and b closed before
  CHECK(Ids(store->List({.since = at(3)})) == V{e, d, c, b});     // b closed at since
  CHECK(Ids(store->List({.until = at(4)})) == V{b, a});           // c opened at until
  CHECK(Ids(store->List({.since = at(1) + 1ms, .until = at(4)})) == V{b});
  CHECK(Ids(store->List({.since = at(100)})) == V{d, c});  // open ones extend to now
  // Limit: clamped to 1 .. kMaxIncidentLimit.
  CHECK(Ids(store->List({.limit = 2})) == V{e, d});
  CHECK(Ids(store->List({.limit = 0})) == V{e});
  CHECK(Ids(store->List({.limit = -5})) == V{e});

  // 1,000 more closed incidents (plain SQL, one transaction): the upper clamp.
  RequireOk(store->ExecForTest(
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) "
      "INSERT INTO incidents (monitor, opened_at, updated_at, closed_at, verdict, first_verdict) "
      "SELECT 'bulk', " +
      std::to_string(t0 - kHourMs) + " - i, 0, " + std::to_string(t0 - kHourMs) +
      ", 'dns', 'dns' FROM n"));
  auto all = store->List({.limit = 5'000});
  REQUIRE(all.has_value());
  CHECK(all->size() == static_cast<size_t>(kMaxIncidentLimit));
  CHECK(all->front().id == e);
}

TEST_CASE("Incidents: a new store on the same file resumes the open incident after kill -9") {
  TempDir dir;
  const std::string path = dir.File("gw.db");
  FakeClock clock;
  OpenStoreOrFail(path, clock);  // create and migrate before the child starts
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // The child dies by SIGKILL holding its connection: no destructor, no clean close.
    close(fds[0]);
    auto store = IncidentStore::Open(path, clock);
    if (!store) _exit(2);
    auto inc = (*store)->OpenIncident("shop", "transient", "502s", "{}", {"eu"}, 0.5, Ms(kBaseMs));
    if (!inc) _exit(3);
    if (!(*store)->Update(inc->id, "upstream_down", "dead", "{}", {"eu", "us"}, 1.0, true,
                          Ms(kBaseMs + 1'000))) {
      _exit(4);
    }
    if (write(fds[1], &inc->id, sizeof inc->id) != sizeof inc->id) _exit(5);
    raise(SIGKILL);
    _exit(6);
  }
  close(fds[1]);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  INFO("child status " << status);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
  int64_t id = 0;
  REQUIRE(read(fds[0], &id, sizeof id) == static_cast<ssize_t>(sizeof id));
  close(fds[0]);

  auto store = OpenStoreOrFail(path, clock);
  auto open = store->OpenIncidents();
  REQUIRE(open.has_value());
  REQUIRE(open->size() == 1);
  const Incident& resumed = open->front();
  CHECK(resumed.id == id);
  CHECK(resumed.monitor == "shop");
  CHECK(resumed.verdict == "upstream_down");
  CHECK(resumed.first_verdict == "transient");
  CHECK(resumed.regions == std::vector<std::string>{"eu", "us"});
  CHECK(resumed.peak_ratio == 1.0);
  CHECK(resumed.alert_fired);
  CHECK(resumed.updated_at == Ms(kBaseMs + 1'000));
  // The resumed incident is the monitor's one open incident: it goes on from here.
  RequireError(store->OpenIncident("shop", "dns", "", "{}", {}, 0.5, Ms(kBaseMs + 2'000)),
               {"already has an open incident"});
  RequireOk(store->Close(id, Ms(kBaseMs + 3'000)));
  OpenOrFail(*store, "shop", kBaseMs + 4'000);
}

TEST_CASE("Incidents: a read-only store lists but does not write") {
  TempDir dir;
  FakeClock clock;
  const std::string path = dir.File("gw.db");
  RequireError(IncidentStore::Open(path, clock, {.read_only = true}), {"no such file"});

  auto writer = OpenStoreOrFail(path, clock);
  const Incident inc = OpenOrFail(*writer, "shop", kBaseMs);
  auto reader = OpenStoreOrFail(path, clock, {.read_only = true});
  CHECK(reader->read_only());
  CHECK(Ids(reader->OpenIncidents()) == std::vector<int64_t>{inc.id});
  CHECK(Ids(reader->List({.monitor = "shop"})) == std::vector<int64_t>{inc.id});
  CheckSame(GetOrFail(*reader, inc.id), inc);

  RequireError(reader->OpenIncident("api", "dns", "", "{}", {}, 0.5, Ms(kBaseMs)),
               {"read-only", "open"});
  RequireError(reader->Update(inc.id, "dns", "", "{}", {}, 1.0, true, Ms(kBaseMs + 1)),
               {"read-only", "update"});
  RequireError(reader->Close(inc.id, Ms(kBaseMs + 1)), {"read-only", "close"});
  RequireError(reader->Prune(Ms(kBaseMs + 100 * kHourMs), 10), {"read-only", "prune"});
  // Below the store: the connection itself is read-only.
  CHECK_FALSE(reader->ExecForTest("DELETE FROM incidents").has_value());
  CheckSame(GetOrFail(*writer, inc.id), inc);

  // The reader sees the writer's later commits (WAL).
  RequireOk(writer->Close(inc.id, Ms(kBaseMs + 5)));
  CHECK(Ids(reader->OpenIncidents()).empty());
  CHECK(GetOrFail(*reader, inc.id).closed_at == Ms(kBaseMs + 5));
}

TEST_CASE("Incidents: Prune deletes incidents closed before the cut, bounded, never open ones") {
  TempDir dir;
  FakeClock clock;
  auto store = OpenStoreOrFail(dir.File("gw.db"), clock);
  const int64_t cut = kBaseMs;
  const int64_t old_open = OpenOrFail(*store, "ancient", cut - 1'000 * kHourMs).id;
  auto closed_at = [&](const std::string& monitor, int64_t ms) {
    const Incident inc = OpenOrFail(*store, monitor, ms - 10);
    RequireOk(store->Close(inc.id, Ms(ms)));
    return inc.id;
  };
  closed_at("a", cut - 1);
  const int64_t at_cut = closed_at("b", cut);
  const int64_t after = closed_at("c", cut + 1);
  closed_at("d", cut - 500 * kHourMs);
  closed_at("e", cut - 600 * kHourMs);

  auto step = [&](int max_rows) {
    auto n = store->Prune(Ms(cut), max_rows);
    INFO((n ? std::string() : n.error()));
    REQUIRE(n.has_value());
    return *n;
  };
  CHECK(step(2) == 2);
  CHECK(step(2) == 1);
  CHECK(step(2) == 0);
  auto left = Ids(store->List({}));
  std::sort(left.begin(), left.end());
  CHECK(left == std::vector<int64_t>{old_open, at_cut, after});
  RequireError(store->Prune(Ms(cut), 0), {"max_rows must be positive"});
}

TEST_CASE("Storage: Prune keeps incidents for failure_retention, open ones always") {
  TempDir dir;
  FakeClock clock;
  const std::string path = dir.File("gw.db");
  auto incidents = OpenStoreOrFail(path, clock);
  auto results = SqliteStore::Open(path);
  REQUIRE(results.has_value());
  StorageConfig config;
  config.raw_retention = 1h;
  config.failure_retention = 3h;
  const int64_t now = kBaseMs + 1'000 * kHourMs;
  auto closed_at = [&](const std::string& monitor, int64_t ms) {
    const Incident inc = OpenOrFail(*incidents, monitor, ms - 10);
    RequireOk(incidents->Close(inc.id, Ms(ms)));
    return inc.id;
  };
  const int64_t open = OpenOrFail(*incidents, "open", now - 900 * kHourMs).id;
  closed_at("past", now - 3 * kHourMs - 1);
  const int64_t at_cut = closed_at("at-cut", now - 3 * kHourMs);
  const int64_t recent = closed_at("recent", now - kHourMs);  // past raw_retention: kept
  for (int i = 0; i < 3; ++i) closed_at("old" + std::to_string(i), now - 10 * kHourMs - i);
  // One raw result past its age: the budget is shared with the results.
  RequireOk((*results)->Insert(std::vector{testing::Simple("m", "r", now - 2 * kHourMs)}));

  auto prune = [&](int max_rows) {
    auto s = (*results)->Prune(Ms(now), config, max_rows);
    INFO((s ? std::string() : s.error()));
    REQUIRE(s.has_value());
    return *s;
  };
  PruneStats s = prune(2);
  CHECK(s.raw_results == 1);
  CHECK(s.incidents == 1);
  CHECK(s.Total() == 2);
  CHECK(s.more);
  s = prune(2);
  CHECK(s.incidents == 2);
  CHECK(s.more);
  s = prune(2);
  CHECK(s.incidents == 1);
  CHECK(s.Total() == 1);
  CHECK_FALSE(s.more);
  CHECK(prune(100).Total() == 0);

  auto left = Ids(incidents->List({}));
  std::sort(left.begin(), left.end());
  CHECK(left == std::vector<int64_t>{open, at_cut, recent});
}

TEST_CASE("Incidents: migrates a version 3 database, keeping results, alert state and outbox") {
  TempDir dir;
  FakeClock clock;
  const std::string path = dir.File("gw.db");
  {
    auto v3 = SqliteStore::Open(path, {.migrate_to_version_for_test = 3});
    REQUIRE(v3.has_value());
    auto version = (*v3)->SchemaVersion();
    REQUIRE(version.has_value());
    REQUIRE(*version == 3);
    CHECK_FALSE((*v3)->QueryIntForTest("SELECT COUNT(*) FROM incidents").has_value());
    // Rows as a version 3 gatewatch wrote them.
    RequireOk((*v3)->ExecForTest(
        "INSERT INTO results (monitor, region, started_at, attempt, confirmed, outcome, "
        "failure, http_status, processing_us, total_us, bytes_read, remote_ip, resolved, "
        "http_version, tls_version, tls_subject, tls_issuer, tls_earliest_expiry_subject, "
        "emitter, reason, headers, body_snippet, detail) VALUES ('shop', 'local', " +
        std::to_string(kBaseMs + 1'000) +
        ", 0, 1, 'http_502', 1, 502, 1500, 2500, 10, '127.0.0.1', '[\"127.0.0.1\"]', '1.1', "
        "'', '', '', '', 'nginx', 'unknown', '{}', X'', 'bad gateway')"));
    RequireOk((*v3)->ExecForTest(
        "INSERT INTO alert_state (alert, monitor, state, since_ms, firing_since_ms, "
        "last_notified_ms, notified, updated_ms) VALUES ('down', 'shop', 2, " +
        std::to_string(kBaseMs) + ", " + std::to_string(kBaseMs) + ", " + std::to_string(kBaseMs) +
        ", 1, " + std::to_string(kBaseMs) + ")"));
    RequireOk((*v3)->ExecForTest(
        "INSERT INTO outbox (notifier, alert, monitor, kind, message, created_ms, "
        "next_attempt_ms) VALUES ('slack', 'down', 'shop', 'firing', '{}', " +
        std::to_string(kBaseMs) + ", " + std::to_string(kBaseMs) + ")"));
  }
  SUBCASE("an IncidentStore on a version 3 schema is refused") {
    RequireError(IncidentStore::Open(path, clock, {.migrate_to_version_for_test = 3}),
                 {"schema version 3", "no incidents"});
    RequireError(IncidentStore::Open(path, clock, {.read_only = true}), {"schema version 3"});
  }
  SUBCASE("a normal open migrates to the latest version (4 or later) and keeps every row") {
    auto store = OpenStoreOrFail(path, clock);
    CHECK(SqliteStore::LatestSchemaVersion() >= 4);
    CHECK(QueryOrFail(*store, "PRAGMA user_version") == SqliteStore::LatestSchemaVersion());
    CHECK(QueryOrFail(*store, "SELECT COUNT(*) FROM incidents") == 0);
    CHECK(QueryOrFail(*store,
                      "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name IN "
                      "('incidents_one_open', 'incidents_by_opened', 'incidents_by_monitor', "
                      "'incidents_retention')") == 4);
    OpenOrFail(*store, "shop", kBaseMs + 2'000, "upstream_down");

    auto results = SqliteStore::Open(path);
    REQUIRE(results.has_value());
    auto rows = (*results)->Results({.monitor = "shop"});
    REQUIRE(rows.has_value());
    REQUIRE(rows->size() == 1);
    CHECK(rows->front().outcome == probes::Outcome::kHttp502);
    CHECK(rows->front().detail == "bad gateway");

    auto alerts = AlertStore::Open(path, clock);
    INFO((alerts ? std::string() : alerts.error()));
    REQUIRE(alerts.has_value());
    auto states = (*alerts)->LoadStates();
    REQUIRE(states.has_value());
    REQUIRE(states->size() == 1);
    CHECK(states->front().state == 2);
    CHECK(states->front().since == Ms(kBaseMs));
    auto pending = (*alerts)->Pending();
    REQUIRE(pending.has_value());
    CHECK(*pending == 1);
  }
}

TEST_CASE("Incidents: a call off the owner thread aborts in debug builds") {
#ifdef NDEBUG
  MESSAGE("skipped: an NDEBUG build has no owner-thread check");
#else
  TempDir dir;
  const std::string path = dir.File("gw.db");
  {
    FakeClock clock;
    OpenStoreOrFail(path, clock);
  }
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    close(fds[0]);
    dup2(fds[1], STDERR_FILENO);
    signal(SIGABRT, SIG_DFL);  // doctest's crash handler would report a failure from the child
    FakeClock clock;
    auto store = IncidentStore::Open(path, clock);
    if (!store) _exit(2);
    std::thread other([&] { (void)(*store)->OpenIncidents(); });
    other.join();
    _exit(0);  // not reached when the check works
  }
  close(fds[1]);
  std::string err;
  char buf[512];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) err.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  INFO("child status " << status << ", stderr: " << err);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGABRT);
  CHECK(err.find("IncidentStore::OpenIncidents called off the thread") != std::string::npos);
#endif
}

}  // namespace
}  // namespace gatewatch::storage
