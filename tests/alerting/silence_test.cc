#include "alerting/silence.h"

#include <doctest/doctest.h>

namespace gatewatch::alerting {
namespace {

using namespace std::chrono;
using namespace std::chrono_literals;

SystemTime Utc(int y, unsigned m, unsigned d, int h, int min = 0) {
  return sys_days{year{y} / month{m} / day{d}} + hours{h} + minutes{min};
}

TEST_CASE("Silence: a one-off window includes its start and excludes its end") {
  SilenceConfig s;
  s.monitors = {"shop"};
  s.start = floor<seconds>(Utc(2026, 12, 5, 21));
  s.end = floor<seconds>(Utc(2026, 12, 6, 2));
  CHECK_FALSE(SilenceActive(s, Utc(2026, 12, 5, 20, 59)));
  CHECK(SilenceActive(s, Utc(2026, 12, 5, 21)));
  CHECK(SilenceActive(s, Utc(2026, 12, 6, 1, 59)));
  CHECK_FALSE(SilenceActive(s, Utc(2026, 12, 6, 2)));
  CHECK(MonitorSilenced({s}, "shop", Utc(2026, 12, 5, 22)));
  CHECK_FALSE(MonitorSilenced({s}, "other", Utc(2026, 12, 5, 22)));
}

TEST_CASE("Silence: weekly window in a named time zone, across DST") {
  SilenceConfig s;
  s.monitors = {"shop"};
  s.days = 0b1100000;  // sat, sun
  s.from = 2h;
  s.to = 4h;
  s.timezone = "Europe/Berlin";
  // Saturday 2026-11-28: Berlin is UTC+1, so 02:00-04:00 local is 01:00-03:00 UTC.
  CHECK_FALSE(SilenceActive(s, Utc(2026, 11, 28, 0, 59)));
  CHECK(SilenceActive(s, Utc(2026, 11, 28, 1, 0)));
  CHECK(SilenceActive(s, Utc(2026, 11, 28, 2, 59)));
  CHECK_FALSE(SilenceActive(s, Utc(2026, 11, 28, 3, 0)));
  // Saturday 2026-07-04: summer time, UTC+2: 00:00-02:00 UTC.
  CHECK(SilenceActive(s, Utc(2026, 7, 4, 0, 30)));
  CHECK_FALSE(SilenceActive(s, Utc(2026, 7, 4, 2, 30)));
  // Friday 2026-11-27 at the same local time: not a listed day.
  CHECK_FALSE(SilenceActive(s, Utc(2026, 11, 27, 1, 30)));
}

TEST_CASE("Silence: a weekly window that crosses midnight runs into the next day") {
  SilenceConfig s;
  s.monitors = {"shop"};
  s.days = 0b0010000;  // fri
  s.from = 22h;
  s.to = 2h;
  s.timezone = "UTC";
  CHECK(SilenceActive(s, Utc(2026, 11, 27, 23)));       // Friday 23:00
  CHECK(SilenceActive(s, Utc(2026, 11, 28, 1, 30)));    // Saturday 01:30
  CHECK_FALSE(SilenceActive(s, Utc(2026, 11, 28, 2)));  // Saturday 02:00
  CHECK_FALSE(SilenceActive(s, Utc(2026, 11, 27, 1)));  // Friday 01:00 (Thursday not listed)
}

}  // namespace
}  // namespace gatewatch::alerting
