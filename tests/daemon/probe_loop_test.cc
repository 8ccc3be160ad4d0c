#include "daemon/probe_loop.h"

#include <doctest/doctest.h>

#include <vector>

#include "probes/log.h"
#include "tests/support/fake_clock.h"

namespace gatewatch::daemon {
namespace {

using namespace std::chrono_literals;

// Records submitted jobs; the test plays the engine.
class FakeProber final : public probes::Prober {
 public:
  void Submit(probes::ProbeJob job) override { jobs.push_back(std::move(job)); }
  std::vector<probes::ProbeJob> jobs;
};

struct LogCapture {
  std::vector<std::string> lines;
  LogCapture() {
    log::SetSinkForTest([this](std::string_view l) { lines.emplace_back(l); });
  }
  ~LogCapture() { log::SetSinkForTest(nullptr); }
  int Count(std::string_view needle) const {
    int n = 0;
    for (const auto& l : lines) n += l.find(needle) != std::string::npos;
    return n;
  }
};

struct Fixture {
  testing::FakeClock clock;
  probes::Scheduler scheduler{clock};
  bool room = true;
  std::vector<probes::ProbeResult> stored;
  ProbeLoop loop{clock, scheduler,
                 {[this] { return room; },
                  [this](probes::ProbeResult r) {
                    stored.push_back(std::move(r));
                    return true;
                  },
                  nullptr}};
  FakeProber prober;

  Fixture() {
    auto m = std::make_shared<probes::MonitorConfig>();
    m->name = "shop";
    m->url = "http://127.0.0.1:1/";
    m->regions = {"local"};
    m->probe.interval = 10s;
    m->probe.timeout = 5s;
    scheduler.Update({m}, {std::make_shared<const probes::RegionConfig>(probes::RegionConfig{"local", "", {}, ""})});
  }
  // Moves to the next due time and ticks.
  void RunDue() {
    clock.Set(scheduler.NextDue());
    loop.Tick(prober);
  }
  void Deliver(probes::Outcome outcome, int attempt = 0, bool confirmed = true) {
    probes::ProbeResult r;
    r.monitor = "shop";
    r.region = "local";
    r.due = prober.jobs.back().due;
    r.started_at = r.due + 3ms;
    r.attempt = attempt;
    r.confirmed = confirmed;
    r.outcome = outcome;
    prober.jobs.back().on_result(r);
  }
};

TEST_CASE("ProbeLoop: submits what is due with start_by at the next due time") {
  Fixture f;
  f.RunDue();
  REQUIRE(f.prober.jobs.size() == 1);
  const auto& job = f.prober.jobs[0];
  CHECK(job.monitor->name == "shop");
  CHECK(job.due == f.clock.Now());
  CHECK(job.start_by - f.clock.Steady() == 10s);
  CHECK(f.loop.stats().submitted == 1);
  CHECK(f.loop.LastTick() == f.clock.Now());
  job.on_skip();
  CHECK(f.loop.stats().skipped_overload == 1);
}

TEST_CASE("ProbeLoop: a full store skips probes with backpressure instead of queueing") {
  Fixture f;
  f.room = false;
  f.RunDue();
  f.RunDue();
  CHECK(f.prober.jobs.empty());
  CHECK(f.loop.stats().skipped_backpressure == 2);
  f.room = true;
  f.RunDue();
  CHECK(f.prober.jobs.size() == 1);
}

TEST_CASE("ProbeLoop: every attempt stored, a log line for a new failure and for each state change") {
  LogCapture logs;
  Fixture f;
  f.RunDue();
  f.Deliver(probes::Outcome::kOk);  // first result, healthy: no state-change line
  CHECK(logs.Count("monitor state changed") == 0);
  f.RunDue();
  f.Deliver(probes::Outcome::kHttp502, 0, false);  // unconfirmed: stored, not logged
  CHECK(logs.Count("probe failed") == 0);
  f.Deliver(probes::Outcome::kHttp502, 1, true);
  CHECK(logs.Count("msg=\"probe failed\" monitor=shop region=local outcome=http_502") == 1);
  CHECK(logs.Count("msg=\"monitor state changed\" monitor=shop region=local from=ok to=failing") == 1);
  f.RunDue();
  f.Deliver(probes::Outcome::kHttp502, 0, true);  // still failing the same way: no line
  CHECK(logs.Count("probe failed") == 1);
  CHECK(logs.Count("monitor state changed") == 1);
  f.RunDue();
  f.Deliver(probes::Outcome::kOk);
  CHECK(logs.Count("from=failing to=ok outcome=ok failures=2") == 1);
  CHECK(f.stored.size() == 5);
  CHECK(f.loop.stats().results == 5);
  CHECK(f.loop.stats().lag.Count() == 4);  // attempt 0 only
  CHECK(f.loop.stats().lag.QuantileBoundMs(0.99) == 5);  // 3 ms lag -> the 5 ms bucket
}

TEST_CASE("ProbeLoop: a failure that persists is logged again once a minute, a different one at once") {
  // A 10,000-monitor outage logged 2,000 lines/s when every confirmed failure had its line.
  LogCapture logs;
  Fixture f;  // interval 10 s
  f.RunDue();
  f.Deliver(probes::Outcome::kConnectRefused);  // the first: logged
  for (int i = 0; i < 5; ++i) {  // 10 s .. 50 s later: the same failure, not logged
    f.RunDue();
    f.Deliver(probes::Outcome::kConnectRefused);
  }
  CHECK(logs.Count("probe failed") == 1);
  f.RunDue();  // 60 s after the last line: logged, with what it did not say
  f.Deliver(probes::Outcome::kConnectRefused);
  CHECK(logs.Count("probe failed") == 2);
  CHECK(logs.Count("outcome=connect_refused attempts=1 detail=\"\" repeated=5") == 1);
  f.RunDue();  // a different failure: logged at once
  f.Deliver(probes::Outcome::kTimeoutTtfb);
  CHECK(logs.Count("outcome=timeout_ttfb") == 1);
  CHECK(logs.Count("repeated=") == 1);
  f.RunDue();
  f.Deliver(probes::Outcome::kTimeoutTtfb);
  CHECK(logs.Count("probe failed") == 3);
  f.RunDue();
  f.Deliver(probes::Outcome::kOk);
  CHECK(logs.Count("from=failing to=ok outcome=ok failures=9") == 1);
  CHECK(logs.Count("monitor state changed") == 2);
  // A new streak starts with a line of its own, however soon.
  f.RunDue();
  f.Deliver(probes::Outcome::kTimeoutTtfb);
  CHECK(logs.Count("probe failed") == 4);
  CHECK(f.stored.size() == 11);  // every result stored, logged or not
}

}  // namespace
}  // namespace gatewatch::daemon

namespace gatewatch::daemon {
namespace {

TEST_CASE("ProbeLoop: the first gateway-class failure probes the upstreams from the same region at once") {
  Fixture f;
  const auto local = std::make_shared<const probes::RegionConfig>(probes::RegionConfig{"local", "", {}, ""});
  auto gateway = std::make_shared<probes::MonitorConfig>();
  gateway->name = "shop";
  gateway->regions = {"local"};
  gateway->upstreams = {"api-1", "api-2", "not-probed-here"};
  auto api1 = std::make_shared<probes::MonitorConfig>();
  api1->name = "api-1";
  api1->regions = {"local"};
  auto api2 = std::make_shared<probes::MonitorConfig>();
  api2->name = "api-2";
  api2->regions = {"eu"};  // not probed from the failing region: no confirmation
  f.loop.SetTargets({gateway, api1, api2}, {local});
  f.RunDue();
  REQUIRE(f.prober.jobs.size() == 1);

  const auto deliver = [&](int status, probes::Emitter emitter, probes::Outcome outcome) {
    probes::ProbeResult r;
    r.monitor = "shop";
    r.region = "local";
    r.started_at = f.clock.Now();
    r.confirmed = true;
    r.http_status = status;
    r.emitter = emitter;
    r.outcome = outcome;
    f.prober.jobs.front().on_result(r);
  };
  deliver(502, probes::Emitter::kNginx, probes::Outcome::kHttp502);
  REQUIRE(f.prober.jobs.size() == 2);
  const probes::ProbeJob& confirm = f.prober.jobs.back();
  CHECK(confirm.monitor->name == "api-1");
  CHECK(confirm.region->name == "local");
  CHECK(confirm.start_by > f.clock.Steady());
  CHECK(confirm.start_by <= f.clock.Steady() + 5s);
  CHECK(f.loop.stats().confirmations.load() == 1);

  // Its result goes where every result goes.
  probes::ProbeResult upstream;
  upstream.monitor = "api-1";
  upstream.region = "local";
  upstream.confirmed = true;
  upstream.outcome = probes::Outcome::kConnectRefused;
  confirm.on_result(upstream);
  CHECK(f.stored.back().monitor == "api-1");

  deliver(502, probes::Emitter::kNginx, probes::Outcome::kHttp502);  // still failing: no new onset
  CHECK(f.prober.jobs.size() == 2);
  deliver(200, probes::Emitter::kNone, probes::Outcome::kOk);
  deliver(500, probes::Emitter::kApplication, probes::Outcome::kHttp500);  // not gateway-class
  CHECK(f.prober.jobs.size() == 2);
  deliver(503, probes::Emitter::kHaproxy, probes::Outcome::kHttp503);  // a new onset
  CHECK(f.prober.jobs.size() == 3);
  CHECK(f.loop.stats().confirmations.load() == 2);
}

}  // namespace
}  // namespace gatewatch::daemon
