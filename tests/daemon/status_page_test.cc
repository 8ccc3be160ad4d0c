// The status page (daemon/status_page.h): the HTML at handler level over a real SQLite file.
// The real daemon's page in headless Chromium: tests/integration/status_page_browser_test.cc.

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

}  // namespace
}  // namespace gatewatch::daemon
