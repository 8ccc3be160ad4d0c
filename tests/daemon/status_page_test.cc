// The status page (daemon/status_page.h): the HTML at handler level over a real SQLite file,
// then the real daemon probing loopback fleet targets, rendered by headless Chromium.

#include "daemon/status_page.h"

#include <doctest/doctest.h>
#include <httplib.h>
#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "daemon/config.h"
#include "daemon/config_holder.h"
#include "daemon/http_server.h"
#include "fleet/pages.h"
#include "fleet/raw_server.h"
#include "storage/sqlite_store.h"
#include "tests/support/fake_clock.h"
#include "tests/support/listen_port.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace gatewatch::daemon {
namespace {

using namespace std::chrono_literals;
using probes::Outcome;
using testing::ReadFile;
using testing::WaitFor;

const SystemTime kBase = SystemTime(std::chrono::seconds(1'800'000'000 - 1'800'000'000 % 3600));
constexpr const char* kSecrets[] = {"QUERYSECRET42", "WEBHOOKSECRET", "TOKEN-SUPER-SECRET",
                                    "HEADERSECRET"};
constexpr const char* kChromium = "/usr/bin/chromium";

probes::ProbeResult Make(std::string monitor, std::string region, SystemTime at,
                         Outcome outcome = Outcome::kOk, int status = 200,
                         int64_t total_us = 25'000) {
  probes::ProbeResult r;
  r.monitor = std::move(monitor);
  r.region = std::move(region);
  r.started_at = at;
  r.outcome = outcome;
  r.http_status = status;
  r.confirmed = true;
  r.phases.total = std::chrono::microseconds(total_us);
  return r;
}

// The section of the page (or DOM) that renders one monitor.
std::string Card(const std::string& html, const std::string& monitor) {
  const size_t start = html.find("data-monitor=\"" + monitor + "\"");
  if (start == std::string::npos) return "";
  const size_t end = html.find("</section>", start);
  return html.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

bool Contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

TEST_CASE(
    "StatusPage: renders state per region, uptime, sparkline and failures, escaped, without "
    "secrets") {
  testing::TempDir dir;
  const std::string db = dir.File("gw.db");
  auto cfg = ParseConfig(R"([server]
listen = "127.0.0.1:0"
api_token = "TOKEN-SUPER-SECRET-0123456789"
[storage]
path = ")" + db + R"("
[regions.eu]
source_address = "127.0.0.1"
[[monitors]]
name = "api"
url = "http://127.0.0.1:1/health"
regions = ["local"]
[[monitors]]
name = "shop"
url = "https://shop.example.com/checkout?token=QUERYSECRET42"
upstreams = ["api"]
headers = { Authorization = "Bearer HEADERSECRET" }
[[monitors]]
name = "new"
url = "http://127.0.0.1:1/"
[[notifiers]]
name = "chat"
type = "slack"
url = "https://hooks.slack.com/services/T000/B000/WEBHOOKSECRET"
)",
                         "page.toml");
  REQUIRE(cfg.has_value());
  ConfigHolder config(std::make_shared<const Config>(std::move(cfg).value()));

  std::vector<probes::ProbeResult> results;
  for (int i = 0; i < 20; ++i) {
    results.push_back(
        Make("api", "local", kBase + i * 1min, Outcome::kOk, 200, 10'000 + i * 1'000));
  }
  results.push_back(Make("shop", "local", kBase + 5min));
  auto failed = Make("shop", "eu", kBase + 10min, Outcome::kHttp502, 502);
  failed.emitter = probes::Emitter::kNginx;
  failed.reason = probes::Reason::kUpstreamTimeout;
  failed.detail = "<script>alert('x')</script> & <img src=x onerror=alert(1)> ?token=QUERYSECRET42";
  results.push_back(failed);
  results.push_back(Make("shop", "eu", kBase - 72h, Outcome::kHttp500, 500));
  auto store = storage::SqliteStore::Open(db);
  REQUIRE(store.has_value());
  REQUIRE((*store)->Insert(results).has_value());

  testing::FakeClock clock(kBase + 30min);
  HttpServer::Options options;
  options.listen = {"127.0.0.1", 0};
  HttpServer server(options);
  RegisterStatusPage(server, {config, db, clock});
  auto port = server.Start();
  REQUIRE(port.has_value());
  httplib::Client client("127.0.0.1", *port);
  client.set_read_timeout(5);
  auto res = client.Get("/");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->get_header_value("Content-Type") == "text/html; charset=utf-8");
  CHECK(Contains(res->get_header_value("Content-Security-Policy"), "default-src 'none'"));
  const std::string& html = res->body;
  INFO(html);

  // Self-contained: no script, no external asset.
  CHECK_FALSE(Contains(html, "<script"));
  CHECK_FALSE(Contains(html, "<img"));
  CHECK_FALSE(Contains(html, "src=\""));
  CHECK_FALSE(Contains(html, "href=\"http"));
  CHECK_FALSE(Contains(html, "url("));
  CHECK_FALSE(Contains(html, "@import"));
  for (const char* secret : kSecrets) CHECK_FALSE(Contains(html, secret));
  CHECK_FALSE(Contains(html, "hooks.slack.com"));

  CHECK(Contains(html, "<h2>Open incidents</h2><p class=\"empty\">No open incidents</p>"));

  // Failing monitors first, then config order.
  const size_t shop_at = html.find("data-monitor=\"shop\"");
  const size_t api_at = html.find("data-monitor=\"api\"");
  const size_t new_at = html.find("data-monitor=\"new\"");
  REQUIRE(shop_at != std::string::npos);
  CHECK(shop_at < api_at);
  CHECK(api_at < new_at);

  const std::string shop = Card(html, "shop");
  CHECK(Contains(shop, "data-state=\"failing\""));
  CHECK(Contains(shop, "https://shop.example.com:443/checkout<"));
  CHECK(Contains(shop, "<tr class=\"region\" data-region=\"local\" data-state=\"ok\">"));
  CHECK(Contains(shop, "<tr class=\"region\" data-region=\"eu\" data-state=\"failing\">"));
  CHECK(Contains(shop, ">http_502<"));
  CHECK(Contains(shop, ">nginx (upstream_timeout)<"));
  // 24h: 1 of 2 confirmed ok; 7d and 30d: 1 of 3.
  CHECK(Contains(shop, "24h <b>50.00%</b>"));
  CHECK(Contains(shop, "7d <b>33.33%</b>"));
  CHECK(Contains(shop, "30d <b>33.33%</b>"));
  CHECK(Contains(shop, "href=\"#monitor-api\""));
  // The failure list, open for a failing monitor, with the detail escaped and redacted.
  CHECK(Contains(shop, "<details class=\"failures\" open>"));
  CHECK(Contains(shop,
                 "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;img src=x "
                 "onerror=alert(1)&gt; ?[redacted]"));
  CHECK(Contains(shop, ">http_500<"));
  CHECK(Contains(shop, "<td class=\"mono\"></td><td class=\"detail\"></td>"));  // no emitter

  const std::string api = Card(html, "api");
  CHECK(Contains(api, "data-state=\"ok\""));
  CHECK(Contains(api, "24h <b>100.00%</b>"));
  CHECK(Contains(api, "<polyline points=\""));
  CHECK(Contains(api, "last 29.0 ms"));
  CHECK(Contains(api, "No failures stored."));

  const std::string fresh = Card(html, "new");
  CHECK(Contains(fresh, "data-state=\"unknown\""));
  CHECK(Contains(fresh, "no confirmed result yet"));
  CHECK(Contains(fresh, "24h <b>&ndash;</b>"));
  CHECK(Contains(fresh, "no latency data yet"));

  CHECK(HtmlEscape("<a href=\"x\">'&'</a>") ==
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  server.Stop();
}

std::vector<std::string> ChromiumArgs(const testing::TempDir& dir, const std::string& profile) {
  return {kChromium,
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          "--user-data-dir=" + dir.File(profile)};
}

TEST_CASE(
    "StatusPage: headless Chromium renders the real daemon's page with ok and failing monitors") {
  REQUIRE_MESSAGE(std::filesystem::exists(kChromium),
                  "headless Chromium is required at /usr/bin/chromium: install the Debian package "
                  "`chromium` (scripts/install-deps.sh --tests, scripts/test-packages.txt)");
  fleet::RawHttpServer target;
  target.Route("/checkout", fleet::Behavior::Raw(fleet::pages::Nginx(502)));

  testing::TempDir dir;
  const std::string config = dir.Write("gatewatch.toml", R"([server]
listen = "127.0.0.1:0"
api_token = "TOKEN-SUPER-SECRET-0123456789"
[storage]
path = ")" + dir.File("gw.db") + R"("
[defaults]
interval = "1s"
timeout = "1s"
retries = 0
[[monitors]]
name = "frontend"
url = ")" + target.Url("/health?token=QUERYSECRET42") + R"("
[[monitors]]
name = "checkout"
url = ")" + target.Url("/checkout") + R"("
upstreams = ["frontend"]
[[notifiers]]
name = "chat"
type = "slack"
url = "https://hooks.slack.com/services/T000/B000/WEBHOOKSECRET"
)");
  const std::string log = dir.File("stderr.log");
  testing::Process daemon({GATEWATCH_BINARY, "run", "--config", config}, dir.File("stdout.log"),
                          log);
  const int port = testing::WaitForListenPort(log);
  REQUIRE_MESSAGE(port > 0, testing::ReadFile(log));

  // Both monitors have a confirmed result (the writer flushes about every second).
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(5);
  REQUIRE(WaitFor(
      [&] {
        auto res = client.Get("/api/v1/monitors");
        if (!res || res->status != 200) return false;
        const auto body = nlohmann::json::parse(res->body);
        return body["monitors"][0]["state"] == "ok" && body["monitors"][1]["state"] == "failing";
      },
      20s));

  REQUIRE(WaitFor(
      [&] {
        auto res = client.Get("/api/v1/incidents?open=true");
        if (!res || res->status != 200) return false;
        const auto body = nlohmann::json::parse(res->body);
        return body["incidents"].size() == 1 && body["incidents"][0]["verdict"] == "gateway_fault";
      },
      20s));

  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/";
  auto args = ChromiumArgs(dir, "profile-dom");
  args.push_back("--dump-dom");
  args.push_back(url);
  const testing::RunResult dom = testing::RunCommand(args, 60s, {"HOME=" + dir.path()});
  INFO("chromium stderr: " << dom.err);
  REQUIRE(dom.exit_code == 0);
  const std::string& html = dom.out;
  INFO("DOM: " << html);

  CHECK(Contains(html, "<title>(1 failing) gatewatch status</title>"));
  // checkout's gateway answers 502 while its upstream (frontend) is healthy: an open incident
  // with the verdict gateway_fault, shown above the monitors.
  CHECK_FALSE(Contains(html, "No open incidents"));
  CHECK(Contains(html, "class=\"card incident\" data-incident=\"checkout\" data-verdict=\"gateway_fault\""));
  const std::string checkout = Card(html, "checkout");
  CHECK(Contains(checkout, "data-state=\"failing\""));
  CHECK(Contains(checkout, "data-region=\"local\" data-state=\"failing\""));
  CHECK(Contains(checkout, ">http_502<"));
  CHECK(Contains(checkout, ">502<"));
  CHECK(Contains(checkout, ">nginx<"));  // the emitter, from the nginx error page
  CHECK(Contains(checkout, "<details class=\"failures\" open=\"\">"));
  const std::string frontend = Card(html, "frontend");
  CHECK(Contains(frontend, "data-state=\"ok\""));
  CHECK(Contains(frontend, "data-region=\"local\" data-state=\"ok\""));
  CHECK(Contains(frontend, "/health<"));
  CHECK(Contains(frontend, "<svg"));
  CHECK(html.find("data-monitor=\"checkout\"") < html.find("data-monitor=\"frontend\""));
  for (const char* secret : kSecrets) CHECK_FALSE(Contains(html, secret));

  // A screenshot, to look at by hand: GATEWATCH_STATUS_SCREENSHOT=/tmp/page.png keeps a copy.
  const std::string png = dir.File("status.png");
  args = ChromiumArgs(dir, "profile-shot");
  args.push_back("--hide-scrollbars");
  args.push_back("--window-size=1280,900");
  args.push_back("--screenshot=" + png);
  args.push_back(url);
  const testing::RunResult shot = testing::RunCommand(args, 60s, {"HOME=" + dir.path()});
  INFO("chromium stderr: " << shot.err);
  REQUIRE(shot.exit_code == 0);
  const std::string image = ReadFile(png);
  CHECK(image.rfind("\x89PNG", 0) == 0);
  if (const char* keep = std::getenv("GATEWATCH_STATUS_SCREENSHOT")) {
    std::filesystem::copy_file(png, keep, std::filesystem::copy_options::overwrite_existing);
  }

  daemon.Signal(SIGTERM);
  auto code = daemon.Wait(10s);
  REQUIRE(code.has_value());
  CHECK(*code == 0);
}

}  // namespace
}  // namespace gatewatch::daemon
