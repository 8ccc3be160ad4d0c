#include "alerting/evaluator.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <map>

#include "tests/support/fake_clock.h"

namespace gatewatch::alerting {
namespace {

using namespace std::chrono_literals;
using Kind = AlertEvent::Kind;

AlertRule Rate(double above, double below, int min_samples = 10) {
  AlertRule r;
  r.name = "shop-502";
  r.monitors = {"shop"};
  r.kind = AlertKind::kStatusRate;
  r.codes = {502};
  r.above = above;
  r.below = below;
  r.window = 1min;
  r.min_samples = min_samples;
  r.pending_for = 0s;
  r.resolve_for = 0s;
  r.repeat = 0s;
  r.notify = {"ops"};
  return r;
}

struct Harness {
  testing::FakeClock clock;
  Evaluator eval{clock};
  std::vector<AlertEvent> events;

  void Configure(std::vector<AlertRule> rules, std::vector<SilenceConfig> silences = {}) {
    auto e = eval.Configure(std::move(rules), std::move(silences));
    events.insert(events.end(), e.begin(), e.end());
  }
  // One confirmed result now, then the clock moves by `step`.
  void Result(int status, std::string region = "local", std::chrono::milliseconds step = 1s,
              probes::Outcome outcome = probes::Outcome::kOk, std::string monitor = "shop") {
    probes::ProbeResult r;
    r.monitor = std::move(monitor);
    r.region = std::move(region);
    r.started_at = clock.Now();
    r.confirmed = true;
    r.http_status = status;
    r.outcome = status == 0 ? outcome : (status < 400 ? probes::Outcome::kOk : probes::OutcomeForUnexpectedStatus(status));
    if (status >= 500) r.emitter = probes::Emitter::kNginx;
    auto e = eval.Observe(r);
    events.insert(events.end(), e.begin(), e.end());
    clock.Advance(step);
  }
  void Tick() {
    auto e = eval.Tick(clock.Now());
    events.insert(events.end(), e.begin(), e.end());
  }
  int Count(Kind k) const {
    return static_cast<int>(std::count_if(events.begin(), events.end(), [&](const AlertEvent& e) { return e.kind == k; }));
  }
  AlertState State() const { return eval.Snapshot().at(0).state; }
};

TEST_CASE("Evaluator: fires when the share crosses the threshold, not below min_samples") {
  Harness h;
  h.Configure({Rate(0.05, 0.01, 10)});
  for (int i = 0; i < 9; ++i) h.Result(502);
  CHECK(h.events.empty());  // 9 samples: no verdict yet
  h.Result(502);
  REQUIRE(h.Count(Kind::kFiring) == 1);
  const AlertEvent& e = h.events[0];
  CHECK(e.alert == "shop-502");
  CHECK(e.monitor == "shop");
  CHECK(e.ratio == doctest::Approx(1.0));
  CHECK(e.samples == 10);
  CHECK(e.regions_above == std::vector<std::string>{"local"});
  CHECK(e.emitters.at("nginx") == 10);  // no reason on the page: the emitter alone
  CHECK(e.notify == std::vector<std::string>{"ops"});
  CHECK(e.summary == "shop: status 502 rate 100% of 10 probes over 1m in local (threshold 5%)");
  CHECK(h.State() == AlertState::kFiring);
}

TEST_CASE("Evaluator: emitters are counted by emitter, with the reason when the page names one") {
  testing::FakeClock clock;
  Evaluator eval{clock};
  auto configured = eval.Configure({Rate(0.05, 0.01, 4)}, {});
  CHECK(configured.empty());
  std::vector<AlertEvent> events;
  for (int i = 0; i < 4; ++i) {
    probes::ProbeResult r;
    r.monitor = "shop";
    r.region = "local";
    r.started_at = clock.Now();
    r.confirmed = true;
    r.http_status = 502;
    r.outcome = probes::Outcome::kHttp502;
    r.emitter = i < 3 ? probes::Emitter::kHaproxy : probes::Emitter::kNginx;
    r.reason = i < 3 ? probes::Reason::kInvalidUpstreamResponse : probes::Reason::kUnknown;
    for (auto& e : eval.Observe(r)) events.push_back(e);
    clock.Advance(1s);
  }
  REQUIRE(events.size() == 1);
  const std::map<std::string, int64_t> want = {{"haproxy/invalid_upstream_response", 3}, {"nginx", 1}};
  CHECK(events[0].emitters == want);
}

TEST_CASE("Evaluator: `for` keeps it pending and recovering in time sends nothing") {
  Harness h;
  AlertRule r = Rate(0.5, 0.1, 2);
  r.pending_for = 30s;
  h.Configure({r});
  h.Result(502);
  h.Result(502);
  CHECK(h.State() == AlertState::kPending);
  for (int i = 0; i < 20; ++i) h.Result(200);  // recovers before 30 s
  CHECK(h.State() == AlertState::kOk);
  CHECK(h.events.empty());
  h.clock.Advance(2min);  // the window forgets all that
  for (int i = 0; i < 20; ++i) h.Result(502);  // pending from the second one on
  CHECK(h.State() == AlertState::kPending);
  CHECK(h.events.empty());
  h.clock.Advance(12s);
  h.Tick();
  CHECK(h.Count(Kind::kFiring) == 1);
}

TEST_CASE("Evaluator: a 1-in-3 failure pattern fires once and does not flap (hysteresis)") {
  Harness h;
  AlertRule r = Rate(0.25, 0.10, 10);
  r.resolve_for = 30s;
  h.Configure({r});
  for (int i = 0; i < 900; ++i) {  // 15 minutes, one result a second: 502, 200, 200, ...
    h.Result(i % 3 == 0 ? 502 : 200);
    h.Tick();
  }
  CHECK(h.Count(Kind::kFiring) == 1);
  CHECK(h.Count(Kind::kResolved) == 0);
  // Without hysteresis the share wobbles around 1/3 as the window slides: with above
  // and below both at a third the alert would flap. Hysteresis is what prevents it.
  for (int i = 0; i < 120; ++i) {  // healthy for 2 minutes: below 10 % for 30 s
    h.Result(200);
    h.Tick();
  }
  CHECK(h.Count(Kind::kResolved) == 1);
  CHECK(h.State() == AlertState::kOk);
}

TEST_CASE("Evaluator: min_regions needs a quorum of regions above the threshold") {
  Harness h;
  AlertRule r = Rate(0.5, 0.1, 3);
  r.min_regions = 2;
  h.Configure({r});
  for (int i = 0; i < 5; ++i) {
    h.Result(502, "eu", 0s);
    h.Result(200, "us");
  }
  CHECK(h.events.empty());  // only eu is failing
  for (int i = 0; i < 10; ++i) {  // us reaches 15 of 20
    h.Result(502, "eu", 0s);
    h.Result(502, "us");
  }
  REQUIRE(h.Count(Kind::kFiring) == 1);
  CHECK(h.events[0].regions_above == std::vector<std::string>{"eu", "us"});
}

TEST_CASE("Evaluator: repeat reminds while firing, resolve_for waits, flapping back is silent") {
  Harness h;
  AlertRule r = Rate(0.5, 0.2, 2);
  r.repeat = 5min;
  r.resolve_for = 1min;
  r.window = 30s;
  h.Configure({r});
  h.Result(502);
  h.Result(502);
  CHECK(h.Count(Kind::kFiring) == 1);
  for (int i = 0; i < 24; ++i) h.Result(502, "local", 10s);  // still failing, 4 minutes
  h.Tick();
  CHECK(h.Count(Kind::kReminder) == 0);
  for (int i = 0; i < 7; ++i) h.Result(502, "local", 10s);  // past 5 minutes
  CHECK(h.Count(Kind::kReminder) == 1);
  // Too few samples in the window is no verdict: the alert holds, it does not resolve.
  h.clock.Advance(2min);
  h.Tick();
  CHECK(h.State() == AlertState::kFiring);
  // Recovery: resolving for a while, then one failure burst flips back to firing quietly.
  for (int i = 0; i < 40; ++i) h.Result(200);
  CHECK(h.State() == AlertState::kResolving);
  for (int i = 0; i < 40; ++i) h.Result(502);
  CHECK(h.State() == AlertState::kFiring);
  CHECK(h.Count(Kind::kFiring) == 1);
  for (int i = 0; i < 100; ++i) h.Result(200);
  CHECK(h.Count(Kind::kResolved) == 1);
}

TEST_CASE("Evaluator: the window is exactly as long as configured, also under a minute") {
  Harness h;
  AlertRule r = Rate(0.5, 0.1, 1);
  r.window = 10s;
  h.Configure({r});
  for (int i = 0; i < 10; ++i) h.Result(502);
  REQUIRE(h.Count(Kind::kFiring) == 1);
  for (int i = 0; i < 9; ++i) h.Result(200);
  // 10 s window: the last 10 results are 9 x 200 and one 502 (a 60 s ring would still
  // hold ten 502s here): exactly `below`, which is not under it.
  CHECK(h.eval.Snapshot()[0].ratio == doctest::Approx(0.1));
  CHECK(h.Count(Kind::kResolved) == 0);
  h.Result(200);
  CHECK(h.eval.Snapshot()[0].ratio == doctest::Approx(0.0));
  CHECK(h.Count(Kind::kResolved) == 1);
}

TEST_CASE("Evaluator: silences mute notifications but not state, excused 503s are not counted") {
  Harness h;
  SilenceConfig s;
  s.monitors = {"shop"};
  s.start = std::chrono::floor<std::chrono::seconds>(h.clock.Now());
  s.end = *s.start + std::chrono::seconds(120);
  h.Configure({Rate(0.5, 0.1, 2)}, {s});
  h.Result(502);
  h.Result(502);
  CHECK(h.State() == AlertState::kFiring);  // tracked...
  CHECK(h.events.empty());                   // ...but muted
  CHECK(h.eval.Snapshot()[0].silenced);
  h.clock.Advance(3min);  // the silence is over, still failing
  h.Result(502);
  CHECK(h.Count(Kind::kFiring) == 1);

  // A firing that starts and ends inside a silence is never notified, nor resolved.
  Harness quiet;
  SilenceConfig q = s;
  q.start = std::chrono::floor<std::chrono::seconds>(quiet.clock.Now());
  q.end = *q.start + std::chrono::seconds(3600);
  quiet.Configure({Rate(0.5, 0.1, 2)}, {q});
  quiet.Result(502);
  quiet.Result(502);
  for (int i = 0; i < 100; ++i) quiet.Result(200);
  CHECK(quiet.State() == AlertState::kOk);
  CHECK(quiet.events.empty());

  // 503 + Retry-After during a silence is excused: it does not count towards a 503 rule.
  Harness ex;
  SilenceConfig e = s;
  e.start = std::chrono::floor<std::chrono::seconds>(ex.clock.Now());
  e.end = *e.start + std::chrono::seconds(3600);
  AlertRule r503 = Rate(0.5, 0.1, 2);
  r503.codes = {503};
  ex.Configure({r503}, {e});
  for (int i = 0; i < 10; ++i) {
    probes::ProbeResult r;
    r.monitor = "shop";
    r.region = "local";
    r.started_at = ex.clock.Now();
    r.confirmed = true;
    r.http_status = 503;
    r.outcome = probes::Outcome::kHttp503;
    r.headers = {{"retry-after", "60"}};
    ex.eval.Observe(r);
    ex.clock.Advance(1s);
  }
  CHECK(ex.State() == AlertState::kOk);
}

TEST_CASE("Evaluator: down fires after N consecutive failures, a success resets the count") {
  Harness h;
  AlertRule r;
  r.name = "api-down";
  r.monitors = {"shop"};
  r.kind = AlertKind::kDown;
  r.after = 3;
  r.pending_for = 0s;
  r.resolve_for = 0s;
  h.Configure({r});
  h.Result(0, "local", 1s, probes::Outcome::kConnectRefused);
  h.Result(0, "local", 1s, probes::Outcome::kConnectRefused);
  h.Result(200);
  h.Result(0, "local", 1s, probes::Outcome::kConnectRefused);
  h.Result(0, "local", 1s, probes::Outcome::kConnectRefused);
  CHECK(h.events.empty());
  h.Result(0, "local", 1s, probes::Outcome::kConnectRefused);
  REQUIRE(h.Count(Kind::kFiring) == 1);
  CHECK(h.events[0].summary == "shop down: 3 consecutive failed probes (connect_refused) in local");
  h.clock.Advance(89s);
  h.Result(200);
  REQUIRE(h.Count(Kind::kResolved) == 1);
  // A resolution says what recovered and after how long; a "down" has nothing left to measure.
  const AlertEvent& resolved = h.events.back();
  CHECK(resolved.summary == "shop recovered after 1m30s: probes succeed again");
  CHECK(resolved.samples == 0);
  CHECK(resolved.value.empty());
}

TEST_CASE("Evaluator: a resolved rate alert says how long it fired and what it measures now") {
  Harness h;
  AlertRule r = Rate(0.5, 0.1, 2);
  r.resolve_for = 0s;
  h.Configure({r});
  h.Result(502);
  h.Result(502);
  REQUIRE(h.Count(Kind::kFiring) == 1);
  for (int i = 0; i < 20 && h.Count(Kind::kResolved) == 0; ++i) h.Result(200);
  REQUIRE(h.Count(Kind::kResolved) == 1);
  const std::string& summary = h.events.back().summary;
  CHECK(summary.starts_with("shop recovered after "));
  CHECK(summary.find("; now status 502 rate ") != std::string::npos);
  CHECK(summary.find("(threshold 50%)") != std::string::npos);
}

TEST_CASE("Evaluator: latency percentile of a phase over the window") {
  Harness h;
  AlertRule r;
  r.name = "slow";
  r.monitors = {"shop"};
  r.kind = AlertKind::kLatency;
  r.phase = "processing";
  r.percentile = 95;
  r.latency_above = 800ms;
  r.latency_below = 800ms;
  r.min_samples = 10;
  r.window = 1min;
  r.pending_for = 0s;
  r.resolve_for = 0s;
  h.Configure({r});
  const auto result = [&](std::chrono::milliseconds processing) {
    probes::ProbeResult p;
    p.monitor = "shop";
    p.region = "local";
    p.started_at = h.clock.Now();
    p.confirmed = true;
    p.http_status = 200;
    p.phases.processing = processing;
    auto e = h.eval.Observe(p);
    h.events.insert(h.events.end(), e.begin(), e.end());
    h.clock.Advance(1s);
  };
  for (int i = 0; i < 20; ++i) result(50ms);
  CHECK(h.events.empty());
  for (int i = 0; i < 20; ++i) result(1500ms);
  REQUIRE(h.Count(Kind::kFiring) == 1);
  CHECK(h.events[0].summary.find("p95 processing 2s") != std::string::npos);
}

TEST_CASE("Evaluator: cert_expiry fires as the expiry comes within reach, resolves on renewal") {
  Harness h;
  AlertRule r;
  r.name = "cert";
  r.monitors = {"shop"};
  r.kind = AlertKind::kCertExpiry;
  r.within = 24h * 14;
  r.pending_for = 0s;
  r.resolve_for = 0s;
  h.Configure({r});
  probes::ProbeResult p;
  p.monitor = "shop";
  p.region = "local";
  p.confirmed = true;
  p.http_status = 200;
  p.started_at = h.clock.Now();
  p.tls.earliest_expiry = h.clock.Now() + 24h * 20;
  h.eval.Observe(p);
  CHECK(h.State() == AlertState::kOk);
  h.clock.Advance(24h * 7);  // 13 days left: time alone makes it fire
  h.Tick();
  REQUIRE(h.Count(Kind::kFiring) == 1);
  p.started_at = h.clock.Now();
  p.tls.earliest_expiry = h.clock.Now() + 24h * 90;  // renewed
  auto e = h.eval.Observe(p);
  REQUIRE(e.size() == 1);
  CHECK(e[0].kind == Kind::kResolved);
}

TEST_CASE("Evaluator: a reload keeps unchanged pairs and resolves removed firing ones") {
  Harness h;
  AlertRule r = Rate(0.5, 0.1, 2);
  h.Configure({r});
  h.Result(502);
  h.Result(502);
  REQUIRE(h.Count(Kind::kFiring) == 1);
  AlertRule changed = r;
  changed.above = 0.6;  // same alert, new threshold: state kept, no new message
  h.Configure({changed});
  CHECK(h.State() == AlertState::kFiring);
  CHECK(h.Count(Kind::kFiring) == 1);
  h.Configure({});  // alert removed while firing
  CHECK(h.Count(Kind::kResolved) == 1);
  CHECK(h.events.back().summary.find("removed from the configuration") != std::string::npos);
}

TEST_CASE("Evaluator: unconfirmed attempts and other monitors do not count") {
  Harness h;
  h.Configure({Rate(0.5, 0.1, 2)});
  probes::ProbeResult r;
  r.monitor = "shop";
  r.region = "local";
  r.confirmed = false;
  r.http_status = 502;
  for (int i = 0; i < 10; ++i) {
    r.started_at = h.clock.Now();
    h.eval.Observe(r);
    h.clock.Advance(1s);
  }
  for (int i = 0; i < 10; ++i) h.Result(502, "local", 1s, probes::Outcome::kOk, "other");
  CHECK(h.State() == AlertState::kOk);
  CHECK(h.events.empty());
}

}  // namespace
}  // namespace gatewatch::alerting
