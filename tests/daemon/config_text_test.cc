#include "daemon/config_text.h"

#include <doctest/doctest.h>

namespace gatewatch::daemon {
namespace {

EnvLookup OneVar() {
  return [](const std::string& n) -> std::optional<std::string> {
    if (n == "A") return std::string("alpha");
    if (n == "EMPTY") return std::string();
    return std::nullopt;
  };
}

TEST_CASE("SubstituteEnv: replaces, escapes and names what is missing") {
  CHECK(*SubstituteEnv("x${A}y${A}", OneVar()) == "xalphayalpha");
  CHECK(*SubstituteEnv("[${EMPTY}]", OneVar()) == "[]");
  CHECK(*SubstituteEnv("$${A} costs $5", OneVar()) == "${A} costs $5");
  CHECK(SubstituteEnv("${B}", OneVar()).error() == "environment variable B is not set");
  CHECK(SubstituteEnv("${A", OneVar()).error().find("unterminated") != std::string::npos);
  CHECK(SubstituteEnv("${1X}", OneVar()).error().find("not a valid") != std::string::npos);
  CHECK(SubstituteEnv("${}", OneVar()).error().find("not a valid") != std::string::npos);
}

TEST_CASE("Suggest: near misses only") {
  const std::vector<std::string> keys = {"interval", "timeout", "retries", "retry_delay"};
  CHECK(Suggest("intervall", keys) == "interval");
  CHECK(Suggest("timout", keys) == "timeout");
  CHECK(Suggest("retires", keys) == "retries");  // transposition is one edit
  CHECK_FALSE(Suggest("colour", keys).has_value());
  CHECK(EditDistance("kitten", "sitting") == 3);
}

}  // namespace
}  // namespace gatewatch::daemon
