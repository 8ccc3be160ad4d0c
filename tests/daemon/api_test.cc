// The JSON API (daemon/api.h) at handler level: a real SQLite file filled through
// SqliteStore::Insert, an HttpServer on 127.0.0.1:0 with the API routes, a cpp-httplib client.

#include "daemon/api.h"

#include <doctest/doctest.h>
#include <httplib.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "daemon/config.h"
#include "daemon/config_holder.h"
#include "daemon/http_server.h"
#include "daemon/result_json.h"
#include "daemon/status_page.h"
#include "storage/sqlite_store.h"
#include "tests/support/fake_clock.h"
#include "tests/support/temp_dir.h"

namespace gatewatch::daemon {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using probes::Outcome;

// 2027-01-15T08:00:00Z, aligned to the hour.
const SystemTime kBase = SystemTime(std::chrono::seconds(1'800'000'000 - 1'800'000'000 % 3600));

constexpr const char* kSecrets[] = {"QUERYSECRET42", "WEBHOOKSECRET", "TOKEN-SUPER-SECRET",
                                    "HEADERSECRET"};

std::string ConfigText(const std::string& db) {
  return R"([server]
listen = "127.0.0.1:0"
api_token = "TOKEN-SUPER-SECRET-0123456789"
[storage]
path = ")" +
         db + R"("
[regions.eu]
source_address = "127.0.0.1"
[[monitors]]
name = "shop"
url = "https://shop.example.com/checkout?token=QUERYSECRET42"
regions = ["local", "eu"]
upstreams = ["shop-app"]
headers = { Authorization = "Bearer HEADERSECRET" }
[[monitors]]
name = "shop-app"
url = "http://[::1]:8080/health"
interval = "15s"
[[notifiers]]
name = "chat"
type = "slack"
url = "https://hooks.slack.com/services/T000/B000/WEBHOOKSECRET"
)";
}

probes::ProbeResult Make(std::string region, SystemTime at, Outcome outcome = Outcome::kOk,
                         int status = 200, bool confirmed = true, int attempt = 0) {
  probes::ProbeResult r;
  r.monitor = "shop";
  r.region = std::move(region);
  r.started_at = at;
  r.outcome = outcome;
  r.http_status = status;
  r.confirmed = confirmed;
  r.attempt = attempt;
  r.phases.connect = std::chrono::microseconds(1'000);
  r.phases.processing = std::chrono::microseconds(20'000);
  r.phases.total = std::chrono::microseconds(25'000);
  return r;
}

// shop: local 9 ok (B+1..9 min), eu ok at B+2 min then a confirmed nginx 502 at B+25 min
// (after an unconfirmed first attempt), plus local http_500 3 days and ok 20 days earlier.
// shop-app: nothing. So: 24h 10/11, 7d 10/12, 30d 11/13.
std::vector<probes::ProbeResult> Results() {
  std::vector<probes::ProbeResult> out;
  for (int i = 1; i <= 9; ++i) out.push_back(Make("local", kBase + i * 1min));
  out.push_back(Make("eu", kBase + 2min));
  auto first = Make("eu", kBase + 24min + 58s, Outcome::kHttp502, 502, false, 0);
  first.emitter = probes::Emitter::kNginx;
  out.push_back(first);
  auto failed = Make("eu", kBase + 25min, Outcome::kHttp502, 502, true, 1);
  failed.emitter = probes::Emitter::kNginx;
  failed.reason = probes::Reason::kUpstreamConnectFailed;
  failed.headers = {{"server", "nginx/1.22.1"}};
  failed.body_snippet = "<html>bad \xff gateway</html>";  // not UTF-8: must not break JSON
  failed.detail = "<script>alert(1)</script> GET /checkout?token=QUERYSECRET42 failed";
  out.push_back(failed);
  out.push_back(Make("local", kBase - 72h, Outcome::kHttp500, 500));
  out.push_back(Make("local", kBase - 480h));
  return out;
}

// A served API over a real database. The writing connection stays open (as the daemon's
// writer would); handlers read through their own per-thread read-only connections.
struct ApiFixture {
  testing::TempDir dir;
  std::string db = dir.File("gw.db");
  testing::FakeClock clock{kBase + 30min};
  std::unique_ptr<storage::SqliteStore> store;
  std::unique_ptr<ConfigHolder> config;
  std::unique_ptr<HttpServer> server;
  int port = 0;

  std::vector<alerting::AlertStatus> alerts;  // what the pipeline's snapshot would say

  explicit ApiFixture(const std::vector<probes::ProbeResult>& results = Results(),
                      bool create_db = true) {
    auto cfg = ParseConfig(ConfigText(db), "api.toml");
    REQUIRE(cfg.has_value());
    config = std::make_unique<ConfigHolder>(std::make_shared<const Config>(std::move(cfg).value()));
    if (create_db) {
      auto opened = storage::SqliteStore::Open(db);
      REQUIRE(opened.has_value());
      store = std::move(opened).value();
      REQUIRE(store->Insert(results).has_value());
    }
    HttpServer::Options options;
    options.listen = {"127.0.0.1", 0};
    server = std::make_unique<HttpServer>(options);
    const ApiDeps deps{*config, db, clock, [this] { return alerts; }};
    RegisterApiRoutes(*server, deps);
    RegisterStatusPage(*server, deps);
    auto started = server->Start();
    REQUIRE(started.has_value());
    port = *started;
  }
  ~ApiFixture() {
    server->Stop();  // joins the pool: its threads close their read connections
  }

  httplib::Result Get(const std::string& path) {
    httplib::Client client("127.0.0.1", port);
    client.set_connection_timeout(2);
    client.set_read_timeout(5);
    client.set_url_encode(false);  // send the query as written ('+' stays a '+')
    return client.Get(path);
  }

  // GETs `path`, expects `status` and a JSON body.
  json GetJson(const std::string& path, int status = 200) {
    auto res = Get(path);
    REQUIRE(res);
    INFO(path << " -> " << res->body);
    CHECK(res->status == status);
    CHECK(res->get_header_value("Content-Type") == "application/json");
    for (const char* secret : kSecrets) CHECK(res->body.find(secret) == std::string::npos);
    return json::parse(res->body);
  }
};

const json* FindRegion(const json& current, const std::string& region) {
  for (const json& r : current) {
    if (r["region"] == region) return &r;
  }
  return nullptr;
}

TEST_CASE("HttpServer: Stop() right after Start() stops (a SIGTERM during start-up)") {
  // cpp-httplib 0.11 drops a stop() that comes before its listen loop runs; without the
  // wait in Stop() one of these iterations blocks in accept() for ever (ctest timeout).
  for (int i = 0; i < 50; ++i) {
    HttpServer::Options options;
    options.listen = {"127.0.0.1", 0};
    HttpServer server(options);
    auto started = server.Start();
    REQUIRE(started.has_value());
    server.Stop();
  }
}

TEST_CASE(
    "Api: /api/v1/monitors lists every monitor with its public URL, state per region and 24h "
    "uptime") {
  ApiFixture f;
  const json body = f.GetJson("/api/v1/monitors");
  REQUIRE(body["monitors"].size() == 2);

  const json& shop = body["monitors"][0];
  CHECK(shop["name"] == "shop");
  CHECK(shop["url"] == "https://shop.example.com:443/checkout");  // no query string
  CHECK(shop["interval_seconds"] == 30.0);
  CHECK(shop["regions"] == json({"local", "eu"}));
  CHECK(shop["upstreams"] == json({"shop-app"}));
  CHECK(shop["state"] == "failing");
  CHECK(shop["uptime_24h"].get<double>() == doctest::Approx(10.0 / 11.0));
  CHECK_FALSE(shop.contains("settings"));
  REQUIRE(shop["current"].size() == 2);
  CHECK(shop["current"][0]["region"] == "local");  // config order

  const json* local = FindRegion(shop["current"], "local");
  REQUIRE(local != nullptr);
  CHECK((*local)["state"] == "ok");
  CHECK((*local)["outcome"] == "ok");
  CHECK((*local)["http_status"] == 200);
  CHECK((*local)["last_probe_at"] == FormatTime(kBase + 9min));
  CHECK((*local)["phases_seconds"] ==
        json({{"connect", 0.001}, {"processing", 0.02}, {"total", 0.025}}));
  CHECK_FALSE(local->contains("emitter"));

  const json* eu = FindRegion(shop["current"], "eu");
  REQUIRE(eu != nullptr);
  CHECK((*eu)["state"] == "failing");
  CHECK((*eu)["outcome"] == "http_502");
  CHECK((*eu)["http_status"] == 502);
  CHECK((*eu)["emitter"] == "nginx");
  CHECK((*eu)["reason"] == "upstream_connect_failed");
  CHECK((*eu)["last_probe_at"] == FormatTime(kBase + 25min));  // the confirmed attempt
  CHECK((*eu)["detail"] == "<script>alert(1)</script> GET /checkout?[redacted] failed");

  const json& app = body["monitors"][1];
  CHECK(app["name"] == "shop-app");
  CHECK(app["url"] == "http://[::1]:8080/health");
  CHECK(app["interval_seconds"] == 15.0);
  CHECK(app["regions"] == json({"local", "eu"}));  // every region when none are listed
  CHECK(app["upstreams"] == json::array());
  CHECK(app["state"] == "unknown");
  CHECK(app["uptime_24h"].is_null());
  CHECK(app["current"][0] == json({{"region", "local"}, {"state", "unknown"}}));
}

TEST_CASE(
    "Api: /api/v1/monitors/{name} adds settings, 24h/7d/30d uptime and recent failures; 404 for "
    "unknown names") {
  ApiFixture f;
  const json shop = f.GetJson("/api/v1/monitors/shop");
  CHECK(shop["name"] == "shop");
  CHECK(shop["state"] == "failing");
  CHECK(shop["settings"] == json({{"method", "GET"},
                                  {"timeout_seconds", 10.0},
                                  {"retries", 1},
                                  {"follow_redirects", false},
                                  {"tls_skip_verify", false},
                                  {"expect_status", {"2xx"}}}));
  CHECK(shop["uptime"]["24h"].get<double>() == doctest::Approx(10.0 / 11.0));
  CHECK(shop["uptime"]["7d"].get<double>() == doctest::Approx(10.0 / 12.0));
  CHECK(shop["uptime"]["30d"].get<double>() == doctest::Approx(11.0 / 13.0));
  CHECK(FindRegion(shop["current"], "local")->at("uptime_24h") == 1.0);
  CHECK(FindRegion(shop["current"], "eu")->at("uptime_24h") == 0.5);

  // Failed attempts, newest first, in the result schema; unconfirmed ones too.
  const json& failures = shop["recent_failures"];
  REQUIRE(failures.size() == 3);
  CHECK(failures[0]["started_at"] == FormatTime(kBase + 25min));
  CHECK(failures[0]["confirmed"] == true);
  CHECK(failures[0]["emitter"] == "nginx");
  CHECK(failures[0]["headers"] == json({{"server", "nginx/1.22.1"}}));
  CHECK(failures[0]["body_snippet"].get<std::string>().find("gateway") != std::string::npos);
  CHECK(failures[1]["confirmed"] == false);
  CHECK(failures[2]["outcome"] == "http_500");

  const json app = f.GetJson("/api/v1/monitors/shop-app");
  CHECK(app["uptime"] == json({{"24h", nullptr}, {"7d", nullptr}, {"30d", nullptr}}));
  CHECK(app["recent_failures"] == json::array());

  const json missing = f.GetJson("/api/v1/monitors/nope", 404);
  CHECK(missing["error"] == "no monitor named \"nope\" is configured");
  f.GetJson("/api/v1/monitors/nope/results", 404);
}

TEST_CASE("Api: results are newest first and filtered by since, until, region and limit") {
  ApiFixture f;
  SUBCASE("defaults: everything stored, limit 100") {
    const json body = f.GetJson("/api/v1/monitors/shop/results");
    CHECK(body["monitor"] == "shop");
    CHECK(body["limit"] == 100);
    CHECK(body["since"].is_null());
    CHECK(body["until"].is_null());
    CHECK(body["region"].is_null());
    CHECK(body["more"] == false);
    const json& results = body["results"];
    REQUIRE(results.size() == 14);
    for (size_t i = 1; i < results.size(); ++i) {
      CHECK(ParseTime(results[i - 1]["started_at"].get<std::string>()).value() >=
            ParseTime(results[i]["started_at"].get<std::string>()).value());
    }
    CHECK(results[0]["started_at"] == FormatTime(kBase + 25min));
    CHECK(results[0]["detail"] == "<script>alert(1)</script> GET /checkout?[redacted] failed");
    CHECK(results[13]["started_at"] == FormatTime(kBase - 480h));
  }
  SUBCASE("region") {
    const json body = f.GetJson("/api/v1/monitors/shop/results?region=eu");
    CHECK(body["region"] == "eu");
    REQUIRE(body["results"].size() == 3);
    for (const json& r : body["results"]) CHECK(r["region"] == "eu");
    CHECK(f.GetJson("/api/v1/monitors/shop/results?region=mars")["results"] == json::array());
  }
  SUBCASE("limit: the newest rows, and more = true when it was reached") {
    const json body = f.GetJson("/api/v1/monitors/shop/results?limit=2");
    CHECK(body["limit"] == 2);
    CHECK(body["more"] == true);
    REQUIRE(body["results"].size() == 2);
    CHECK(body["results"][1]["started_at"] == FormatTime(kBase + 24min + 58s));
    CHECK(f.GetJson("/api/v1/monitors/shop/results?limit=10000")["results"].size() == 14);
  }
  SUBCASE("since and until: RFC 3339 (Z, offsets, fractions) or unix seconds, half-open") {
    const auto unix = [](SystemTime t) {
      return std::to_string(
          std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count());
    };
    // [B+2min, B+5min): local 2, 3, 4 and eu 2.
    json body = f.GetJson("/api/v1/monitors/shop/results?since=" + FormatTime(kBase + 2min) +
                          "&until=" + unix(kBase + 5min));
    CHECK(body["since"] == FormatTime(kBase + 2min));
    CHECK(body["until"] == FormatTime(kBase + 5min));
    CHECK(body["results"].size() == 4);
    // The same instant as 09:02:00+01:00, written with %2B and with a bare '+' (which a
    // query string decodes to a space), and as fractional unix seconds.
    for (const std::string& since :
         std::vector<std::string>{"2027-01-15T09:02:00%2B01:00", "2027-01-15T09:02:00+01:00",
                                  "2027-01-15T07:02:00.000-01:00", unix(kBase + 2min) + ".0"}) {
      body = f.GetJson("/api/v1/monitors/shop/results?until=" + unix(kBase + 5min) +
                       "&since=" + since);
      CHECK(body["since"] == FormatTime(kBase + 2min));
      CHECK(body["results"].size() == 4);
    }
    body = f.GetJson("/api/v1/monitors/shop/results?since=" + unix(kBase + 24min + 58s) + ".5");
    CHECK(body["results"].size() == 1);
  }
}

TEST_CASE("Api: objects keep the documented key order, not alphabetical") {
  ApiFixture f;
  auto res = f.Get("/api/v1/monitors/shop/results?limit=1");
  REQUIRE(res);
  const auto keys = [](const nlohmann::ordered_json& j) {
    std::vector<std::string> out;
    for (const auto& item : j.items()) out.push_back(item.key());
    return out;
  };
  const auto body = nlohmann::ordered_json::parse(res->body);
  CHECK(keys(body).front() == "monitor");
  CHECK(keys(body).back() == "results");
  REQUIRE(body["results"].size() == 1);
  const std::vector<std::string> result_keys = keys(body["results"][0]);
  REQUIRE(result_keys.size() >= 6);
  CHECK(std::vector<std::string>(result_keys.begin(), result_keys.begin() + 6) ==
        std::vector<std::string>{"monitor", "region", "started_at", "attempt", "confirmed",
                                 "outcome"});
}

TEST_CASE("Api: bad parameters are 400 JSON errors that name the parameter") {
  ApiFixture f;
  const std::pair<std::string, std::string> cases[] = {
      {"since=yesterday", "since: "},
      {"until=2027-13-01T00:00:00Z", "until: "},
      {"since=2027-01-15T00:00:00", "since: "},
      {"since=1800000000&until=1800000000", "since: must be before until"},
      {"since=2027-01-16T00:00:00Z&until=2027-01-15T00:00:00Z", "since: must be before until"},
      {"limit=0", "limit: expected an integer from 1 to 10000"},
      {"limit=10001", "limit: expected an integer from 1 to 10000"},
      {"limit=-5", "limit: "},
      {"limit=ten", "limit: "},
      {"limit=5x", "limit: "},
      {"region=", "region: must not be empty"},
  };
  for (const auto& [query, message] : cases) {
    CAPTURE(query);
    const json body = f.GetJson("/api/v1/monitors/shop/results?" + query, 400);
    CHECK(body["error"].get<std::string>().rfind(message, 0) == 0);
  }
  CHECK(f.GetJson("/api/v1/incidents?open=maybe", 400)["error"] ==
        "open: expected true or false, got \"maybe\"");
}

TEST_CASE("Api: a request that is not UTF-8 is a 400 JSON error, not an internal error") {
  ApiFixture f;
  CHECK(f.GetJson("/api/v1/monitors/%ff", 400)["error"] == "the request path is not valid UTF-8");
  CHECK(f.GetJson("/api/v1/monitors/shop/results?region=%ff", 400)["error"] ==
        "a query parameter is not valid UTF-8");
  CHECK(f.GetJson("/api/v1/monitors/shop/results?%C0%AF=1", 400)["error"] ==  // an overlong '/'
        "a query parameter is not valid UTF-8");
  CHECK(f.GetJson("/api/v1/monitors/%e2%82%ac", 404).contains("error"));  // "€" is UTF-8: a 404
}

TEST_CASE("Api: incidents and alerts exist with empty lists") {
  ApiFixture f;
  CHECK(f.GetJson("/api/v1/incidents") == json({{"incidents", json::array()}}));
  CHECK(f.GetJson("/api/v1/incidents?open=true") == json({{"incidents", json::array()}}));
  CHECK(f.GetJson("/api/v1/incidents?open=false") == json({{"incidents", json::array()}}));
  CHECK(f.GetJson("/api/v1/alerts") == json({{"alerts", json::array()}}));
}

TEST_CASE("Api: alerts list the pipeline's states, filtered by state") {
  ApiFixture f;
  alerting::AlertStatus firing;
  firing.alert = "shop-502";
  firing.monitor = "shop";
  firing.state = alerting::AlertState::kFiring;
  firing.since = kBase + 10min;
  firing.ratio = 0.4;
  firing.region_ratio = {{"local", 0.4}, {"eu", 0.1}};
  alerting::AlertStatus ok = firing;
  ok.monitor = "shop-app";
  ok.state = alerting::AlertState::kOk;
  ok.silenced = true;
  ok.ratio = 0;
  ok.region_ratio = {};
  f.alerts = {firing, ok};
  const json all = f.GetJson("/api/v1/alerts");
  REQUIRE(all["alerts"].size() == 2);
  CHECK(all["alerts"][0] == json({{"alert", "shop-502"},
                                  {"monitor", "shop"},
                                  {"state", "firing"},
                                  {"since", FormatTime(kBase + 10min)},
                                  {"silenced", false},
                                  {"ratio", 0.4},
                                  {"regions", {{"eu", 0.1}, {"local", 0.4}}}}));
  CHECK(all["alerts"][1]["state"] == "ok");
  CHECK(all["alerts"][1]["silenced"] == true);
  const json only = f.GetJson("/api/v1/alerts?state=firing");
  REQUIRE(only["alerts"].size() == 1);
  CHECK(only["alerts"][0]["monitor"] == "shop");
  CHECK(f.GetJson("/api/v1/alerts?state=burning", 400)["error"] ==
        "state: expected ok, pending, firing or resolving, got \"burning\"");
}

TEST_CASE("Api: no secret and no monitor query string in any response") {
  ApiFixture f;
  for (const std::string path :
       {"/api/v1/monitors", "/api/v1/monitors/shop", "/api/v1/monitors/shop/results",
        "/api/v1/monitors/shop/results?limit=10000", "/api/v1/incidents", "/api/v1/alerts", "/"}) {
    auto res = f.Get(path);
    REQUIRE(res);
    CAPTURE(path);
    CHECK(res->status == 200);
    for (const char* secret : kSecrets) CHECK(res->body.find(secret) == std::string::npos);
    CHECK(res->body.find("hooks.slack.com") == std::string::npos);
    CHECK(res->body.find("token=") == std::string::npos);
  }
}

TEST_CASE("Api: an unreadable database is a 500 JSON error, and the next request recovers") {
  ApiFixture f({}, /*create_db=*/false);
  const json body = f.GetJson("/api/v1/monitors", 500);
  CHECK(body["error"] == "cannot read the results database");
  CHECK(f.GetJson("/api/v1/monitors/shop/results", 500)["error"] ==
        "cannot read the results database");
  // The page degrades the same way.
  auto page = f.Get("/");
  REQUIRE(page);
  CHECK(page->status == 500);

  // Once the writer has created it, reads work (a failed connection is not kept).
  auto opened = storage::SqliteStore::Open(f.db);
  REQUIRE(opened.has_value());
  f.store = std::move(opened).value();
  REQUIRE(f.store->Insert(Results()).has_value());
  CHECK(f.GetJson("/api/v1/monitors")["monitors"][0]["state"] == "failing");
}

TEST_CASE("Api: helpers: public URL, query redaction, API times") {
  CHECK(PublicUrl("https://Example.COM/a/b?x=1#frag") == "https://example.com:443/a/b");
  CHECK(PublicUrl("http://example.com") == "http://example.com:80/");
  CHECK(PublicUrl("http://example.com?key=1") == "http://example.com:80/");
  CHECK(PublicUrl("http://[2001:db8::1]:8080/p;x?y") == "http://[2001:db8::1]:8080/p;x");
  CHECK(PublicUrl("ftp://nope") == "");

  CHECK(RedactQuery("see ?a=1&b=2 and ?a=1&b=2", "http://h/p?a=1&b=2") ==
        "see ?[redacted] and ?[redacted]");
  CHECK(RedactQuery("nothing here", "http://h/p") == "nothing here");

  CHECK(ParseApiTime("1800000000").value() == SystemTime(std::chrono::seconds(1'800'000'000)));
  CHECK(ParseApiTime("1800000000.25").value() ==
        SystemTime(std::chrono::seconds(1'800'000'000)) + 250ms);
  CHECK(ParseApiTime("2027-01-15T08:00:00Z").value() == kBase);
  CHECK(ParseApiTime("2027-01-15T09:00:00 01:00").value() == kBase);
  CHECK(ParseApiTime("2027-01-15T08:00:00.5Z").value() == kBase + 500ms);
  for (const char* bad :
       {"", "now", "1.2.3", ".5", "2027-02-30T00:00:00Z", "2027-01-15 00:00:00Z"}) {
    CAPTURE(bad);
    CHECK_FALSE(ParseApiTime(bad).has_value());
  }
}

}  // namespace
}  // namespace gatewatch::daemon
