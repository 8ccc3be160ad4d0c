#pragma once
// A Clock that moves only when told: FakeClock::Advance(30s).

#include <atomic>

#include "probes/clock.h"

namespace gatewatch::testing {

class FakeClock final : public Clock {
 public:
  explicit FakeClock(SystemTime start = SystemTime(std::chrono::seconds(1'800'000'000)))
      : now_(start.time_since_epoch().count()) {}
  SystemTime Now() const override { return SystemTime(SystemTime::duration(now_.load())); }
  SteadyTime Steady() const override {
    return SteadyTime(std::chrono::duration_cast<SteadyTime::duration>(SystemTime::duration(now_.load())));
  }
  void Advance(std::chrono::nanoseconds d) {
    now_ += std::chrono::duration_cast<SystemTime::duration>(d).count();
  }
  void Set(SystemTime t) { now_ = t.time_since_epoch().count(); }

 private:
  std::atomic<SystemTime::rep> now_;
};

}  // namespace gatewatch::testing
