#include "daemon/config.h"

#include <doctest/doctest.h>

#include <map>

#include "gatewatch_version.h"

namespace gatewatch::daemon {
namespace {

using namespace std::chrono_literals;

EnvLookup Env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

Config MustParse(const std::string& toml, const EnvLookup& env = Env({})) {
  auto result = ParseConfig(toml, "good.toml", env);
  if (!result) {
    for (const auto& e : result.error()) MESSAGE(e.ToString());
  }
  REQUIRE(result.has_value());
  return std::move(result).value();
}

TEST_CASE("Config: an empty file gives the documented defaults") {
  Config c = MustParse("");
  CHECK(c.server.listen == "0.0.0.0:9464");
  CHECK(c.server.listen_addr.port == 9464);
  CHECK(c.server.region == "local");
  CHECK(c.server.shutdown_grace == 5s);
  CHECK(c.server.max_connections == 1024);
  CHECK(c.server.max_connections_per_peer == 128);
  CHECK(c.server.request_timeout == 10s);
  CHECK(c.engine.max_in_flight == 256);
  CHECK(c.storage.path == "/var/lib/gatewatch/gatewatch.db");
  CHECK(c.storage.raw_retention == 24h);
  CHECK(c.storage.failure_retention == 24h * 30);
  CHECK(c.storage.minute_rollup_retention == 24h * 14);
  CHECK(c.storage.hour_rollup_retention == 24h * 400);
  CHECK(c.defaults.interval == 30s);
  CHECK(c.defaults.timeout == 10s);
  CHECK_FALSE(c.defaults.connect_timeout.has_value());
  CHECK(c.defaults.retries == 1);
  CHECK(c.defaults.retry_delay == 2s);
  CHECK(c.defaults.max_body == 64 * 1024);
  CHECK_FALSE(c.defaults.follow_redirects);
  CHECK_FALSE(c.defaults.tls_skip_verify);
  CHECK(c.defaults.user_agent == std::string("gatewatch/") + kVersion);
  REQUIRE(c.defaults.expect_status.size() == 1);
  CHECK(c.defaults.expect_status[0].ToString() == "2xx");
  REQUIRE(c.regions.size() == 1);
  CHECK(c.regions[0].name == "local");
  CHECK(c.monitors.empty());
}

TEST_CASE("Config: monitors inherit the defaults section and override key by key") {
  Config c = MustParse(R"(
[server]
region = "home"

[defaults]
interval = "1m"
timeout = "5s"
retries = 2
headers = { "X-Probe" = "1" }
user_agent = "probe/<version>"

[regions.eu]
proxy = "http://127.0.0.1:3128"

[regions.dns]
dns_servers = ["127.0.0.53", "[::1]:5353"]
source_address = "127.0.0.2"

[[monitors]]
name = "shop"
url = "https://shop.example.com/healthz"
regions = ["home", "eu"]
upstreams = ["api"]
expect_status = ["2xx", 301]
body_contains = "ok"
header_contains = { "Content-Type" = "json" }
timeout = "3s"
connect_timeout = "1s"
follow_redirects = true

[[monitors]]
name = "api"
url = "http://127.0.0.1:8080/"
method = "post"
body = "{}"
max_body = "1MiB"
)");
  REQUIRE(c.regions.size() == 3);
  CHECK(c.regions[0].name == "home");
  CHECK(c.regions[1].name == "eu");  // file order, not key order
  CHECK(c.regions[1].proxy == "http://127.0.0.1:3128");
  CHECK(c.regions[2].name == "dns");
  CHECK(c.regions[2].dns_servers == std::vector<std::string>{"127.0.0.53:53", "[::1]:5353"});
  CHECK(c.regions[2].source_address == "127.0.0.2");

  REQUIRE(c.monitors.size() == 2);
  const auto& shop = c.monitors[0];
  CHECK(shop.name == "shop");
  CHECK(shop.regions == std::vector<std::string>{"home", "eu"});
  CHECK(shop.upstreams == std::vector<std::string>{"api"});
  CHECK(shop.body_contains == "ok");
  REQUIRE(shop.header_contains.size() == 1);
  CHECK(shop.header_contains[0].first == "content-type");
  CHECK(shop.probe.interval == 1min);  // inherited
  CHECK(shop.probe.timeout == 3s);     // overridden
  CHECK(shop.probe.connect_timeout == 1s);
  CHECK(shop.probe.retries == 2);  // inherited
  CHECK(shop.probe.follow_redirects);
  CHECK(shop.probe.user_agent == std::string("probe/") + kVersion);
  REQUIRE(shop.probe.expect_status.size() == 2);
  CHECK(shop.probe.expect_status[0].Matches(204));
  CHECK(shop.probe.expect_status[1].Matches(301));
  CHECK_FALSE(shop.probe.expect_status[1].Matches(302));
  REQUIRE(shop.probe.headers.size() == 1);
  CHECK(shop.probe.headers[0] == std::pair<std::string, std::string>{"X-Probe", "1"});

  const auto& api = c.monitors[1];
  CHECK(api.regions == std::vector<std::string>{"home", "eu", "dns"});  // default: all
  CHECK(api.probe.method == "POST");
  CHECK(api.probe.body == "{}");
  CHECK(api.probe.max_body == 1 << 20);
  CHECK(api.probe.timeout == 5s);
  CHECK_FALSE(api.probe.follow_redirects);
  CHECK(c.ProbeSlots() == 5);
}

TEST_CASE("Config: alerts, notifiers and silences round-trip") {
  Config c = MustParse(R"(
[[monitors]]
name = "shop"
url = "http://127.0.0.1:1/"
[[monitors]]
name = "shop-api-1"
url = "http://127.0.0.1:2/"
[[monitors]]
name = "other"
url = "http://127.0.0.1:3/"

[[alerts]]
name = "shop-502"
monitors = ["shop*"]
kind = "status_rate"
codes = [502, 504]
above = 0.05
window = "5m"
min_samples = 10
for = "1m"
below = 0.01
resolve_for = "2m"
repeat = "1h"
severity = "critical"
notify = ["ops", "hook"]

[[alerts]]
name = "gw"
monitors = ["shop"]
kind = "status_rate"
count = "gateway_error"
above = 0.2

[[alerts]]
name = "slow"
monitors = ["shop"]
kind = "latency"
phase = "total"
percentile = 99.5
above = "800ms"

[[alerts]]
name = "down"
monitors = ["other", "shop-api-1"]
kind = "down"
after = 5

[[alerts]]
name = "cert"
monitors = ["*"]
kind = "cert_expiry"
within = "7d"

[[notifiers]]
name = "ops"
type = "slack"
url = "${SLACK_URL}"
[[notifiers]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:9000/hook"
secret = "${HOOK_SECRET}"
min_interval = "250ms"
max_age = "1h"
timeout = "3s"

[[silences]]
name = "weekend"
comment = "db maintenance"
monitors = ["shop-api-*"]
days = ["sat", "SUN"]
from = 02:00:00
to = 04:30:00
timezone = "Europe/Berlin"

[[silences]]
monitors = ["shop"]
start = 2026-12-05T22:00:00+01:00
end = 2026-12-06T02:00:00Z
)",
                       Env({{"SLACK_URL", "https://hooks.slack.com/services/T/B/x"},
                            {"HOOK_SECRET", "s3cret"}}));
  REQUIRE(c.alerts.size() == 5);
  const auto& a = c.alerts[0];
  CHECK(a.monitors == std::vector<std::string>{"shop", "shop-api-1"});
  CHECK(a.kind == alerting::AlertKind::kStatusRate);
  CHECK(a.codes == std::vector<int>{502, 504});
  CHECK_FALSE(a.count_gateway_error);
  CHECK(a.above == doctest::Approx(0.05));
  CHECK(a.below == doctest::Approx(0.01));
  CHECK(a.window == 5min);
  CHECK(a.min_samples == 10);
  CHECK(a.pending_for == 1min);
  CHECK(a.resolve_for == 2min);
  CHECK(a.repeat == 1h);
  CHECK(a.severity == "critical");
  CHECK(a.notify == std::vector<std::string>{"ops", "hook"});

  CHECK(c.alerts[1].count_gateway_error);
  CHECK(c.alerts[1].below == doctest::Approx(0.1));  // default: above / 2
  CHECK(c.alerts[2].phase == "total");
  CHECK(c.alerts[2].percentile == doctest::Approx(99.5));
  CHECK(c.alerts[2].latency_above == 800ms);
  CHECK(c.alerts[2].latency_below == 800ms);
  CHECK(c.alerts[3].after == 5);
  CHECK(c.alerts[3].monitors == std::vector<std::string>{"other", "shop-api-1"});
  CHECK(c.alerts[4].monitors.size() == 3);
  CHECK(c.alerts[4].within == 24h * 7);

  REQUIRE(c.notifiers.size() == 2);
  CHECK(c.notifiers[0].url == "https://hooks.slack.com/services/T/B/x");
  CHECK(c.notifiers[0].EffectiveMinInterval() == 1s);
  CHECK(c.notifiers[1].secret == "s3cret");
  CHECK(c.notifiers[1].EffectiveMinInterval() == 250ms);
  CHECK(c.notifiers[1].max_age == 1h);
  CHECK(c.notifiers[1].timeout == 3s);

  REQUIRE(c.silences.size() == 2);
  const auto& w = c.silences[0];
  CHECK(w.name == "weekend");
  CHECK(w.monitors == std::vector<std::string>{"shop-api-1"});
  CHECK(w.days == 0b1100000);
  CHECK(w.from == 2h);
  CHECK(w.to == 4h + 30min);
  CHECK(w.timezone == "Europe/Berlin");
  const auto& o = c.silences[1];
  CHECK(o.name == "silences[1]");
  using namespace std::chrono;
  CHECK(o.start == sys_days{2026y / December / 5} + 21h);  // +01:00 offset applied
  CHECK(o.end == sys_days{2026y / December / 6} + 2h);
}

TEST_CASE("Config: ${ENV} substitution anywhere in a string, $${ escapes it") {
  Config c = MustParse(R"(
[server]
region = "${REGION}"
[[monitors]]
name = "m"
url = "http://${HOST}:8080/${PATH_PART}?q=$${literal}"
)",
                       Env({{"REGION", "eu-west"}, {"HOST", "127.0.0.1"}, {"PATH_PART", "hz"}}));
  CHECK(c.server.region == "eu-west");
  CHECK(c.regions[0].name == "eu-west");
  CHECK(c.monitors[0].url == "http://127.0.0.1:8080/hz?q=${literal}");
}

TEST_CASE("Config: FindMonitor by name, in a loaded config, its copies and after changes") {
  std::string toml;
  for (int i = 0; i < 300; ++i) {
    toml += "[[monitors]]\nname = \"m" + std::to_string(i) + "\"\nurl = \"http://127.0.0.1:9/" +
            std::to_string(i) + "\"\n";
  }
  Config cfg = MustParse(toml);
  for (int i = 0; i < 300; i += 37) {
    const probes::MonitorConfig* m = cfg.FindMonitor("m" + std::to_string(i));
    REQUIRE(m != nullptr);
    CHECK(m == &cfg.monitors[static_cast<size_t>(i)]);
  }
  CHECK(cfg.FindMonitor("m300") == nullptr);
  CHECK(cfg.FindMonitor("") == nullptr);

  const Config copy = cfg;  // positions, not pointers: the copy finds its own monitors
  REQUIRE(copy.FindMonitor("m299") != nullptr);
  CHECK(copy.FindMonitor("m299") == &copy.monitors.back());

  // Changed after loading: still found, by name, never a wrong monitor.
  cfg.monitors[5].name = "renamed";
  CHECK(cfg.FindMonitor("m5") == nullptr);
  REQUIRE(cfg.FindMonitor("renamed") != nullptr);
  CHECK(cfg.FindMonitor("renamed") == &cfg.monitors[5]);
  std::swap(cfg.monitors[1], cfg.monitors[2]);
  REQUIRE(cfg.FindMonitor("m1") != nullptr);
  CHECK(cfg.FindMonitor("m1")->name == "m1");
  cfg.monitors.push_back(cfg.monitors[0]);
  cfg.monitors.back().name = "added";
  CHECK(cfg.FindMonitor("added") == &cfg.monitors.back());

  Config by_hand;  // never indexed
  by_hand.monitors.resize(2);
  by_hand.monitors[1].name = "b";
  CHECK(by_hand.FindMonitor("b") == &by_hand.monitors[1]);
  CHECK(by_hand.FindMonitor("c") == nullptr);
}

TEST_CASE("Config: the shipped example configs validate") {
  auto env = Env({{"GATEWATCH_API_TOKEN", "0123456789abcdef0123"},
                  {"SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/x"},
                  {"HOOK_SECRET", "s"}});
  for (const char* file : {"examples/gatewatch.toml", "examples/local.toml"}) {
    CAPTURE(file);
    auto c = LoadConfigFile(std::string(GATEWATCH_SOURCE_DIR) + "/" + file, env);
    if (!c) {
      for (const auto& e : c.error()) MESSAGE(e.ToString());
    }
    CHECK(c.has_value());
  }
}

TEST_CASE("Config: the summary names counts but no secrets") {
  Config c = MustParse(R"(
[[monitors]]
name = "shop"
url = "https://shop.example.com/?token=abc"
[[notifiers]]
name = "ops"
type = "slack"
url = "https://hooks.slack.com/services/SECRET"
)");
  const std::string s = Summarize(c);
  CHECK(s.find("monitors:  1 x regions = 1 probe schedule") != std::string::npos);
  CHECK(s.find("ops: slack") != std::string::npos);
  CHECK(s.find("SECRET") == std::string::npos);
  CHECK(s.find("token=abc") == std::string::npos);
}

}  // namespace
}  // namespace gatewatch::daemon
