// A table of bad configs. Each row is a whole TOML document and the exact errors it
// must produce: line, column, key path and a fragment of the message. Positions were
// worked out by hand from the documents (columns are 1-based, at the value for value
// errors, at the key for unknown keys, at the section header for missing keys).

#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "daemon/config.h"
#include "tests/support/temp_dir.h"

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

// --- Bounds on the text, checked before the TOML parser sees it --------------------------

// "a.a.a...": `parts` copies of `part` joined by `dot`.
std::string DottedKey(int parts, const std::string& part = "a", const std::string& dot = ".") {
  std::string key = part;
  for (int i = 1; i < parts; ++i) key += dot + part;
  return key;
}

std::string Repeat(const std::string& s, int n) {
  std::string out;
  out.reserve(s.size() * static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

struct BoundCase {
  const char* name;
  std::string toml;
  int line;
  int column;
  std::string message;
};

void CheckOneError(const ConfigErrors& errors, const std::string& file, int line, int column,
                   const std::string& message) {
  REQUIRE(errors.size() == 1);
  const ConfigError& e = errors[0];
  CHECK(e.file == file);
  CHECK(e.line == line);
  CHECK(e.column == column);
  CHECK(e.path.empty());
  CHECK(e.message == message);
  CHECK(e.ToString() ==
        file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message);
}

void CheckBoundCases(const std::vector<BoundCase>& cases) {
  for (const BoundCase& c : cases) {
    CAPTURE(c.name);
    auto result = ParseConfig(c.toml, "bad.toml", TestEnv());
    REQUIRE_FALSE(result.has_value());
    CheckOneError(result.error(), "bad.toml", c.line, c.column, c.message);
  }
}

const std::string kKeyLimit = "a key has more than 64 dotted parts (the limit)";
const std::string kNestLimit = "arrays and inline tables are nested more than 64 deep (the limit)";
const std::string kLineLimit = "a line is longer than 64 KiB (the limit)";
const std::string kSizeLimit = "the file is larger than 4 MiB (the limit)";

TEST_CASE("Config bounds: a key of more than 64 dotted parts is refused at its 65th part") {
  const std::string huge = DottedKey(40'000);  // 80 KB on one line
  CheckBoundCases({
      // "a." is 2 columns a part: part 65 starts at column 129.
      {"key/value line", huge + " = 1\n", 1, 129, kKeyLimit},
      {"after other lines", "[server]\nregion = \"x\"\n\n" + huge + " = 1\n", 4, 129, kKeyLimit},
      {"[table] header", "[" + huge + "]\n", 1, 130, kKeyLimit},
      {"[[array]] header", "[[" + huge + "]]\n", 1, 131, kKeyLimit},
      {"blanks around the dots", "[[ " + DottedKey(100, "a", " . ") + " ]]\n", 1, 260, kKeyLimit},
      {"key in an inline table", "x = { b = 1, " + huge + " = 2 }\n", 1, 142, kKeyLimit},
      {"inline table in an array", "x = [ { " + huge + " = 2 } ]\n", 1, 137, kKeyLimit},
      // Dots and brackets inside quoted parts are part of the part.
      {"quoted parts", DottedKey(100, "\"a.b\"") + " = 1\n", 1, 385, kKeyLimit},
      {"literal parts", DottedKey(100, "'[{'") + " = 1\n", 1, 321, kKeyLimit},
      {"after a multi-line string", "body = \"\"\"\n[[x]]\n\"\"\"\n" + huge + " = 1\n", 4, 129,
       kKeyLimit},
      // Columns count characters: "é" is 2 bytes, 1 column.
      {"columns count characters", DottedKey(100, "\"\u00e9\"") + " = 1\n", 1, 257, kKeyLimit},
  });
  // 64 parts are within the bound: the parser reads the key, and the schema does not know it.
  auto at_limit = ParseConfig(DottedKey(64) + " = 1\n", "ok.toml", TestEnv());
  REQUIRE_FALSE(at_limit.has_value());
  REQUIRE(at_limit.error().size() == 1);
  CHECK(at_limit.error()[0].message.find("unknown key") != std::string::npos);
}

TEST_CASE("Config bounds: arrays and inline tables nested more than 64 deep are refused") {
  CheckBoundCases({
      // The opening bracket of level 65: column 5 + 64.
      {"100,000 arrays", "x = " + Repeat("[", 100'000) + "\n", 1, 69, kNestLimit},
      // "{a=" is 3 columns a level: level 65 opens at column 5 + 3 * 64.
      {"5,000 inline tables", "x = " + Repeat("{a=", 5'000) + "1" + Repeat("}", 5'000) + "\n", 1,
       197, kNestLimit},
      {"arrays of inline tables", "x = " + Repeat("[{a=", 40) + "\n", 1, 5 + 4 * 32, kNestLimit},
      {"one array per line", "x = [\n" + Repeat("[\n", 100) + "1" + Repeat("]", 101) + "\n", 65, 1,
       kNestLimit},
      {"after brackets in strings and comments",
       "# [[[[{{{{\nx = [ \"]]]]\", ']]]]', \"\"\"\n]]]]\"\"\", # ]]]]\n " + Repeat("[", 64) + "\n",
       4, 65, kNestLimit},
  });
  // 64 levels are within the bound: parsed, and refused by the schema only.
  auto at_limit =
      ParseConfig("x = " + Repeat("[", 64) + "1" + Repeat("]", 64) + "\n", "ok.toml", TestEnv());
  REQUIRE_FALSE(at_limit.has_value());
  REQUIRE(at_limit.error().size() == 1);
  CHECK(at_limit.error()[0].message.find("unknown key") != std::string::npos);
}

TEST_CASE("Config bounds: the deepest text within the bounds is parsed") {
  // Every level of nesting an inline table under a key of 64 parts, in a table of 64 parts:
  // about 4,200 nested tables, which toml++ handles in well under 1 MiB of stack.
  const std::string key = DottedKey(64, "k");
  const std::string toml = "[" + key + "]\n" + key + " = " + Repeat("{" + key + " = ", 64) + "1" +
                           Repeat("}", 64) + "\n";
  auto result = ParseConfig(toml, "deep.toml", TestEnv());
  REQUIRE_FALSE(result.has_value());
  REQUIRE(result.error().size() == 1);
  CHECK(result.error()[0].ToString() == "deep.toml:1:2: k: unknown key");
}

TEST_CASE("Config bounds: a line longer than 64 KiB is refused at its first byte beyond") {
  const std::string mib(1 << 20, 'a');
  CheckBoundCases({
      {"a 1 MiB string", "x = \"" + mib + "\"\n", 1, 65'537, kLineLimit},
      {"a 1 MiB comment on line 3", "[server]\n\n#" + mib + "\n", 3, 65'537, kLineLimit},
      {"the last line, without a newline", "x = 1\ny = '" + mib, 2, 65'537, kLineLimit},
      // "# " then 2-byte characters: the first byte beyond 64 KiB starts character 32,770.
      {"columns count characters", "# " + Repeat("\u00e9", 40'000) + "\n", 1, 32'770, kLineLimit},
      // Whichever bound comes first in the text is reported.
      {"a long key on a long line", DottedKey(40'000) + " = 1\n", 1, 129, kKeyLimit},
      {"a long line before a long key", "# " + mib + "\n" + DottedKey(100) + " = 1\n", 1, 65'537,
       kLineLimit},
  });
  // Exactly 64 KiB is within the bound.
  auto at_limit = ParseConfig("#" + std::string((64 << 10) - 1, 'a') + "\n", "ok.toml", TestEnv());
  CHECK(at_limit.has_value());
}

TEST_CASE("Config bounds: a file over 4 MiB is refused without being read whole") {
  testing::TempDir dir;
  // 64-byte comment lines: 4 MiB is 65,536 of them, and the first byte beyond starts line 65,537.
  const std::string line = "#" + std::string(62, 'x') + "\n";
  const std::string four_mib = Repeat(line, 65'536);
  REQUIRE(four_mib.size() == size_t{4} << 20);

  const std::string over = dir.Write("over.toml", four_mib + line);
  auto result = LoadConfigFile(over, TestEnv());
  REQUIRE_FALSE(result.has_value());
  CheckOneError(result.error(), over, 65'537, 1, kSizeLimit);

  // A file that never ends is read up to the bound, then refused.
  auto endless = LoadConfigFile("/dev/zero", TestEnv());
  REQUIRE_FALSE(endless.has_value());
  CheckOneError(endless.error(), "/dev/zero", 1, (4 << 20) + 1, kSizeLimit);

  // ParseConfig holds the same bound for text from elsewhere.
  auto text = ParseConfig(four_mib + line, "big.toml", TestEnv());
  REQUIRE_FALSE(text.has_value());
  CheckOneError(text.error(), "big.toml", 65'537, 1, kSizeLimit);

  // Exactly 4 MiB is within the bound.
  auto ok = LoadConfigFile(dir.Write("at-limit.toml", four_mib), TestEnv());
  if (!ok) {
    for (const auto& e : ok.error()) MESSAGE(e.ToString());
  }
  CHECK(ok.has_value());
}

TEST_CASE("Config bounds: dots, brackets and braces in strings and comments count for nothing") {
  const std::string dots = DottedKey(500);                                // a.a.a..., 499 dots
  const std::string brackets = Repeat("[[{{", 200) + Repeat("}}]]", 50);  // unbalanced, too
  const std::string toml =
      "# " + dots + " " + brackets + "\n" + "[[monitors]] # " + brackets + "\n" +
      "name = \"shop\"\n" + "url = \"http://127.0.0.1:1/" + dots + "\"\n" + "method = \"POST\"\n" +
      // Multi-line basic: an escaped quote, escaped triple quotes, a line-ending backslash and
      // two quotes just inside the closing three.
      "body = \"\"\"\n" + brackets + " \\\" \\\"\\\"\\\" " + dots + " \\\n   " + brackets +
      "\"\"\"\"\"\n" +
      // Multi-line literal: no escapes; two quotes just inside the closing three.
      "body_contains = '''" + brackets + " \\\n" + dots + " '''''\n" +
      "headers = { \"X-Dots\" = \"" + dots + "\", X-Brackets = '" + brackets +
      "', X-Escaped = \"\\\"" + brackets + "\\\\\" }\n" + "expect_status = [ # " + brackets + "\n" +
      "  200, # " + dots + "\n" + "  \"3xx\", # ]]]] }}}}\n" + "]\n" + "\n[[silences]]\n" +
      "monitors = [\"shop\"]\n" + "start = 2026-12-05T22:00:00.5Z\n" +
      "end = 2026-12-06T02:00:00Z\n" + "comment = '" + dots + " \\'\n";
  auto result = ParseConfig(toml, "strings.toml", TestEnv());
  if (!result) {
    for (const auto& e : result.error()) MESSAGE(e.ToString());
  }
  REQUIRE(result.has_value());
  REQUIRE(result->monitors.size() == 1);
  const auto& m = result->monitors[0];
  CHECK(m.url == "http://127.0.0.1:1/" + dots);
  CHECK(m.probe.body == brackets + " \" \"\"\" " + dots + " " + brackets + "\"\"");
  CHECK(m.body_contains == brackets + " \\\n" + dots + " ''");
  CHECK(m.probe.headers.size() == 3);
  REQUIRE(result->silences.size() == 1);
  CHECK(result->silences[0].comment == dots + " \\");
}

}  // namespace
}  // namespace gatewatch::daemon
