#include "probes/result.h"

#include <doctest/doctest.h>

#include <memory>

namespace gatewatch {
namespace {

Result<int> Half(int v) {
  if (v % 2 != 0) return Error("odd");
  return v / 2;
}

TEST_CASE("Result: value, error and void") {
  auto ok = Half(4);
  REQUIRE(ok.has_value());
  CHECK(*ok == 2);
  auto bad = Half(3);
  REQUIRE_FALSE(bad);
  CHECK(bad.error() == "odd");

  Result<void> fine;
  CHECK(fine.has_value());
  Result<void> failed = Error("nope");
  REQUIRE_FALSE(failed);
  CHECK(failed.error() == "nope");

  // Same value and error type, and move-only values.
  Result<std::string> s = std::string("text");
  CHECK(s.value() == "text");
  Result<std::unique_ptr<int>> p = std::make_unique<int>(7);
  CHECK(**p == 7);
}

}  // namespace
}  // namespace gatewatch
