#include "probes/duration.h"

#include <doctest/doctest.h>

namespace gatewatch {
namespace {

using namespace std::chrono_literals;

TEST_CASE("Duration: parses every unit and compound forms") {
  const std::pair<const char*, Duration> cases[] = {
      {"500ms", 500ms}, {"30s", 30s},         {"5m", 5min},           {"2h", 2h},
      {"30d", 24h * 30}, {"1h30m", 90min},    {"1m30s500ms", 90'500ms}, {"0s", 0s},
  };
  for (const auto& [text, expected] : cases) {
    CAPTURE(text);
    auto d = ParseDuration(text);
    REQUIRE(d.has_value());
    CHECK(*d == expected);
  }
}

TEST_CASE("Duration: rejects sloppy input with a reason") {
  const std::pair<const char*, const char*> cases[] = {
      {"", "empty"},
      {"30", "no unit"},
      {"1.5s", "fraction"},
      {"-5s", "expected a duration"},
      {"5 s", "unknown unit"},
      {"5sec", "unknown unit"},
      {"30m1h", "out of order"},
      {"1s1s", "out of order"},
      {"99999999999999999999s", "too large"},
      {"9223372036854775807d", "too large"},
  };
  for (const auto& [text, why] : cases) {
    CAPTURE(text);
    auto d = ParseDuration(text);
    REQUIRE_FALSE(d.has_value());
    CHECK(d.error().find(why) != std::string::npos);
  }
}

TEST_CASE("Duration: formats the shortest exact spelling and round-trips") {
  CHECK(FormatDuration(0s) == "0s");
  CHECK(FormatDuration(90s) == "1m30s");
  CHECK(FormatDuration(1500ms) == "1s500ms");
  CHECK(FormatDuration(24h * 400) == "400d");
  for (Duration d : {Duration(1), Duration(999), Duration(61'001), Duration(86'400'000 + 1)}) {
    auto back = ParseDuration(FormatDuration(d));
    REQUIRE(back.has_value());
    CHECK(*back == d);
  }
}

TEST_CASE("Size: binary units only, strict") {
  CHECK(*ParseSize("512B") == 512);
  CHECK(*ParseSize("64KiB") == 65536);
  CHECK(*ParseSize("1MiB") == 1 << 20);
  CHECK(*ParseSize("2GiB") == int64_t{2} << 30);
  auto kb = ParseSize("64KB");
  REQUIRE_FALSE(kb.has_value());
  CHECK(kb.error().find("binary") != std::string::npos);
  CHECK_FALSE(ParseSize("64").has_value());
  CHECK_FALSE(ParseSize("KiB").has_value());
  CHECK_FALSE(ParseSize("1.5MiB").has_value());
  CHECK_FALSE(ParseSize("99999999999999GiB").has_value());
  CHECK(FormatSize(65536) == "64KiB");
  CHECK(FormatSize(1000) == "1000B");
  CHECK(FormatSize(3 << 20) == "3MiB");
}

}  // namespace
}  // namespace gatewatch
