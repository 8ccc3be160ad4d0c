#include "alerting/glob.h"

#include <doctest/doctest.h>

namespace gatewatch::alerting {
namespace {

TEST_CASE("Glob: stars, questions and sets") {
  struct Row {
    const char* pattern;
    const char* text;
    bool match;
  };
  const Row rows[] = {
      {"shop*", "shop", true},          {"shop*", "shop-api-1", true},
      {"shop*", "webshop", false},      {"*api*", "shop-api-1", true},
      {"shop-api-?", "shop-api-1", true}, {"shop-api-?", "shop-api-10", false},
      {"shop-api-[12]", "shop-api-2", true}, {"shop-api-[12]", "shop-api-3", false},
      {"api-[a-c]", "api-b", true},     {"api-[!a-c]", "api-b", false},
      {"api-[!a-c]", "api-d", true},    {"exact", "exact", true},
      {"exact", "exact2", false},       {"*", "", true},
      {"a*b*c", "aXbYc", true},         {"a*b*c", "aXbY", false},
      {"[unclosed", "[unclosed", true}, {"**x", "yyx", true},
      {"shop-\\*", "shop-*", true},   {"shop-\\*", "shop-api", false},
      {"api-[^a-c]", "api-d", true},
  };
  for (const Row& r : rows) {
    CAPTURE(r.pattern);
    CAPTURE(r.text);
    CHECK(GlobMatch(r.pattern, r.text) == r.match);
  }
  CHECK(HasGlobChars("shop*"));
  CHECK_FALSE(HasGlobChars("shop"));
}

}  // namespace
}  // namespace gatewatch::alerting
