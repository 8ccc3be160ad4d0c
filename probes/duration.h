#pragma once
// Durations ("500ms", "30s", "1h30m", "30d") and sizes ("64KiB") as written in the
// config and on the command line. Parsing is strict: a unit is required, units appear
// in decreasing order and at most once, no signs, no fractions, no overflow.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "probes/result.h"

namespace gatewatch {

using Duration = std::chrono::milliseconds;

// "1h30m" -> 5'400'000 ms. The error says what was wrong and what is expected.
Result<Duration> ParseDuration(std::string_view text);
// Shortest exact spelling: 90'000 ms -> "1m30s", 0 -> "0s", 1'500 ms -> "1s500ms".
std::string FormatDuration(Duration d);

// "64KiB" -> 65536. Units: B, KiB, MiB, GiB (binary only; "64KB" is an error that says so).
Result<int64_t> ParseSize(std::string_view text);
// Largest unit that divides exactly: 65536 -> "64KiB".
std::string FormatSize(int64_t bytes);

}  // namespace gatewatch
