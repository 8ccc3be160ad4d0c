#include "probes/duration.h"

#include <array>
#include <cctype>
#include <limits>

namespace gatewatch {
namespace {

struct Unit {
  std::string_view name;
  int64_t ms;
};
constexpr std::array<Unit, 5> kDurationUnits{{
    {"d", 86'400'000},
    {"h", 3'600'000},
    {"ms", 1},
    {"m", 60'000},
    {"s", 1'000},
}};
// Rank for the "decreasing order" rule.
int Rank(std::string_view unit) {
  if (unit == "d") return 5;
  if (unit == "h") return 4;
  if (unit == "m") return 3;
  if (unit == "s") return 2;
  return 1;  // ms
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Reads the leading digits of `s` into *value; false on overflow or no digits.
bool ReadNumber(std::string_view& s, int64_t* value) {
  size_t i = 0;
  int64_t v = 0;
  while (i < s.size() && IsDigit(s[i])) {
    const int digit = s[i] - '0';
    if (v > (std::numeric_limits<int64_t>::max() - digit) / 10) return false;
    v = v * 10 + digit;
    ++i;
  }
  if (i == 0) return false;
  *value = v;
  s.remove_prefix(i);
  return true;
}

}  // namespace

Result<Duration> ParseDuration(std::string_view text) {
  const std::string quoted = "\"" + std::string(text) + "\"";
  if (text.empty()) return Error("expected a duration such as \"30s\", got an empty string");
  std::string_view s = text;
  int64_t total = 0;
  int last_rank = 100;
  while (!s.empty()) {
    if (!IsDigit(s.front())) {
      return Error("expected a duration such as \"500ms\", \"30s\", \"5m\", \"2h\" or \"30d\", got " +
                   quoted);
    }
    int64_t n = 0;
    if (!ReadNumber(s, &n)) return Error("duration " + quoted + " is too large");
    if (!s.empty() && s.front() == '.') {
      return Error("duration " + quoted + " has a fraction; write \"1500ms\" instead of \"1.5s\"");
    }
    size_t letters = 0;
    while (letters < s.size() && std::isalpha(static_cast<unsigned char>(s[letters]))) ++letters;
    const std::string_view unit_name = s.substr(0, letters);
    const Unit* unit = nullptr;
    for (const Unit& u : kDurationUnits) {
      if (unit_name == u.name) unit = &u;
    }
    if (unit == nullptr) {
      if (unit_name.empty() && s.empty()) {
        return Error("duration " + quoted + " has no unit; use ms, s, m, h or d (e.g. \"" +
                     std::string(text) + "s\")");
      }
      return Error("duration " + quoted + " has an unknown unit; use ms, s, m, h or d");
    }
    const int rank = Rank(unit->name);
    if (rank >= last_rank) {
      return Error("duration " + quoted + " repeats a unit or lists units out of order (write e.g. \"1h30m\")");
    }
    last_rank = rank;
    if (n > (std::numeric_limits<int64_t>::max() - total) / unit->ms) {
      return Error("duration " + quoted + " is too large");
    }
    total += n * unit->ms;
    s.remove_prefix(unit->name.size());
  }
  return Duration(total);
}

std::string FormatDuration(Duration d) {
  int64_t ms = d.count();
  if (ms == 0) return "0s";
  std::string out;
  if (ms < 0) {
    out = "-";
    ms = -ms;
  }
  for (const auto& [name, unit_ms] : {std::pair<const char*, int64_t>{"d", 86'400'000},
                                      {"h", 3'600'000},
                                      {"m", 60'000},
                                      {"s", 1'000},
                                      {"ms", 1}}) {
    if (ms >= unit_ms) {
      out += std::to_string(ms / unit_ms) + name;
      ms %= unit_ms;
    }
  }
  return out;
}

Result<int64_t> ParseSize(std::string_view text) {
  const std::string quoted = "\"" + std::string(text) + "\"";
  std::string_view s = text;
  int64_t n = 0;
  if (s.empty() || !IsDigit(s.front())) {
    return Error("expected a size such as \"512B\", \"64KiB\" or \"1MiB\", got " + quoted);
  }
  if (!ReadNumber(s, &n)) return Error("size " + quoted + " is too large");
  int64_t mult = 0;
  if (s == "B") {
    mult = 1;
  } else if (s == "KiB") {
    mult = int64_t{1} << 10;
  } else if (s == "MiB") {
    mult = int64_t{1} << 20;
  } else if (s == "GiB") {
    mult = int64_t{1} << 30;
  } else if (s == "KB" || s == "kB" || s == "MB" || s == "GB" || s == "K" || s == "M" ||
             s == "G" || s == "k") {
    return Error("size " + quoted + " uses a decimal or ambiguous unit; sizes are binary: B, KiB, MiB, GiB");
  } else if (s.empty()) {
    return Error("size " + quoted + " has no unit; use B, KiB, MiB or GiB");
  } else {
    return Error("size " + quoted + " has an unknown unit; use B, KiB, MiB or GiB");
  }
  if (n > std::numeric_limits<int64_t>::max() / mult) return Error("size " + quoted + " is too large");
  return n * mult;
}

std::string FormatSize(int64_t bytes) {
  for (const auto& [name, shift] :
       {std::pair<const char*, int>{"GiB", 30}, {"MiB", 20}, {"KiB", 10}}) {
    const int64_t unit = int64_t{1} << shift;
    if (bytes != 0 && bytes % unit == 0) return std::to_string(bytes / unit) + name;
  }
  return std::to_string(bytes) + "B";
}

}  // namespace gatewatch
