#pragma once
// The probing interface: what the scheduler and `gatewatch check` talk to.

#include <functional>
#include <memory>

#include "probes/clock.h"
#include "probes/config.h"
#include "probes/probe_result.h"

namespace gatewatch::probes {

// One scheduled probe of one monitor from one region, with its confirmation retries.
struct ProbeJob {
  std::shared_ptr<const MonitorConfig> monitor;
  std::shared_ptr<const RegionConfig> region;
  // Not started by then (all slots busy) -> skipped: on_skip runs instead, no result.
  SteadyTime start_by = SteadyTime::max();
  // When the schedule wanted this probe to start (for lag); copied into the results.
  SystemTime due{};
  // Once per attempt, on the prober's thread; must not block. The last attempt (success
  // or the final retry) has confirmed = true.
  std::function<void(ProbeResult)> on_result;
  std::function<void()> on_skip;  // optional
};

// Thread-safe; Submit never blocks.
class Prober {
 public:
  virtual ~Prober() = default;
  virtual void Submit(ProbeJob job) = 0;
};

}  // namespace gatewatch::probes
