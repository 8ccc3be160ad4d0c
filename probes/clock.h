#pragma once
// Time, injected: components take a Clock& so tests can use a FakeClock and never sleep.

#include <chrono>
#include <string>

namespace gatewatch {

using SystemTime = std::chrono::system_clock::time_point;
using SteadyTime = std::chrono::steady_clock::time_point;

// RFC 3339 in UTC with milliseconds: "2026-11-23T05:25:10.123Z" (logs, API, payloads).
std::string FormatTime(SystemTime t);

class Clock {
 public:
  virtual ~Clock() = default;
  virtual SystemTime Now() const = 0;        // wall clock, for timestamps
  virtual SteadyTime Steady() const = 0;     // monotonic, for durations and deadlines
};

class RealClock final : public Clock {
 public:
  SystemTime Now() const override { return std::chrono::system_clock::now(); }
  SteadyTime Steady() const override { return std::chrono::steady_clock::now(); }
};

}  // namespace gatewatch
