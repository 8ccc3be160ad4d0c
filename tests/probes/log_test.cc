#include "probes/log.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace gatewatch::log {
namespace {

struct Capture {
  std::vector<std::string> lines;
  Capture() {
    SetSinkForTest([this](std::string_view l) { lines.emplace_back(l); });
  }
  ~Capture() {
    SetSinkForTest(nullptr);
    SetMinLevel(Level::kInfo);
  }
};

TEST_CASE("Log: logfmt with quoting and escaping") {
  Capture cap;
  Info("probe failed").Kv("monitor", "shop").Kv("detail", "said \"no\"\nthen=left").Kv("n", 3);
  REQUIRE(cap.lines.size() == 1);
  const std::string& line = cap.lines[0];
  CHECK(line.rfind("ts=", 0) == 0);
  CHECK(line.find(" level=info msg=\"probe failed\" monitor=shop") != std::string::npos);
  CHECK(line.find(" detail=\"said \\\"no\\\"\\nthen=left\"") != std::string::npos);
  CHECK(line.find(" n=3") != std::string::npos);
}

TEST_CASE("Log: lines below the minimum level are dropped") {
  Capture cap;
  SetMinLevel(Level::kWarn);
  Info("quiet");
  Warn("loud").Kv("empty", "");
  REQUIRE(cap.lines.size() == 1);
  CHECK(cap.lines[0].find("msg=loud empty=\"\"") != std::string::npos);
}

TEST_CASE("Log: level names parse") {
  Level l;
  CHECK(ParseLevel("debug", &l));
  CHECK(l == Level::kDebug);
  CHECK_FALSE(ParseLevel("verbose", &l));
}

}  // namespace
}  // namespace gatewatch::log
