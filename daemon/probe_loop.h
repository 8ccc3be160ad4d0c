#pragma once
// The daemon's probe loop, run on the engine thread: asks the Scheduler what is due,
// submits it to the Prober (skipping with reason `backpressure` when the store has no
// room), and takes every result: hands it to the store and logs what an operator needs,
// bounded by the number of monitors, not by the probe rate:
// - "monitor state changed" for each change of a monitor x region (ok <-> failing; the
//   recovery line says how many confirmed failures the streak had);
// - "probe failed" for a confirmed failure that starts a streak or looks different from the
//   last one logged (outcome, status, emitter, reason), and otherwise at most once per
//   kFailureLogRepeat per monitor x region with `repeated=N`, the failures not logged since
//   the previous line. (One line per failure was 2,000 lines/s, ~40 GB a day, in a
//   10,000-monitor outage; every result is in SQLite and /metrics anyway.)
//
// Confirmation on onset (docs/alerts-and-diagnosis.md): when a monitor with upstreams gets its first
// gateway-class failure in a region (confirmed, after a result that was not one), each of
// its upstreams that is probed from that region is probed at once from the same region,
// so the verdict compares gateway and upstreams within the same second.
//
// Thread: Tick() and OnResult() run on the engine thread only; the counters and
// LastTick() are read from any thread.

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "probes/clock.h"
#include "probes/prober.h"
#include "probes/scheduler.h"

namespace gatewatch::daemon {

inline constexpr std::chrono::seconds kFailureLogRepeat{60};

// Scheduler lag (start time - due time) in fixed buckets, lock-free.
class LagHistogram {
 public:
  static constexpr std::array<int64_t, 10> kBoundsMs = {1, 5, 10, 25, 50, 100, 250, 500, 1000, 5000};
  void Observe(std::chrono::microseconds lag);
  // Per bucket (not cumulative); the last one is +Inf.
  std::array<uint64_t, kBoundsMs.size() + 1> Buckets() const;
  uint64_t Count() const { return count_.load(); }
  double SumSeconds() const { return static_cast<double>(sum_us_.load()) / 1e6; }
  // Upper bound of the bucket holding the q-quantile, in ms (+Inf as -1).
  int64_t QuantileBoundMs(double q) const;

 private:
  std::array<std::atomic<uint64_t>, kBoundsMs.size() + 1> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<int64_t> sum_us_{0};
};

struct ProbeLoopStats {
  std::atomic<uint64_t> submitted{0};
  std::atomic<uint64_t> skipped_overload{0};      // not started by its next due time
  std::atomic<uint64_t> skipped_backpressure{0};  // the writer's queue was full
  std::atomic<uint64_t> results{0};               // every attempt
  std::atomic<uint64_t> lost{0};                  // a result the store refused (queue full)
  std::atomic<uint64_t> confirmations{0};         // upstream probes submitted on onset
  LagHistogram lag;                               // attempt 0: started_at - due
};

class ProbeLoop {
 public:
  struct Hooks {
    std::function<bool()> store_has_room;               // false: skip with backpressure
    std::function<bool(probes::ProbeResult)> store;     // false: refused (counted lost)
    std::function<void(const probes::ProbeResult&)> observe;  // optional: metrics, alerts
  };

  ProbeLoop(const Clock& clock, probes::Scheduler& scheduler, Hooks hooks);

  // The monitors and regions to confirm upstreams with (the scheduler's set). Any thread.
  void SetTargets(const std::vector<std::shared_ptr<const probes::MonitorConfig>>& monitors,
                  const std::vector<std::shared_ptr<const probes::RegionConfig>>& regions);

  // The engine's on_tick: submits what is due, returns when it is next needed.
  SystemTime Tick(probes::Prober& prober);
  void OnResult(probes::ProbeResult r);

  const ProbeLoopStats& stats() const { return stats_; }
  SystemTime LastTick() const { return SystemTime(SystemTime::duration(last_tick_.load())); }

 private:
  const Clock& clock_;
  probes::Scheduler& scheduler_;
  Hooks hooks_;
  ProbeLoopStats stats_;
  std::atomic<SystemTime::rep> last_tick_{0};
  // Probes each upstream of r's monitor from r's region now (engine thread).
  void ConfirmUpstreams(const probes::ProbeResult& r);

  // Engine thread only: per monitor x region, what its confirmed results were.
  struct Health {
    bool known = false;            // a confirmed result was seen
    bool gateway_failing = false;  // the newest failed with a gateway-class failure
    uint64_t streak = 0;           // confirmed failures since the last healthy result (> 0: failing)
    uint64_t unlogged = 0;         // failures since the last "probe failed" line
    SystemTime logged_at{};        // of the last "probe failed" line
    probes::Outcome outcome{};     // what that line said
    int http_status = 0;
    probes::Emitter emitter{};
    probes::Reason reason{};
  };
  void LogConfirmed(const probes::ProbeResult& r, Health& h);
  std::unordered_map<std::string, Health> health_;
  probes::Prober* prober_ = nullptr;  // the engine's, known from the first Tick()

  struct Targets {
    std::unordered_map<std::string, std::shared_ptr<const probes::MonitorConfig>> monitors;
    std::unordered_map<std::string, std::shared_ptr<const probes::RegionConfig>> regions;
  };
  std::mutex targets_mu_;  // guards targets_ (replaced on reload, read on onset)
  std::shared_ptr<const Targets> targets_ = std::make_shared<Targets>();
};

}  // namespace gatewatch::daemon
