#pragma once
// When each monitor x region is due (docs/probes.md). Pure logic over an injected clock:
// the engine thread calls TakeDue() from its loop and submits what is due; tests drive
// it with a FakeClock and never sleep.
//
// A slot's phase within its interval is a hash of the monitor name (the same in every
// region), aligned to wall-clock time, so it is stable across restarts and reloads and
// 10,000 monitors spread over the interval instead of bursting at one instant. A slot
// whose due time passed by more than an interval (the loop stalled) has its missed
// runs skipped and counted, never queued.
//
// Thread-safe: Update() comes from the main thread (reload), TakeDue() from the engine.

#include <cstdint>
#include <memory>
#include <mutex>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "probes/clock.h"
#include "probes/config.h"

namespace gatewatch::probes {

// docs/regions.md: with shard = "i/N", a replica probes the monitors that rendezvous
// hashing of the name assigns to it (1-based index). Adding a replica moves only 1/N.
bool InShard(std::string_view monitor_name, int index, int count);

class Scheduler {
 public:
  struct Slot {
    std::shared_ptr<const MonitorConfig> monitor;
    std::shared_ptr<const RegionConfig> region;
    SystemTime due{};       // when this run was due
    SystemTime next_due{};  // when the next run is due: a run not started by then is skipped
  };

  // Where in its interval a monitor runs: FNV-1a of the name modulo the interval.
  static Duration Offset(std::string_view monitor_name, Duration interval);
  // The first time >= `at` that is `offset` past a multiple of `interval` since the epoch.
  static SystemTime NextAligned(SystemTime at, Duration interval, Duration offset);

  explicit Scheduler(const Clock& clock) : clock_(clock) {}

  // Replaces the monitors. Each monitor runs in every region it lists (regions by name).
  // An unchanged monitor x region (same name and interval) keeps its next due time, so a
  // reload leaves no gap and runs nothing twice; new ones start at their next aligned
  // time; removed ones stop.
  void Update(const std::vector<std::shared_ptr<const MonitorConfig>>& monitors,
              const std::vector<std::shared_ptr<const RegionConfig>>& regions);

  // Every slot due at or before `now`, in due order, each advanced to its next run.
  std::vector<Slot> TakeDue(SystemTime now);
  // The earliest due time (SystemTime::max() when empty).
  SystemTime NextDue() const;

  size_t size() const;
  uint64_t missed() const;  // runs skipped because the loop fell more than an interval behind

 private:
  struct Entry {
    std::shared_ptr<const MonitorConfig> monitor;
    std::shared_ptr<const RegionConfig> region;
    SystemTime next_due{};
    uint64_t generation = 0;  // heap entries of an older generation are stale
  };
  struct HeapItem {
    SystemTime due;
    std::string key;
    uint64_t generation;
    bool operator>(const HeapItem& o) const { return due > o.due; }
  };

  const Clock& clock_;
  mutable std::mutex mu_;  // guards everything below
  std::unordered_map<std::string, Entry> entries_;  // key: monitor '\x1f' region
  // Lazily cleaned: NextDue() (const) drops stale items on top.
  mutable std::priority_queue<HeapItem, std::vector<HeapItem>, std::greater<>> heap_;
  uint64_t next_generation_ = 1;
  uint64_t missed_ = 0;
};

}  // namespace gatewatch::probes
