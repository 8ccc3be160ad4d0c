// A table of bad configs. Each row is a whole TOML document and the exact errors it
// must produce: line, column, key path and a fragment of the message. Positions were
// worked out by hand from the documents (columns are 1-based, at the value for value
// errors, at the key for unknown keys, at the section header for missing keys).

#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "daemon/config.h"

namespace gatewatch::daemon {
namespace {

struct Expected {
  int line;
  int column;
  std::string path;
  std::string fragment;
};

struct Case {
  const char* name;
  std::string toml;
  std::vector<Expected> errors;
};

// A monitor to refer to, appended where a case needs one.
const std::string kShop = "\n[[monitors]]\nname = \"shop\"\nurl = \"http://127.0.0.1:8080/\"\n";

EnvLookup TestEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    static const std::map<std::string, std::string> env = {
        {"GW_SHORT_TOKEN", "short"},
        {"GW_GOOD_TOKEN", "0123456789abcdef0123"},
    };
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
}

const std::vector<Case>& Cases() {
  static const std::vector<Case> cases = {
      {"typo of a server key", "[server]\nlistn = \"0.0.0.0:9464\"\n",
       {{2, 1, "server.listn", "unknown key; did you mean \"listen\"?"}}},
      {"wrong type for listen", "[server]\nlisten = 9464\n",
       {{2, 10, "server.listen", "expected a string, got an integer (9464)"}}},
      {"listen without port", "[server]\nlisten = \"0.0.0.0\"\n",
       {{2, 10, "server.listen", "has no port"}}},
      {"duration with a word unit", "[defaults]\ninterval = \"30 seconds\"\n",
       {{2, 12, "defaults.interval", "unknown unit"}}},
      {"duration as a bare number", "[defaults]\ntimeout = 10\n",
       {{2, 11, "defaults.timeout", "a bare number has no unit"}}},
      {"duration below its minimum", "[defaults]\ninterval = \"500ms\"\n",
       {{2, 12, "defaults.interval", "must be from 1s to 1d, got \"500ms\""}}},
      {"timeout longer than interval", "[defaults]\ninterval = \"5s\"\ntimeout = \"10s\"\n",
       {{3, 11, "defaults.timeout", "must not exceed interval (5s)"}}},
      {"phase timeout longer than timeout",
       "[defaults]\ntimeout = \"2s\"\nconnect_timeout = \"3s\"\n",
       {{3, 19, "defaults.connect_timeout", "must not exceed timeout (2s)"}}},
      {"retries out of range", "[defaults]\nretries = 50\n",
       {{2, 11, "defaults.retries", "must be from 0 to 10, got 50"}}},
      {"decimal size unit", "[defaults]\nmax_body = \"64KB\"\n",
       {{2, 12, "defaults.max_body", "sizes are binary"}}},
      {"boolean as a string", "[defaults]\nfollow_redirects = \"yes\"\n",
       {{2, 20, "defaults.follow_redirects", "expected true or false, got a string (\"yes\")"}}},
      {"bad expect_status entries", "[defaults]\nexpect_status = [200, \"2xy\", 700]\n",
       {{2, 23, "defaults.expect_status[1]", "got \"2xy\""},
        {2, 30, "defaults.expect_status[2]", "from 100 to 599, got 700"}}},
      {"unknown method", "[defaults]\nmethod = \"FETCH\"\n",
       {{2, 10, "defaults.method", "expected one of GET, HEAD"}}},
      {"unknown section with a near miss", "[monitor]\nname = \"x\"\n",
       {{1, 2, "monitor", "unknown key; did you mean \"monitors\"?"}}},
      {"monitor without url", "[[monitors]]\nname = \"shop\"\n",
       {{1, 1, "monitors[0].url", "required key is missing"}}},
      {"monitor url with another scheme", "[[monitors]]\nname = \"shop\"\nurl = \"ftp://x/\"\n",
       {{3, 7, "monitors[0].url", "scheme \"ftp\""}}},
      {"monitor name with a space",
       "[[monitors]]\nname = \"shop api\"\nurl = \"http://127.0.0.1:1/\"\n",
       {{2, 8, "monitors[0].name", "invalid name \"shop api\""}}},
      {"duplicate monitor names", kShop + kShop,
       {{7, 8, "monitors[1].name", "duplicate monitor name \"shop\" (first defined at line 2)"}}},
      {"unknown upstream with a suggestion",
       "[[monitors]]\nname = \"shop\"\nurl = \"http://127.0.0.1:1/\"\nupstreams = [\"shop-ap1\"]\n"
       "\n[[monitors]]\nname = \"shop-api\"\nurl = \"http://127.0.0.1:2/\"\n",
       {{4, 14, "monitors[0].upstreams[0]", "unknown monitor \"shop-ap1\"; did you mean \"shop-api\"?"}}},
      {"monitor is its own upstream",
       "[[monitors]]\nname = \"shop\"\nurl = \"http://127.0.0.1:1/\"\nupstreams = [\"shop\"]\n",
       {{4, 13, "monitors[0].upstreams", "cannot be its own upstream"}}},
      {"unknown region", "[[monitors]]\nname = \"shop\"\nurl = \"http://127.0.0.1:1/\"\nregions = [\"eu\"]\n",
       {{4, 12, "monitors[0].regions[0]", "unknown region \"eu\""}}},
      {"dns_servers together with proxy",
       "[regions.eu]\nproxy = \"http://127.0.0.1:3128\"\ndns_servers = [\"127.0.0.53\"]\n",
       {{3, 15, "regions.eu.dns_servers", "cannot be combined with proxy"}}},
      {"resolver given by name", "[regions.eu]\ndns_servers = [\"resolver.local\"]\n",
       {{2, 16, "regions.eu.dns_servers[0]", "expected a resolver address"}}},
      {"proxy without a port", "[regions.eu]\nproxy = \"socks5://127.0.0.1\"\n",
       {{2, 9, "regions.eu.proxy", "expected an HTTP CONNECT proxy URL"}}},
      {"unset environment variable", "[server]\napi_token = \"${GW_TEST_UNSET_TOKEN}\"\n",
       {{2, 13, "server.api_token", "environment variable GW_TEST_UNSET_TOKEN is not set"}}},
      {"weak api token from the environment", "[server]\napi_token = \"${GW_SHORT_TOKEN}\"\n",
       {{2, 13, "server.api_token", "at least 16 characters"}}},
      {"unterminated env reference", "[server]\nregion = \"${REGION\"\n",
       {{2, 10, "server.region", "unterminated \"${\""}}},
      {"shard out of range", "[server]\nshard = \"4/3\"\n",
       {{2, 9, "server.shard", "expected \"i/N\""}}},
      {"listener bounds out of range", "[server]\nmax_connections = 2\nmax_connections_per_peer = 0\nrequest_timeout = \"10m\"\n",
       {{2, 19, "server.max_connections", "16"},
        {3, 28, "server.max_connections_per_peer", "1"},
        {4, 19, "server.request_timeout", "must be from 1s to 5m"}}},
      {"tls cert without key", "[server]\ntls_cert = \"/etc/gw/tls.crt\"\n",
       {{2, 12, "server.tls_cert", "tls_key is missing"}}},
      {"failure retention shorter than raw",
       "[storage]\nraw_retention = \"48h\"\nfailure_retention = \"24h\"\n",
       {{3, 21, "storage.failure_retention", "must be at least raw_retention (2d)"}}},
      {"engine concurrency of zero", "[engine]\nmax_in_flight = 0\n",
       {{2, 17, "engine.max_in_flight", "must be from 1 to 65536, got 0"}}},
      {"alert glob that matches nothing",
       kShop + "\n[[alerts]]\nname = \"a\"\nmonitors = [\"web*\"]\nkind = \"down\"\n",
       {{8, 13, "alerts[0].monitors[0]", "\"web*\" matches no monitor"}}},
      {"alert name typo of a monitor",
       kShop + "\n[[alerts]]\nname = \"a\"\nmonitors = [\"shpo\"]\nkind = \"down\"\n",
       {{8, 13, "alerts[0].monitors[0]", "matches no monitor; did you mean \"shop\"?"}}},
      {"codes and count together",
       kShop + "\n[[alerts]]\nname = \"a\"\nmonitors = [\"shop\"]\nkind = \"status_rate\"\n"
               "codes = [502]\ncount = \"gateway_error\"\nabove = 0.05\n",
       {{11, 9, "alerts[0].count", "mutually exclusive"}}},
      {"unknown notifier with a suggestion",
       kShop + "\n[[alerts]]\nname = \"a\"\nmonitors = [\"shop\"]\nkind = \"down\"\n"
               "notify = [\"ops-chta\"]\n\n[[notifiers]]\nname = \"ops-chat\"\ntype = \"console\"\n",
       {{10, 11, "alerts[0].notify[0]", "unknown notifier \"ops-chta\"; did you mean \"ops-chat\"?"}}},
      {"key for another alert kind",
       kShop + "\n[[alerts]]\nname = \"a\"\nmonitors = [\"shop\"]\nkind = \"down\"\nabove = 0.5\n",
       {{10, 9, "alerts[0].above", "applies to kind status_rate and latency only; this alert is kind \"down\""}}},
      {"alert kind misspelt",
       kShop + "\n[[alerts]]\nname = \"a\"\nmonitors = [\"shop\"]\nkind = \"status-rate\"\n",
       {{9, 8, "alerts[0].kind", "did you mean \"status_rate\"?"}}},
      {"status_rate without threshold",
       kShop + "\n[[alerts]]\nname = \"a\"\nmonitors = [\"shop\"]\nkind = \"status_rate\"\n",
       {{6, 1, "alerts[0].above", "required key is missing"}}},
      {"below above above",
       kShop + "\n[[alerts]]\nname = \"a\"\nmonitors = [\"shop\"]\nkind = \"status_rate\"\n"
               "above = 0.05\nbelow = 0.2\n",
       {{11, 9, "alerts[0].below", "must not exceed above"}}},
      {"ratio given as a percentage",
       kShop + "\n[[alerts]]\nname = \"a\"\nmonitors = [\"shop\"]\nkind = \"status_rate\"\n"
               "above = 5\n",
       {{10, 9, "alerts[0].above", "must be from 0 to 1, got 5"}}},
      {"min_regions above the monitor's regions",
       kShop + "\n[[alerts]]\nname = \"a\"\nmonitors = [\"shop\"]\nkind = \"down\"\nmin_regions = 2\n",
       {{10, 15, "alerts[0].min_regions", "probed from 1 region(s)"}}},
      {"latency phase unknown",
       kShop + "\n[[alerts]]\nname = \"a\"\nmonitors = [\"shop\"]\nkind = \"latency\"\n"
               "phase = \"ttfb\"\nabove = \"800ms\"\n",
       {{10, 9, "alerts[0].phase", "expected one of resolve, connect"}}},
      {"duplicate alert names",
       kShop + "\n[[alerts]]\nname = \"a\"\nmonitors = [\"shop\"]\nkind = \"down\"\n"
               "\n[[alerts]]\nname = \"a\"\nmonitors = [\"shop\"]\nkind = \"down\"\n",
       {{12, 8, "alerts[1].name", "duplicate alert name \"a\" (first defined at line 6)"}}},
      {"notifier type misspelt", "[[notifiers]]\nname = \"chat\"\ntype = \"slak\"\nurl = \"https://x/\"\n",
       {{3, 8, "notifiers[0].type", "did you mean \"slack\"?"}}},
      {"notifier without url", "[[notifiers]]\nname = \"chat\"\ntype = \"discord\"\n",
       {{1, 1, "notifiers[0].url", "a discord notifier needs a url"}}},
      {"notifier url not shown", "[[notifiers]]\nname = \"chat\"\ntype = \"slack\"\nurl = \"hooks/T0KEN\"\n",
       {{4, 7, "notifiers[0].url", "the value is not shown"}}},
      {"secret on a slack notifier",
       "[[notifiers]]\nname = \"chat\"\ntype = \"slack\"\nurl = \"https://x/\"\nsecret = \"s\"\n",
       {{5, 10, "notifiers[0].secret", "only used by type = \"webhook\""}}},
      {"repost on a slack notifier",
       "[[notifiers]]\nname = \"chat\"\ntype = \"slack\"\nurl = \"https://x/\"\nrepost = \"30s\"\n",
       {{5, 10, "notifiers[0].repost", "only used by type = \"alertmanager\""}}},
      {"repost too short",
       "[[notifiers]]\nname = \"am\"\ntype = \"alertmanager\"\nurl = \"http://am:9093\"\nrepost = \"10ms\"\n",
       {{5, 10, "notifiers[0].repost", ""}}},
      {"silence instant without offset",
       kShop + "\n[[silences]]\nmonitors = [\"shop\"]\nstart = 2026-12-05T22:00:00\n"
               "end = 2026-12-06T02:00:00Z\n",
       {{8, 9, "silences[0].start", "has no offset"}}},
      {"silence end before start",
       kShop + "\n[[silences]]\nmonitors = [\"shop\"]\nstart = 2026-12-06T22:00:00Z\n"
               "end = 2026-12-06T02:00:00Z\n",
       {{9, 7, "silences[0].end", "end must be after start"}}},
      {"silence with unknown time zone and day",
       kShop + "\n[[silences]]\nmonitors = [\"shop\"]\ndays = [\"saturday\"]\nfrom = 02:00:00\n"
               "to = 04:00:00\ntimezone = \"Europe/Atlantis\"\n",
       {{8, 9, "silences[0].days[0]", "did you mean \"sat\"?"},
        {11, 12, "silences[0].timezone", "unknown time zone \"Europe/Atlantis\""}}},
      {"silence time as a string",
       kShop + "\n[[silences]]\nmonitors = [\"shop\"]\ndays = [\"sun\"]\nfrom = \"02:00\"\n"
               "to = 04:00:00\n",
       {{9, 8, "silences[0].from", "expected a TOML local time such as 02:00:00 (no quotes)"}}},
      {"invalid header name",
       "[[monitors]]\nname = \"shop\"\nurl = \"http://127.0.0.1:1/\"\nheaders = { \"X Probe\" = \"1\" }\n",
       {{4, 25, "monitors[0].headers.X Probe", "invalid header name"}}},
      {"monitors written as one table", "[monitors]\nname = \"shop\"\n",
       {{1, 1, "monitors", "expected an array of tables ([[monitors]] sections), got a table"}}},
      {"TOML syntax error stops at the first", "[server]\nlisten = \"0.0.0.0:9464\nregion = 3\n",
       {{2, 23, "", "TOML syntax error"}}},
  };
  return cases;
}

TEST_CASE("Config errors: each bad config reports exactly its errors with file:line:col") {
  const auto& cases = Cases();
  CHECK(cases.size() >= 25);
  for (const Case& c : cases) {
    CAPTURE(c.name);
    auto result = ParseConfig(c.toml, "bad.toml", TestEnv());
    REQUIRE_FALSE(result.has_value());
    const ConfigErrors& got = result.error();
    std::string all;
    for (const auto& e : got) all += e.ToString() + "\n";
    CAPTURE(all);
    REQUIRE(got.size() == c.errors.size());
    for (size_t i = 0; i < got.size(); ++i) {
      CHECK(got[i].file == "bad.toml");
      CHECK(got[i].line == c.errors[i].line);
      CHECK(got[i].column == c.errors[i].column);
      CHECK(got[i].path == c.errors[i].path);
      CHECK(got[i].message.find(c.errors[i].fragment) != std::string::npos);
    }
  }
}

TEST_CASE("Config errors: all validation errors are reported together, in file order") {
  const std::string toml =
      "[server]\n"
      "listen = \"nowhere\"\n"            // 2
      "\n[defaults]\n"
      "intervall = \"30s\"\n"             // 5
      "\n[[monitors]]\n"
      "name = \"a\"\n"
      "url = \"http://127.0.0.1:1/\"\n"
      "retries = -1\n"                    // 10
      "\n[[notifiers]]\n"
      "name = \"n\"\n"
      "type = \"console\"\n"
      "url = \"http://127.0.0.1:2/\"\n";  // 15
  auto result = ParseConfig(toml, "multi.toml", TestEnv());
  REQUIRE_FALSE(result.has_value());
  const auto& errors = result.error();
  REQUIRE(errors.size() == 4);
  CHECK(errors[0].line == 2);
  CHECK(errors[1].line == 5);
  CHECK(errors[2].line == 10);
  CHECK(errors[3].line == 15);
  CHECK(errors[3].message.find("takes no url") != std::string::npos);
  CHECK(errors[1].ToString() ==
        "multi.toml:5:1: defaults.intervall: unknown key; did you mean \"interval\"?");
}

TEST_CASE("Config errors: secrets never appear in messages") {
  const std::string toml =
      "[server]\napi_token = 1234567890123456789\n"
      "[[notifiers]]\nname = \"chat\"\ntype = \"slack\"\nurl = \"not-a-url-SECRETVALUE\"\n";
  auto result = ParseConfig(toml, "s.toml", TestEnv());
  REQUIRE_FALSE(result.has_value());
  REQUIRE(result.error().size() == 2);
  for (const auto& e : result.error()) {
    CHECK(e.ToString().find("SECRETVALUE") == std::string::npos);
    CHECK(e.ToString().find("1234567890123456789") == std::string::npos);
  }
}

TEST_CASE("Config errors: a URL's password is redacted in the error, in validate and on reload") {
  const std::string toml =
      "[[monitors]]\nname = \"shop\"\nurl = \"https://deploy:hunter2-SECRET@shop.internal/\"\n";
  auto result = ParseConfig(toml, "u.toml", TestEnv());
  REQUIRE_FALSE(result.has_value());
  REQUIRE(result.error().size() == 1);
  const std::string line = result.error()[0].ToString();
  INFO(line);
  CHECK(line.find("hunter2") == std::string::npos);
  CHECK(line.find("deploy") == std::string::npos);
  CHECK(line.find("\"https://***@shop.internal/\" contains user info") != std::string::npos);
}

TEST_CASE("Config errors: quoted values cannot break the line or reach the terminal") {
  // A newline, an ANSI escape, U+2028 and a byte that is not UTF-8 in a value, and a control
  // character in a quoted key.
  const std::string toml = "[[monitors]]\nname = \"bad\\nname\\u001b[31m\\u2028\"\n"
                           "url = \"http://127.0.0.1/\"\n\"ke\\u0007y\" = 1\n";
  auto result = ParseConfig(toml, "q.toml", TestEnv());
  REQUIRE_FALSE(result.has_value());
  REQUIRE(result.error().size() == 2);
  const std::string name = result.error()[0].ToString();
  CHECK(name.find("invalid name \"bad\\nname\\x1B[31m\\u2028\"") != std::string::npos);
  const std::string key = result.error()[1].ToString();
  CHECK(key.find("ke\\x07y: unknown key") != std::string::npos);
  for (const std::string& line : {name, key}) {
    INFO(line);
    for (const char c : line) CHECK((static_cast<unsigned char>(c) >= 0x20 && c != 0x7f));
    CHECK(line.find("\xe2\x80\xa8") == std::string::npos);  // U+2028 raw
  }
}

TEST_CASE("Config errors: unreadable file is one clear error") {
  auto result = LoadConfigFile("/nonexistent/gatewatch.toml");
  REQUIRE_FALSE(result.has_value());
  REQUIRE(result.error().size() == 1);
  CHECK(result.error()[0].ToString() ==
        "/nonexistent/gatewatch.toml: cannot read config file: No such file or directory");
}

}  // namespace
}  // namespace gatewatch::daemon
