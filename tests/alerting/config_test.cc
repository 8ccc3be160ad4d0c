#include "alerting/config.h"

#include <doctest/doctest.h>

#include "alerting/timezone.h"

namespace gatewatch::alerting {
namespace {

TEST_CASE("AlertConfig: kind and notifier names round-trip") {
  for (size_t i = 0; i < kAlertKindNames.size(); ++i) {
    auto k = AlertKindFromString(kAlertKindNames[i]);
    REQUIRE(k.has_value());
    CHECK(ToString(*k) == kAlertKindNames[i]);
  }
  for (size_t i = 0; i < kNotifierTypeNames.size(); ++i) {
    auto t = NotifierTypeFromString(kNotifierTypeNames[i]);
    REQUIRE(t.has_value());
    CHECK(ToString(*t) == kNotifierTypeNames[i]);
  }
  CHECK_FALSE(AlertKindFromString("rate").has_value());
}

TEST_CASE("AlertConfig: hysteresis thresholds must be ordered") {
  AlertRule r;
  r.above = 0.05;
  r.below = 0.1;
  auto errors = r.Validate();
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].field == "below");
  r.below = 0.01;
  CHECK(r.Validate().empty());
}

TEST_CASE("AlertConfig: notifier url and secret rules") {
  NotifierConfig n;
  n.type = NotifierType::kSlack;
  CHECK(n.Validate().size() == 1);  // needs a url
  n.url = "https://hooks.slack.com/x";
  n.secret = "s";
  auto errors = n.Validate();
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].field == "secret");
  CHECK(n.EffectiveMinInterval() == std::chrono::seconds(1));
  n.type = NotifierType::kWebhook;
  CHECK(n.Validate().empty());
  CHECK(n.EffectiveMinInterval() == std::chrono::seconds(0));
}

TEST_CASE("AlertConfig: a silence is one-off or weekly, never both or neither") {
  SilenceConfig s;
  CHECK(s.Validate().size() == 1);
  s.start = std::chrono::sys_seconds(std::chrono::seconds(1000));
  s.end = std::chrono::sys_seconds(std::chrono::seconds(500));
  auto errors = s.Validate();
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].field == "end");
  s.days = 1;
  CHECK(s.Validate()[0].message.find("not both") != std::string::npos);
  SilenceConfig w;
  w.days = 0b1100000;
  w.from = std::chrono::hours(2);
  CHECK(w.Validate().size() == 1);  // `to` missing
  w.to = std::chrono::hours(4);
  CHECK(w.Validate().empty());
}

TEST_CASE("Timezone: IANA names from the system tzdata") {
  CHECK(IsKnownTimeZone("UTC"));
  CHECK(IsKnownTimeZone("Europe/Berlin"));
  CHECK_FALSE(IsKnownTimeZone("Europe/Atlantis"));
}

}  // namespace
}  // namespace gatewatch::alerting
