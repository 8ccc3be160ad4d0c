#include "probes/scheduler.h"

#include <doctest/doctest.h>

#include <cstdlib>
#include <map>

#include "tests/support/fake_clock.h"

namespace gatewatch::probes {
namespace {

using namespace std::chrono_literals;
using testing::FakeClock;

std::shared_ptr<const MonitorConfig> Mon(std::string name, Duration interval,
                                         std::vector<std::string> regions = {"local"}) {
  auto m = std::make_shared<MonitorConfig>();
  m->name = std::move(name);
  m->url = "http://127.0.0.1:1/";
  m->regions = std::move(regions);
  m->probe.interval = interval;
  m->probe.timeout = std::min<Duration>(interval, 10s);
  return m;
}

std::vector<std::shared_ptr<const RegionConfig>> Regions(std::vector<std::string> names) {
  std::vector<std::shared_ptr<const RegionConfig>> out;
  for (auto& n : names) out.push_back(std::make_shared<const RegionConfig>(RegionConfig{n, "", {}, ""}));
  return out;
}

TEST_CASE("Scheduler: aligned times are offset past a multiple of the interval") {
  // Due times are 3k + 1 seconds: ..., 7 s, 10 s, 13 s, ...
  CHECK(Scheduler::NextAligned(SystemTime(9'000ms), 3s, 1s) == SystemTime(10'000ms));
  CHECK(Scheduler::NextAligned(SystemTime(10'000ms), 3s, 1s) == SystemTime(10'000ms));
  CHECK(Scheduler::NextAligned(SystemTime(10'001ms), 3s, 1s) == SystemTime(13'000ms));
  CHECK(Scheduler::Offset("shop", 30s) == Scheduler::Offset("shop", 30s));
  CHECK(Scheduler::Offset("shop", 30s) < 30s);
  CHECK(Scheduler::Offset("shop", 30s) != Scheduler::Offset("shop-api-1", 30s));
}

TEST_CASE("Scheduler: 10,000 monitors spread over the interval, no burst, each once") {
  FakeClock clock;
  Scheduler s(clock);
  std::vector<std::shared_ptr<const MonitorConfig>> monitors;
  for (int i = 0; i < 10'000; ++i) monitors.push_back(Mon("site-" + std::to_string(i), 5s));
  s.Update(monitors, Regions({"local"}));
  REQUIRE(s.size() == 10'000);
  std::map<std::string, int> runs;
  int max_per_step = 0;
  constexpr auto kStep = 100ms;
  (void)s.TakeDue(clock.Now());  // those due this very instant run again 5 s later
  for (int step = 0; step < 50; ++step) {  // exactly one interval: (start, start + 5 s]
    clock.Advance(kStep);
    const auto due = s.TakeDue(clock.Now());
    max_per_step = std::max(max_per_step, static_cast<int>(due.size()));
    for (const auto& slot : due) {
      ++runs[slot.monitor->name];
      CHECK(slot.due <= clock.Now());
      CHECK(slot.next_due == slot.due + 5s);
    }
  }
  CHECK(runs.size() == 10'000);
  for (const auto& [name, n] : runs) {
    if (n != 1) FAIL_CHECK(name << " ran " << n << " times in one interval");
  }
  // 10,000 over 50 steps is 200 per step on average: a burst would show far more.
  MESSAGE("busiest 100 ms step: " << max_per_step << " probes (mean 200)");
  CHECK(max_per_step <= 300);
  CHECK(s.missed() == 0);
}

TEST_CASE("Scheduler: same instant in every region, stable across restarts") {
  FakeClock clock;
  Scheduler a(clock), b(clock);
  const auto regions = Regions({"local", "eu", "us"});
  a.Update({Mon("shop", 30s, {"local", "eu", "us"})}, regions);
  b.Update({Mon("shop", 30s, {"local", "eu", "us"})}, regions);  // a "restart"
  CHECK(a.NextDue() == b.NextDue());
  clock.Set(a.NextDue());
  const auto due = a.TakeDue(clock.Now());
  REQUIRE(due.size() == 3);
  for (const auto& slot : due) CHECK(slot.due == due[0].due);
}

TEST_CASE("Scheduler: a reload keeps unchanged monitors' schedule: no gap, no double run") {
  FakeClock clock;
  Scheduler s(clock);
  const auto regions = Regions({"local"});
  s.Update({Mon("a", 10s), Mon("b", 10s)}, regions);
  std::vector<SystemTime> a_runs;
  for (int step = 0; step < 300; ++step) {  // 30 s in 100 ms steps
    clock.Advance(100ms);
    if (step == 150) {
      // Reload: a's timeout changes (same interval), b is removed, c is added.
      auto a2 = std::make_shared<MonitorConfig>(*Mon("a", 10s));
      a2->probe.timeout = 2s;
      s.Update({a2, Mon("c", 10s)}, regions);
    }
    for (const auto& slot : s.TakeDue(clock.Now())) {
      if (slot.monitor->name == "a") {
        a_runs.push_back(slot.due);
        if (step > 150) CHECK(slot.monitor->probe.timeout == 2s);  // the new config is used
      }
      if (slot.monitor->name == "b") CHECK(step < 150);
    }
  }
  REQUIRE(a_runs.size() == 3);
  CHECK(a_runs[1] - a_runs[0] == 10s);
  CHECK(a_runs[2] - a_runs[1] == 10s);
  CHECK(s.size() == 2);

  // A changed interval reschedules on the new grid.
  s.Update({Mon("a", 20s)}, regions);
  clock.Set(s.NextDue());
  const auto due = s.TakeDue(clock.Now());
  REQUIRE(due.size() == 1);
  CHECK(due[0].next_due - due[0].due == 20s);
  CHECK(std::chrono::duration_cast<Duration>(due[0].due.time_since_epoch()) % 20s ==
        Scheduler::Offset("a", 20s));
}

TEST_CASE("Scheduler: a stalled loop skips and counts missed runs instead of bursting") {
  FakeClock clock;
  Scheduler s(clock);
  s.Update({Mon("a", 10s)}, Regions({"local"}));
  const SystemTime first = s.NextDue();
  clock.Set(first + 35s);  // 3.5 intervals late
  const auto due = s.TakeDue(clock.Now());
  REQUIRE(due.size() == 1);  // one run now, not four
  CHECK(due[0].due == first);
  CHECK(due[0].next_due == first + 40s);
  CHECK(s.missed() == 3);
  CHECK(s.TakeDue(clock.Now()).empty());
}

TEST_CASE("Scheduler: shards split monitors by rendezvous hashing, evenly and stably") {
  constexpr int kMonitors = 3000;
  int per_shard[3] = {0, 0, 0};
  int moved = 0;
  for (int i = 0; i < kMonitors; ++i) {
    const std::string name = "site-" + std::to_string(i);
    int owners = 0;
    int owner3 = 0;
    for (int shard = 1; shard <= 3; ++shard) {
      if (InShard(name, shard, 3)) {
        ++owners;
        owner3 = shard;
        ++per_shard[shard - 1];
      }
    }
    CHECK(owners == 1);  // exactly one replica probes each monitor
    // Growing from 3 to 4 replicas moves a monitor only to the new replica.
    if (!InShard(name, owner3, 4)) {
      ++moved;
      CHECK(InShard(name, 4, 4));
    }
  }
  for (int n : per_shard) CHECK(std::abs(n - kMonitors / 3) < kMonitors / 10);
  CHECK(std::abs(moved - kMonitors / 4) < kMonitors / 10);
  CHECK(InShard("anything", 1, 1));
}

}  // namespace
}  // namespace gatewatch::probes
