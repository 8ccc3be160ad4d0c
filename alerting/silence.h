#pragma once
// Whether a silence (maintenance window) is active at an instant: one-off windows
// [start, end), and weekly windows on the listed days from `from` to `to` local time in
// the silence's time zone (to < from crosses midnight: the window then runs into the
// next day). Thread-safe: pure functions (the tz database is read-only after load).

#include <string_view>
#include <vector>

#include "alerting/config.h"
#include "probes/clock.h"

namespace gatewatch::alerting {

bool SilenceActive(const SilenceConfig& silence, SystemTime at);

// Whether any silence covering `monitor` is active at `at`.
bool MonitorSilenced(const std::vector<SilenceConfig>& silences, std::string_view monitor, SystemTime at);

}  // namespace gatewatch::alerting
