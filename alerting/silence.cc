#include "alerting/silence.h"

#include <date/tz.h>

#include <algorithm>

#include "probes/log.h"

namespace gatewatch::alerting {
namespace {

// Local time of day and weekday (0 = Monday) of `at` in `zone_name`.
bool LocalParts(std::string_view zone_name, SystemTime at, std::chrono::seconds* time_of_day, int* weekday) {
  using namespace std::chrono;
  const auto secs = floor<seconds>(at);
  date::local_seconds local;
  try {
    const date::time_zone* zone = date::locate_zone(std::string(zone_name));
    local = zone->to_local(secs);
  } catch (const std::exception& e) {
    log::Error("silence time zone unusable").Kv("timezone", zone_name).Kv("error", e.what());
    return false;
  }
  const auto day = floor<date::days>(local);
  *time_of_day = duration_cast<seconds>(local - day);
  // date::weekday: Sunday = 0 .. Saturday = 6; ours: Monday = 0 .. Sunday = 6.
  *weekday = static_cast<int>((date::weekday(day).c_encoding() + 6) % 7);
  return true;
}

}  // namespace

bool SilenceActive(const SilenceConfig& s, SystemTime at) {
  if (s.start && s.end) {
    const auto t = std::chrono::floor<std::chrono::seconds>(at);
    return *s.start <= t && t < *s.end;
  }
  if (!s.weekly() || !s.from || !s.to) return false;
  std::chrono::seconds tod{};
  int weekday = 0;
  if (!LocalParts(s.timezone, at, &tod, &weekday)) return false;
  const auto on = [&](int day) { return (s.days >> day) & 1; };
  if (*s.from < *s.to) return on(weekday) && *s.from <= tod && tod < *s.to;
  // Crosses midnight: the evening part on a listed day, the morning part the day after.
  return (on(weekday) && tod >= *s.from) || (on((weekday + 6) % 7) && tod < *s.to);
}

bool MonitorSilenced(const std::vector<SilenceConfig>& silences, std::string_view monitor, SystemTime at) {
  return std::any_of(silences.begin(), silences.end(), [&](const SilenceConfig& s) {
    return std::find(s.monitors.begin(), s.monitors.end(), monitor) != s.monitors.end() && SilenceActive(s, at);
  });
}

}  // namespace gatewatch::alerting
