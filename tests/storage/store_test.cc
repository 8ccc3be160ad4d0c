#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>
#include <tuple>

#include "storage/sqlite_store.h"
#include "tests/storage/samples.h"
#include "tests/support/temp_dir.h"

namespace gatewatch::storage {
namespace {

using namespace std::chrono_literals;
using gatewatch::testing::TempDir;
using probes::Outcome;
using testing::kBaseMs;
using testing::Ms;
using testing::Simple;

std::unique_ptr<SqliteStore> OpenOrFail(const std::string& path, OpenOptions options = {}) {
  auto store = SqliteStore::Open(path, options);
  INFO((store ? std::string() : store.error()));
  REQUIRE(store.has_value());
  return std::move(*store);
}

void InsertOrFail(Store& store, const std::vector<probes::ProbeResult>& batch) {
  auto r = store.Insert(batch);
  INFO((r ? std::string() : r.error()));
  REQUIRE(r.has_value());
}

std::vector<probes::ProbeResult> AllResults(Store& store, const std::string& monitor) {
  auto r = store.Results({.monitor = monitor, .limit = kMaxResultLimit});
  REQUIRE(r.has_value());
  return *r;
}

TEST_CASE("Storage: every ProbeResult field round-trips through the file") {
  TempDir dir;
  const std::string path = dir.File("gw.db");
  const probes::ProbeResult full = testing::FullResult();

  probes::ProbeResult bare;  // nothing reached: every phase absent, no TLS facts
  bare.monitor = "bare";
  bare.region = "local";
  bare.started_at = Ms(kBaseMs - 1);  // before the hour: negative remainders stay exact
  bare.outcome = Outcome::kDnsError;
  bare.confirmed = false;

  probes::ProbeResult partial =
      Simple("partial", "local", kBaseMs, Outcome::kConnectTimeout, true, 0);
  partial.phases.resolve = 0us;  // reached in no time: zero, not absent
  partial.phases.total = 3'000'123us;

  {
    auto store = OpenOrFail(path);
    InsertOrFail(*store, {full, bare, partial});
  }
  auto store = OpenOrFail(path);  // a fresh connection reads the file
  SUBCASE("results query") {
    auto got = AllResults(*store, "shop");
    REQUIRE(got.size() == 1);
    testing::CheckSame(got[0], full);
    got = AllResults(*store, "bare");
    REQUIRE(got.size() == 1);
    testing::CheckSame(got[0], bare);
    CHECK_FALSE(got[0].phases.total.has_value());
    CHECK_FALSE(got[0].tls.earliest_expiry.has_value());
    got = AllResults(*store, "partial");
    REQUIRE(got.size() == 1);
    testing::CheckSame(got[0], partial);
    CHECK(got[0].phases.resolve == 0us);
    CHECK_FALSE(got[0].phases.connect.has_value());
  }
  SUBCASE("latest query") {
    auto latest = store->Latest({.monitor = "shop"});
    REQUIRE(latest.has_value());
    REQUIRE(latest->size() == 1);
    testing::CheckSame((*latest)[0], full);
  }
  SUBCASE("absent phases are NULL in the file, not zero") {
    auto nulls = store->QueryIntForTest(
        "SELECT COUNT(*) FROM results WHERE monitor = 'bare' AND resolve_us IS NULL AND "
        "connect_us IS NULL AND tls_us IS NULL AND processing_us IS NULL AND transfer_us IS "
        "NULL AND total_us IS NULL AND tls_earliest_expiry IS NULL");
    REQUIRE(nulls.has_value());
    CHECK(*nulls == 1);
    auto names = store->QueryIntForTest(
        "SELECT COUNT(*) FROM results WHERE outcome = 'http_502' AND emitter = 'nginx' AND "
        "reason = 'upstream_connect_failed' AND json_extract(headers, '$.server') = "
        "'nginx/1.22.1'");
    REQUIRE(names.has_value());
    CHECK(*names == 1);  // stable names and a JSON object, readable with plain SQL
  }
}

TEST_CASE("Storage: a repeated header's values are joined, others keep their order") {
  TempDir dir;
  auto store = OpenOrFail(dir.File("gw.db"));
  probes::ProbeResult r = Simple("m", "local", kBaseMs);
  r.headers = {{"via", "1.1 a"}, {"server", "envoy"}, {"via", "1.1 b"}};
  InsertOrFail(*store, {r});
  auto got = AllResults(*store, "m");
  REQUIRE(got.size() == 1);
  CHECK(got[0].headers == std::vector<std::pair<std::string, std::string>>{{"via", "1.1 a, 1.1 b"},
                                                                           {"server", "envoy"}});
}

TEST_CASE("Storage: Open errors are clear") {
  TempDir dir;
  SUBCASE("missing directory") {
    auto store = SqliteStore::Open(dir.File("no-such-dir/gw.db"));
    REQUIRE_FALSE(store.has_value());
    CHECK(store.error().find("no-such-dir") != std::string::npos);
    CHECK(store.error().find("does not exist") != std::string::npos);
  }
  SUBCASE("read-only on a missing file") {
    auto store = SqliteStore::Open(dir.File("gw.db"), {.read_only = true});
    REQUIRE_FALSE(store.has_value());
    CHECK(store.error().find("no such file") != std::string::npos);
  }
  SUBCASE("a read-only store cannot insert") {
    { auto rw = OpenOrFail(dir.File("gw.db")); }
    auto ro = OpenOrFail(dir.File("gw.db"), {.read_only = true});
    auto r = ro->Insert(std::vector<probes::ProbeResult>{Simple("m", "local", kBaseMs)});
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().find("read-only") != std::string::npos);
  }
  SUBCASE("not a database") {
    const std::string path = dir.Write("junk.db", std::string(4096, 'x'));
    auto store = SqliteStore::Open(path);
    REQUIRE_FALSE(store.has_value());
    CHECK(store.error().find("junk.db") != std::string::npos);
  }
}

TEST_CASE("Storage: latency buckets and status classes at their bounds") {
  CHECK(LatencyBucket(-5us) == 0);
  CHECK(LatencyBucket(0us) == 0);
  CHECK(LatencyBucket(1'000us) == 0);  // le 1 ms
  CHECK(LatencyBucket(1'001us) == 1);
  CHECK(LatencyBucket(2'000us) == 1);
  CHECK(LatencyBucket(10'000'000us) == kLatencyBuckets - 2);  // le 10000 ms
  CHECK(LatencyBucket(10'000'001us) == kLatencyBuckets - 1);  // +Inf
  for (size_t i = 0; i < kLatencyBucketBoundsMs.size(); ++i) {
    CHECK(LatencyBucket(std::chrono::milliseconds(kLatencyBucketBoundsMs[i])) == i);
  }
  CHECK(StatusClassOf(0) == StatusClass::kNone);
  CHECK(StatusClassOf(99) == StatusClass::kNone);
  CHECK(StatusClassOf(100) == StatusClass::k1xx);
  CHECK(StatusClassOf(299) == StatusClass::k2xx);
  CHECK(StatusClassOf(301) == StatusClass::k3xx);
  CHECK(StatusClassOf(404) == StatusClass::k4xx);
  CHECK(StatusClassOf(599) == StatusClass::k5xx);
  CHECK(StatusClassOf(600) == StatusClass::kNone);
}

// Independent recount of a rollup from raw results (the test's own arithmetic).
using Key = std::tuple<std::string, std::string, int64_t>;
std::map<Key, Rollup> Recount(const std::vector<probes::ProbeResult>& raw, int64_t width_ms) {
  std::map<Key, Rollup> out;
  for (const auto& r : raw) {
    const int64_t ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(r.started_at.time_since_epoch())
            .count();
    const int64_t start = ms - (((ms % width_ms) + width_ms) % width_ms);
    Rollup& u = out[{r.monitor, r.region, start}];
    u.monitor = r.monitor;
    u.region = r.region;
    u.bucket_start = Ms(start);
    u.attempts += 1;
    if (!r.confirmed) continue;
    u.confirmed += 1;
    u.by_outcome[static_cast<size_t>(r.outcome)] += 1;
    const int s = r.http_status;
    u.by_status_class[s >= 100 && s <= 599 ? static_cast<size_t>(s / 100) : 0] += 1;
    auto add = [](LatencyHistogram& h, const std::optional<std::chrono::microseconds>& d) {
      if (!d) return;
      size_t b = 0;
      while (b < kLatencyBucketBoundsMs.size() && d->count() > kLatencyBucketBoundsMs[b] * 1000) {
        ++b;
      }
      h.buckets[b] += 1;
      h.count += 1;
      h.sum_us += d->count();
    };
    add(u.total, r.phases.total);
    add(u.processing, r.phases.processing);
  }
  return out;
}

void CheckRollupsEqual(const std::vector<Rollup>& got, const std::map<Key, Rollup>& want,
                       const std::string& monitor) {
  size_t expected = 0;
  for (const auto& [key, u] : want) expected += std::get<0>(key) == monitor ? 1 : 0;
  CHECK(got.size() == expected);
  for (const Rollup& g : got) {
    const int64_t start =
        std::chrono::duration_cast<std::chrono::milliseconds>(g.bucket_start.time_since_epoch())
            .count();
    auto it = want.find({g.monitor, g.region, start});
    REQUIRE(it != want.end());
    const Rollup& w = it->second;
    INFO(g.monitor, " ", g.region, " ", start);
    CHECK(g.attempts == w.attempts);
    CHECK(g.confirmed == w.confirmed);
    CHECK(g.by_outcome == w.by_outcome);
    CHECK(g.by_status_class == w.by_status_class);
    CHECK(g.total.buckets == w.total.buckets);
    CHECK(g.total.count == w.total.count);
    CHECK(g.total.sum_us == w.total.sum_us);
    CHECK(g.processing.buckets == w.processing.buckets);
    CHECK(g.processing.count == w.processing.count);
    CHECK(g.processing.sum_us == w.processing.sum_us);
  }
}

TEST_CASE("Storage: rollups equal a recount of the raw results") {
  TempDir dir;
  auto store = OpenOrFail(dir.File("gw.db"));
  // 4,000 results over 3 hours (minus 10 minutes: spans hour boundaries unevenly), written in
  // batches of random size and in random time order, so upserts merge across batches.
  const int64_t start = kBaseMs - 10 * 60'000;
  const auto generated = testing::Generate(42, 4'000, start, 3 * 3'600'000);
  std::mt19937 rng(7);
  for (size_t i = 0; i < generated.size();) {
    const size_t n = std::min<size_t>(1 + rng() % 300, generated.size() - i);
    InsertOrFail(*store,
                 std::vector<probes::ProbeResult>(generated.begin() + static_cast<long>(i),
                                                  generated.begin() + static_cast<long>(i + n)));
    i += n;
  }
  // Recount from the rows as stored (read back), not from what was generated.
  std::vector<probes::ProbeResult> raw;
  for (const char* m : {"m0", "m1", "m2"}) {
    auto rows = AllResults(*store, m);
    raw.insert(raw.end(), rows.begin(), rows.end());
  }
  REQUIRE(raw.size() == generated.size());

  for (RollupWidth width : {RollupWidth::kMinute, RollupWidth::kHour}) {
    CAPTURE(static_cast<int>(width));
    const auto want = Recount(raw, WidthOf(width).count());
    for (const char* m : {"m0", "m1", "m2"}) {
      auto got = store->Rollups({.width = width, .monitor = m});
      REQUIRE(got.has_value());
      CheckRollupsEqual(*got, want, m);
    }
  }
  const auto hours = Recount(raw, 3'600'000);
  CHECK(hours.size() == 3 * 2 * 4);  // monitors x regions x hours touched

  // A region filter and a time range select exactly those buckets.
  auto eu = store->Rollups({.width = RollupWidth::kHour,
                            .monitor = "m1",
                            .region = "eu",
                            .since = Ms(kBaseMs),
                            .until = Ms(kBaseMs + 2 * 3'600'000)});
  REQUIRE(eu.has_value());
  REQUIRE(eu->size() == 2);
  CHECK((*eu)[0].bucket_start == Ms(kBaseMs));
  CHECK((*eu)[1].bucket_start == Ms(kBaseMs + 3'600'000));

  // Outcome counts over a window equal a recount of confirmed raw results.
  const SystemTime since = Ms(kBaseMs + 15 * 60'000), until = Ms(kBaseMs + 75 * 60'000);
  std::map<std::pair<std::string, std::string>, std::array<int64_t, kOutcomeCount>> want_counts;
  for (const auto& r : raw) {
    if (r.confirmed && r.started_at >= since && r.started_at < until) {
      want_counts[{r.monitor, r.region}][static_cast<size_t>(r.outcome)] += 1;
    }
  }
  for (std::optional<std::string> monitor :
       {std::optional<std::string>(), std::optional<std::string>("m2")}) {
    auto counts = store->CountOutcomes({.since = since, .until = until, .monitor = monitor});
    REQUIRE(counts.has_value());
    CHECK(counts->size() == (monitor ? 2u : want_counts.size()));
    for (const OutcomeCounts& c : *counts) {
      CHECK(c.by_outcome == want_counts[{c.monitor, c.region}]);
    }
  }
}

TEST_CASE("Storage: results query filters, orders newest first and is bounded") {
  TempDir dir;
  auto store = OpenOrFail(dir.File("gw.db"));
  std::vector<probes::ProbeResult> batch;
  for (int i = 0; i < 20; ++i) {
    batch.push_back(Simple("m", i % 2 == 0 ? "local" : "eu", kBaseMs + i * 1'000,
                           i % 5 == 0 ? Outcome::kHttp503 : Outcome::kOk, true,
                           i % 5 == 0 ? 503 : 200));
  }
  batch.push_back(Simple("other", "local", kBaseMs));
  InsertOrFail(*store, batch);

  auto all = store->Results({.monitor = "m"});
  REQUIRE(all.has_value());
  REQUIRE(all->size() == 20);
  CHECK(all->front().started_at == Ms(kBaseMs + 19'000));
  CHECK(std::is_sorted(all->begin(), all->end(),
                       [](const auto& a, const auto& b) { return a.started_at > b.started_at; }));

  auto range = store->Results({.monitor = "m",
                               .region = "local",
                               .since = Ms(kBaseMs + 4'000),
                               .until = Ms(kBaseMs + 10'000)});
  REQUIRE(range.has_value());
  REQUIRE(range->size() == 3);  // 4, 6, 8: since inclusive, until exclusive
  CHECK((*range)[0].started_at == Ms(kBaseMs + 8'000));
  CHECK((*range)[2].started_at == Ms(kBaseMs + 4'000));

  auto limited = store->Results({.monitor = "m", .limit = 3});
  REQUIRE(limited.has_value());
  CHECK(limited->size() == 3);
  auto clamped = store->Results({.monitor = "m", .limit = -7});
  REQUIRE(clamped.has_value());
  CHECK(clamped->size() == 1);

  auto failures = store->Results({.monitor = "m", .failures_only = true});
  REQUIRE(failures.has_value());
  CHECK(failures->size() == 4);  // 0, 5, 10, 15
  for (const auto& r : *failures) CHECK(r.outcome == Outcome::kHttp503);
}

TEST_CASE("Storage: latest result per monitor x region, confirmed or any attempt") {
  TempDir dir;
  auto store = OpenOrFail(dir.File("gw.db"));
  InsertOrFail(*store, {Simple("a", "local", kBaseMs + 5'000),
                        Simple("a", "local", kBaseMs + 6'000, Outcome::kHttp502, false, 502),
                        Simple("a", "eu", kBaseMs + 1'000), Simple("b", "local", kBaseMs)});
  // An older result written later must not replace the newer one.
  InsertOrFail(*store, {Simple("a", "local", kBaseMs + 1'000, Outcome::kHttp504, true, 504)});

  auto confirmed = store->Latest({});
  REQUIRE(confirmed.has_value());
  REQUIRE(confirmed->size() == 3);
  CHECK((*confirmed)[0].region == "eu");  // a/eu, a/local, b/local
  CHECK((*confirmed)[1].started_at == Ms(kBaseMs + 5'000));
  CHECK((*confirmed)[1].outcome == Outcome::kOk);
  CHECK((*confirmed)[2].monitor == "b");

  auto any = store->Latest({.monitor = "a", .confirmed_only = false});
  REQUIRE(any.has_value());
  REQUIRE(any->size() == 2);
  CHECK((*any)[1].started_at == Ms(kBaseMs + 6'000));
  CHECK((*any)[1].outcome == Outcome::kHttp502);
}

TEST_CASE("Storage: retention deletes exactly what is past its age") {
  TempDir dir;
  auto store = OpenOrFail(dir.File("gw.db"));
  StorageConfig config;
  config.raw_retention = 1h;
  config.failure_retention = 3h;
  config.minute_rollup_retention = 2h;
  config.hour_rollup_retention = 5h;
  const int64_t now = kBaseMs + 10 * 3'600'000;  // on an hour boundary
  const int64_t h = 3'600'000;
  InsertOrFail(
      *store,
      {
          Simple("m", "r", now - h - 1),                                    // A: raw, deleted
          Simple("m", "r", now - h),                                        // B: at the cut, kept
          Simple("m", "r", now - h - 1, Outcome::kHttp502, true, 502),      // C: failure, kept
          Simple("m", "r", now - 3 * h - 1, Outcome::kHttp502, true, 502),  // D: deleted
          Simple("m", "r", now - 3 * h, Outcome::kHttp502, true, 502),      // E: at the cut, kept
          Simple("m", "r", now - h - 1, Outcome::kExcused, true, 503),      // F: not a failure
          Simple("m", "r", now - h - 1, Outcome::kTimeoutTtfb, false, 0),   // G: failed attempt
          Simple("m", "r", now - 2 * h - 1),                                // H
          Simple("m", "r", now - 2 * h),                                    // I
          Simple("m", "r", now - 5 * h - 1),                                // J
          Simple("m", "r", now - 5 * h),                                    // K
      });
  auto minute_buckets = [&] {
    auto r = store->Rollups({.width = RollupWidth::kMinute, .monitor = "m"});
    REQUIRE(r.has_value());
    return r->size();
  };
  auto hour_buckets = [&] {
    auto r = store->Rollups({.width = RollupWidth::kHour, .monitor = "m"});
    REQUIRE(r.has_value());
    return r->size();
  };
  REQUIRE(minute_buckets() == 8);
  REQUIRE(hour_buckets() == 6);

  auto stats = store->Prune(Ms(now), config, 1'000);
  REQUIRE(stats.has_value());
  CHECK(stats->raw_results == 6);     // A F H I J K
  CHECK(stats->failed_results == 1);  // D
  CHECK(stats->minute_rollups == 5);  // buckets of D E H J K start before now - 2h
  CHECK(stats->hour_rollups == 1);    // J's hour starts before now - 5h
  CHECK_FALSE(stats->more);

  auto left = AllResults(*store, "m");
  std::vector<int64_t> times;
  for (const auto& r : left) {
    times.push_back(
        std::chrono::duration_cast<std::chrono::milliseconds>(r.started_at.time_since_epoch())
            .count() -
        now);
  }
  CHECK(times == std::vector<int64_t>{-h, -h - 1, -h - 1, -3 * h});  // B, C and G, E
  CHECK(minute_buckets() == 3);
  CHECK(hour_buckets() == 5);

  auto again = store->Prune(Ms(now), config, 1'000);
  REQUIRE(again.has_value());
  CHECK(again->Total() == 0);
  CHECK_FALSE(again->more);
}

TEST_CASE("Storage: incremental prune deletes at most max_rows per call") {
  TempDir dir;
  auto store = OpenOrFail(dir.File("gw.db"));
  StorageConfig config;
  config.raw_retention = 1h;
  config.failure_retention = 2h;
  config.minute_rollup_retention = 24h * 1000;
  config.hour_rollup_retention = 24h * 1000;
  const int64_t now = kBaseMs;
  auto old_rows = [&](int n, Outcome o) {
    std::vector<probes::ProbeResult> batch;
    for (int i = 0; i < n; ++i) batch.push_back(Simple("m", "r", now - 3 * 3'600'000 - i, o));
    InsertOrFail(*store, batch);
  };
  SUBCASE("250 rows in steps of 100") {
    old_rows(250, Outcome::kOk);
    for (int64_t want : {100, 100}) {
      auto s = store->Prune(Ms(now), config, 100);
      REQUIRE(s.has_value());
      CHECK(s->raw_results == want);
      CHECK(s->more);
    }
    auto s = store->Prune(Ms(now), config, 100);
    REQUIRE(s.has_value());
    CHECK(s->raw_results == 50);
    CHECK_FALSE(s->more);
  }
  SUBCASE("an exact multiple reports no more once done") {
    old_rows(200, Outcome::kOk);
    auto s = store->Prune(Ms(now), config, 100);
    REQUIRE(s.has_value());
    CHECK(s->more);
    s = store->Prune(Ms(now), config, 100);
    REQUIRE(s.has_value());
    CHECK(s->raw_results == 100);
    CHECK_FALSE(s->more);
  }
  SUBCASE("the budget is shared by every kind") {
    old_rows(30, Outcome::kOk);
    old_rows(30, Outcome::kHttp500);
    auto s = store->Prune(Ms(now), config, 50);
    REQUIRE(s.has_value());
    CHECK(s->raw_results == 30);
    CHECK(s->failed_results == 20);
    CHECK(s->Total() == 50);
    CHECK(s->more);
    s = store->Prune(Ms(now), config, 50);
    REQUIRE(s.has_value());
    CHECK(s->failed_results == 10);
    CHECK_FALSE(s->more);
  }
  SUBCASE("max_rows must be positive") {
    CHECK_FALSE(store->Prune(Ms(now), config, 0).has_value());
  }
}

TEST_CASE("Storage: migrates a version 1 database") {
  TempDir dir;
  const std::string path = dir.File("gw.db");
  {
    auto v1 = OpenOrFail(path, {.migrate_to_version_for_test = 1});
    auto version = v1->SchemaVersion();
    REQUIRE(version.has_value());
    REQUIRE(*version == 1);
    CHECK_FALSE(v1->QueryIntForTest("SELECT COUNT(*) FROM rollup_minute").has_value());
    // Rows as a version 1 gatewatch wrote them.
    auto r = v1->ExecForTest(
        "INSERT INTO results (monitor, region, started_at, attempt, confirmed, outcome, "
        "failure, http_status, processing_us, total_us, bytes_read, remote_ip, resolved, "
        "http_version, tls_version, tls_subject, tls_issuer, tls_earliest_expiry_subject, "
        "emitter, reason, headers, body_snippet, detail) VALUES "
        "('m', 'local', " +
        std::to_string(kBaseMs + 1'000) +
        ", 0, 1, 'ok', 0, 200, 1500, 2500, 10, '127.0.0.1', '[\"127.0.0.1\"]', '1.1', '', '', "
        "'', '', 'none', 'unknown', '{}', X'', ''),"
        "('m', 'local', " +
        std::to_string(kBaseMs + 2'000) +
        ", 0, 0, 'http_502', 1, 502, NULL, 700000, 0, '', '[]', '1.1', '', '', '', '', "
        "'nginx', 'unknown', '{\"server\":\"nginx\"}', X'3c68746d6c3e', 'bad gateway'),"
        "('m', 'local', " +
        std::to_string(kBaseMs + 4'000) +
        ", 1, 1, 'http_502', 1, 502, NULL, 20000000, 0, '', '[]', '1.1', '', '', '', '', "
        "'nginx', 'unknown', '{}', X'', '')");
    INFO((r ? std::string() : r.error()));
    REQUIRE(r.has_value());
  }
  SUBCASE("read-only refuses an old schema") {
    auto ro = SqliteStore::Open(path, {.read_only = true});
    REQUIRE_FALSE(ro.has_value());
    CHECK(ro.error().find("schema version 1") != std::string::npos);
  }
  SUBCASE("read-write migrates, back-fills rollups and latest, and keeps writing") {
    auto store = OpenOrFail(path);
    auto version = store->SchemaVersion();
    REQUIRE(version.has_value());
    CHECK(*version == SqliteStore::LatestSchemaVersion());
    CHECK(SqliteStore::LatestSchemaVersion() == 5);

    auto rows = AllResults(*store, "m");
    REQUIRE(rows.size() == 3);
    CHECK(rows[1].outcome == Outcome::kHttp502);
    CHECK(rows[1].body_snippet == "<html>");
    CHECK(rows[1].headers == std::vector<std::pair<std::string, std::string>>{{"server", "nginx"}});
    CHECK_FALSE(rows[1].phases.processing.has_value());

    InsertOrFail(*store, {Simple("m", "local", kBaseMs + 30'000)});
    rows = AllResults(*store, "m");
    REQUIRE(rows.size() == 4);
    const auto want = Recount(rows, 60'000);
    auto got = store->Rollups({.width = RollupWidth::kMinute, .monitor = "m"});
    REQUIRE(got.has_value());
    REQUIRE(got->size() == 1);
    CheckRollupsEqual(*got, want, "m");
    CHECK((*got)[0].attempts == 4);
    CHECK((*got)[0].confirmed == 3);
    CHECK((*got)[0].total.buckets[kLatencyBuckets - 1] == 1);  // 20 s: +Inf

    auto latest = store->Latest({.monitor = "m", .confirmed_only = false});
    REQUIRE(latest.has_value());
    REQUIRE(latest->size() == 1);
    CHECK(latest->front().started_at == Ms(kBaseMs + 30'000));
  }
  SUBCASE("a database from a newer gatewatch is refused") {
    {
      auto store = OpenOrFail(path);
      REQUIRE(store->ExecForTest("PRAGMA user_version = 99").has_value());
    }
    auto store = SqliteStore::Open(path);
    REQUIRE_FALSE(store.has_value());
    CHECK(store.error().find("newer") != std::string::npos);
  }
}

TEST_CASE("Storage: the rollup tables have a column per outcome, status class and bucket") {
  TempDir dir;
  auto store = OpenOrFail(dir.File("gw.db"));
  for (const char* table : {"rollup_minute", "rollup_hour"}) {
    auto has = [&](const std::string& column) {
      auto n = store->QueryIntForTest("SELECT COUNT(*) FROM pragma_table_info('" +
                                      std::string(table) + "') WHERE name = '" + column + "'");
      return n.has_value() && *n == 1;
    };
    for (std::string_view o : probes::kOutcomeNames) CHECK(has("o_" + std::string(o)));
    for (std::string_view s : kStatusClassNames) CHECK(has("s_" + std::string(s)));
    for (const char* phase : {"total", "processing"}) {
      for (int64_t b : kLatencyBucketBoundsMs) {
        CHECK(has(std::string(phase) + "_le_" + std::to_string(b)));
      }
      CHECK(has(std::string(phase) + "_le_inf"));
      CHECK(has(std::string(phase) + "_sum_us"));
    }
  }
}

TEST_CASE("Storage: a batch that fails leaves nothing behind") {
  TempDir dir;
  auto store = OpenOrFail(dir.File("gw.db"));
  REQUIRE(store
              ->ExecForTest("CREATE TEMP TRIGGER boom BEFORE INSERT ON main.results WHEN "
                            "NEW.monitor = 'boom' BEGIN SELECT RAISE(ABORT, 'boom'); END")
              .has_value());
  auto r = store->Insert(std::vector<probes::ProbeResult>{Simple("fine", "local", kBaseMs),
                                                          Simple("boom", "local", kBaseMs)});
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().find("boom") != std::string::npos);
  CHECK(AllResults(*store, "fine").empty());
  auto rollups = store->Rollups({.monitor = "fine"});
  REQUIRE(rollups.has_value());
  CHECK(rollups->empty());
  // The connection is usable afterwards.
  InsertOrFail(*store, {Simple("fine", "local", kBaseMs)});
  CHECK(AllResults(*store, "fine").size() == 1);
}

TEST_CASE("Storage: a reader reads while another connection holds the write lock (WAL)") {
  TempDir dir;
  const std::string path = dir.File("gw.db");
  auto writer = OpenOrFail(path);
  InsertOrFail(*writer, {Simple("m", "local", kBaseMs)});
  auto reader = OpenOrFail(path, {.read_only = true, .busy_timeout = 0ms});
  REQUIRE(writer->ExecForTest("BEGIN IMMEDIATE").has_value());
  REQUIRE(writer
              ->ExecForTest("INSERT INTO results SELECT NULL, monitor, region, started_at + 1, "
                            "attempt, confirmed, outcome, failure, http_status, resolve_us, "
                            "connect_us, tls_us, processing_us, transfer_us, total_us, "
                            "bytes_read, remote_ip, resolved, http_version, tls_version, "
                            "tls_subject, tls_issuer, tls_earliest_expiry, "
                            "tls_earliest_expiry_subject, emitter, reason, headers, "
                            "body_snippet, detail FROM results")
              .has_value());
  // Not blocked (busy_timeout 0 would fail at once), and the uncommitted row is invisible.
  CHECK(AllResults(*reader, "m").size() == 1);
  REQUIRE(writer->ExecForTest("COMMIT").has_value());
  CHECK(AllResults(*reader, "m").size() == 2);
  auto journal = writer->QueryIntForTest(
      "SELECT COUNT(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'");
  REQUIRE(journal.has_value());
  CHECK(*journal == 1);
}

}  // namespace
}  // namespace gatewatch::storage
