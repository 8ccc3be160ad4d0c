// Diagnosis through the daemon (docs/alerts-and-diagnosis.md): the gatewatch binary watches a real nginx
// in front of upstreams on loopback, each upstream a process of its own that the tests kill
// (SIGKILL) and start again. Incidents open with the verdict of docs/alerts-and-diagnosis.md, the
// verdict changes as the evidence does, incidents close on recovery, the verdict is a metric
// and every chat message (Slack, recorded by a local receiver) leads with it. The messages are
// printed: they are quoted in the closing note.
#include <httplib.h>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <set>

#include "fleet/connect_proxy.h"
#include "fleet/dns_server.h"
#include "fleet/raw_server.h"
#include "tests/support/gateways.h"
#include "tests/support/listen_port.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/upstream_process.h"
#include "tests/support/wait.h"
#include "tests/support/webhook_receiver.h"

namespace gatewatch::daemon {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using testing::ReadFile;
using testing::WaitFor;

// gatewatch run on a config; the API port from its log.
struct Daemon {
  testing::TempDir& dir;
  testing::Process process;
  int port = 0;

  Daemon(testing::TempDir& d, const std::string& toml)
      : dir(d),
        process({GATEWATCH_BINARY, "run", "--config", d.Write("gatewatch.toml", toml)}, d.File("out.log"),
                d.File("err.log")) {
    port = testing::WaitForListenPort(d.File("err.log"));
    REQUIRE_MESSAGE(port > 0, ReadFile(d.File("err.log")));
  }
  ~Daemon() {
    process.Signal(SIGTERM);
    process.Wait(20s);
  }
  std::string Log() const { return ReadFile(dir.File("err.log")); }
  std::string Get(const std::string& path) {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(5);
    auto r = c.Get(path);
    return r && r->status == 200 ? r->body : "";
  }
  json Incidents(const std::string& query = "") {
    const std::string body = Get("/api/v1/incidents" + query);
    return body.empty() ? json::object({{"incidents", json::array()}}) : json::parse(body);
  }
};

std::string Header(const std::string& db) {
  return "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\npath = \"" + db +
         "\"\n[defaults]\ninterval = \"1s\"\ntimeout = \"800ms\"\nretries = 0\n\n";
}

std::string Monitor(const std::string& name, const std::string& url, const std::string& upstreams = "") {
  return "[[monitors]]\nname = \"" + name + "\"\nurl = \"" + url + "\"\n" +
         (upstreams.empty() ? "" : "upstreams = [" + upstreams + "]\n") + "\n";
}

std::string Slack(const testing::WebhookReceiver& hook) {
  return "[[notifiers]]\nname = \"chat\"\ntype = \"slack\"\nurl = \"" + hook.Url("/slack") + "\"\nmin_interval = \"0s\"\n";
}

// The Slack message as a reader sees it: fallback text, then every block's text and fields.
std::string SlackText(const std::string& body) {
  const json m = json::parse(body);
  std::string out = m.value("text", "");
  for (const json& b : m["blocks"]) {
    if (b.contains("text")) out += "\n" + b["text"].value("text", "");
    if (b.contains("fields")) {
      for (const json& f : b["fields"]) out += "\n" + f.value("text", "");
    }
  }
  return out;
}

std::string FiringText(const testing::WebhookReceiver& hook) {
  for (const auto& r : hook.Delivered()) {
    const std::string text = SlackText(r.body);
    if (text.find("FIRING") != std::string::npos) return text;
  }
  return "";
}

TEST_CASE("Incident e2e: upstream killed behind nginx -> upstream_down, in the chat message and the metric") {
  testing::TempDir dir;
  testing::UpstreamProcess api(dir, "shop-api-1");
  testing::NginxGateway nginx({{.location = "/", .servers = {static_cast<uint16_t>(api.port())}}});
  testing::WebhookReceiver hook;
  Daemon gw(dir, Header(dir.File("gw.db")) + Monitor("shop", nginx.Url("/healthz"), "\"shop-api-1\"") +
                     Monitor("shop-api-1", api.Url("/healthz")) +
                     "[[alerts]]\nname = \"shop-502\"\nmonitors = [\"shop\"]\nkind = \"status_rate\"\ncodes = [502]\n"
                     "above = 0.2\nwindow = \"10s\"\nmin_samples = 3\nfor = \"0s\"\nbelow = 0.05\n"
                     "resolve_for = \"2s\"\nseverity = \"critical\"\nnotify = [\"chat\"]\n\n" +
                     Slack(hook));
  REQUIRE(WaitFor([&] { return api.RequestCount() >= 8; }, 30s));
  CHECK(gw.Incidents("?monitor=shop")["incidents"].empty());

  api.Kill();
  REQUIRE_MESSAGE(WaitFor([&] { return !FiringText(hook).empty(); }, 40s), gw.Log());
  const std::string firing = FiringText(hook);
  MESSAGE("upstream_down chat message (Slack):\n" << firing);
  CHECK(firing.find("upstream_down") != std::string::npos);
  CHECK(firing.find("upstream shop-api-1 refuses connections (connect_refused)") != std::string::npos);
  CHECK(firing.find("nginx") != std::string::npos);
  // The incident and its metric.
  REQUIRE(WaitFor([&] {
    const json open = gw.Incidents("?open=true&monitor=shop");
    return open["incidents"].size() == 1 && open["incidents"][0]["verdict"] == "upstream_down";
  }, 20s));
  CHECK(gw.Get("/metrics").find("gatewatch_incident_open{monitor=\"shop\",verdict=\"upstream_down\"} 1") !=
        std::string::npos);

  api.Restart();
  REQUIRE_MESSAGE(WaitFor([&] {
    const json all = gw.Incidents("?monitor=shop");
    return all["incidents"].size() == 1 && !all["incidents"][0]["closed_at"].is_null();
  }, 60s), gw.Log());
  const json closed = gw.Incidents("?monitor=shop")["incidents"][0];
  INFO("closed incident: " << closed.dump());
  CHECK(closed["verdict"] == "upstream_down");  // the root cause stays: an alert fired
  CHECK(closed["alert_fired"] == true);
  CHECK(closed["peak_ratio"].get<double>() > 0.2);
  CHECK(closed["evidence"]["upstreams"][0]["name"] == "shop-api-1");
  CHECK(gw.Get("/metrics").find("gatewatch_incident_open{") == std::string::npos);
  // The resolved message names the root cause.
  REQUIRE(WaitFor([&] { return hook.Delivered().size() >= 2; }, 30s));
  CHECK(SlackText(hook.Delivered().back().body).find("upstream_down") != std::string::npos);
}

TEST_CASE("Incident e2e: nginx pointed at a wrong port while the upstream is healthy -> gateway_fault") {
  fleet::RawHttpServer api;
  testing::NginxGateway nginx({{.location = "/", .servers = {testing::FreePort()}}});
  testing::WebhookReceiver hook;
  testing::TempDir dir;
  Daemon gw(dir, Header(dir.File("gw.db")) + Monitor("shop", nginx.Url("/healthz"), "\"shop-api-1\"") +
                     Monitor("shop-api-1", api.Url("/healthz")) +
                     "[[alerts]]\nname = \"shop-502\"\nmonitors = [\"shop\"]\nkind = \"status_rate\"\ncodes = [502]\n"
                     "above = 0.2\nwindow = \"10s\"\nmin_samples = 3\nfor = \"0s\"\nseverity = \"critical\"\n"
                     "notify = [\"chat\"]\n\n" +
                     Slack(hook));
  REQUIRE_MESSAGE(WaitFor([&] { return !FiringText(hook).empty(); }, 40s), gw.Log());
  const std::string firing = FiringText(hook);
  MESSAGE("gateway_fault chat message (Slack):\n" << firing);
  CHECK(firing.find("gateway_fault") != std::string::npos);
  CHECK(firing.find("shop-api-1") != std::string::npos);
  const json open = gw.Incidents("?open=true&monitor=shop");
  REQUIRE(open["incidents"].size() == 1);
  CHECK(open["incidents"][0]["verdict"] == "gateway_fault");
}

TEST_CASE("Incident e2e: one of two upstreams down behind nginx's pool -> partial_upstream_failure while it answers 200") {
  testing::TempDir dir;
  testing::UpstreamProcess api1(dir, "shop-api-1"), api2(dir, "shop-api-2");
  testing::NginxGateway nginx(
      {{.location = "/", .servers = {static_cast<uint16_t>(api1.port()), static_cast<uint16_t>(api2.port())}}});
  testing::WebhookReceiver hook;
  Daemon gw(dir, Header(dir.File("gw.db")) + Monitor("shop", nginx.Url("/healthz"), "\"shop-api-1\", \"shop-api-2\"") +
                     Monitor("shop-api-1", api1.Url("/healthz")) + Monitor("shop-api-2", api2.Url("/healthz")) +
                     "[[alerts]]\nname = \"api-down\"\nmonitors = [\"shop-api-*\"]\nkind = \"down\"\nafter = 2\n"
                     "for = \"0s\"\nresolve_for = \"2s\"\nseverity = \"warning\"\nnotify = [\"chat\"]\n\n" +
                     Slack(hook));
  REQUIRE(WaitFor([&] { return api1.RequestCount() >= 4 && api2.RequestCount() >= 4; }, 30s));
  api1.Kill();
  REQUIRE_MESSAGE(WaitFor([&] {
    const json open = gw.Incidents("?open=true&monitor=shop");
    return open["incidents"].size() == 1 && open["incidents"][0]["verdict"] == "partial_upstream_failure";
  }, 40s), gw.Log());
  REQUIRE_MESSAGE(WaitFor([&] { return !FiringText(hook).empty(); }, 30s), gw.Log());
  const std::string firing = FiringText(hook);
  MESSAGE("upstream alert chat message (Slack):\n" << firing);
  // The upstream's alert leads with its own diagnosis, then says what it causes in front.
  CHECK(firing.find("FIRING: api-down on shop-api-1") != std::string::npos);
  CHECK(firing.find("not_listening") != std::string::npos);
  CHECK(firing.find("shop-api-1 refuses connections (connect_refused)") != std::string::npos);
  CHECK(firing.find("causes an incident on gateway shop (partial_upstream_failure): 1/2 upstreams failing") !=
        std::string::npos);
  CHECK(firing.find("gateway shop-api-1") == std::string::npos);  // a leaf is no gateway
  // The gateway itself still answers 200: its state is ok.
  const json shop = json::parse(gw.Get("/api/v1/monitors/shop"));
  CHECK(shop["state"] == "ok");
  CHECK(gw.Get("/metrics").find("gatewatch_incident_open{monitor=\"shop\",verdict=\"partial_upstream_failure\"} 1") !=
        std::string::npos);
  const std::string page = gw.Get("/");  // the status page
  const size_t card = page.find("data-incident=\"shop\" data-verdict=\"partial_upstream_failure\"");
  REQUIRE(card != std::string::npos);
  const std::string shop_card = page.substr(card, page.find("</section>", card) - card);
  CHECK(shop_card.find("peak") == std::string::npos);  // the gateway never failed: no "peak 0%"

  // Recovery: the resolved message says what recovered and after how long, and names the root
  // cause; no measure of a "down" alert is left to show.
  api1.Restart();
  std::string resolved;
  REQUIRE_MESSAGE(WaitFor([&] {
    for (const auto& r : hook.Delivered()) {
      const std::string text = SlackText(r.body);
      if (text.find("RESOLVED") != std::string::npos) resolved = text;
    }
    return !resolved.empty();
  }, 40s), gw.Log());
  MESSAGE("upstream resolved chat message (Slack):\n" << resolved);
  CHECK(resolved.find("RESOLVED: api-down on shop-api-1") != std::string::npos);
  CHECK(resolved.find("shop-api-1 recovered after ") != std::string::npos);
  CHECK(resolved.find("probes succeed again") != std::string::npos);
  CHECK(resolved.find("root cause: shop-api-1 refuses connections (connect_refused)") != std::string::npos);
  CHECK(resolved.find("not_listening") != std::string::npos);
  CHECK(resolved.find("unknown") == std::string::npos);
  CHECK(resolved.find("consecutive failed probes") == std::string::npos);
  CHECK(resolved.find("Samples") == std::string::npos);
}

TEST_CASE("Incident e2e: a blip is transient, the verdict changes within the incident, and it closes on recovery") {
  testing::TempDir dir;
  testing::UpstreamProcess api(dir, "shop-api-1");
  testing::NginxGateway nginx({{.location = "/", .servers = {static_cast<uint16_t>(api.port())}}});
  // An alert that cannot fire (min_samples above what the window holds): incidents only. Its
  // window (60 s) and resolve_for (8 s) set the transient limit and the close delay.
  Daemon gw(dir, Header(dir.File("gw.db")) + Monitor("shop", nginx.Url("/healthz"), "\"shop-api-1\"") +
                     Monitor("shop-api-1", api.Url("/healthz")) +
                     "[[alerts]]\nname = \"shop-502\"\nmonitors = [\"shop\"]\nkind = \"status_rate\"\ncodes = [502]\n"
                     "above = 0.5\nwindow = \"60s\"\nmin_samples = 1000\nfor = \"0s\"\nresolve_for = \"8s\"\n"
                     "notify = []\n");
  REQUIRE(WaitFor([&] { return api.RequestCount() >= 6; }, 30s));
  std::set<std::string> seen;
  const auto verdict = [&] {
    const json all = gw.Incidents("?monitor=shop");
    if (all["incidents"].empty()) return std::string();
    const std::string v = all["incidents"][0]["verdict"];
    seen.insert(v);
    return v;
  };
  api.Kill();  // down ...
  REQUIRE_MESSAGE(WaitFor([&] { return verdict() == "upstream_down"; }, 20s), gw.Log());
  const int64_t id = gw.Incidents("?monitor=shop")["incidents"][0]["id"];
  api.Restart();  // ... and back within seconds: a blip so far
  REQUIRE_MESSAGE(WaitFor([&] { return verdict() == "transient"; }, 20s), gw.Log());
  api.Kill();  // down again before the incident closed
  REQUIRE_MESSAGE(WaitFor([&] { return verdict() == "upstream_down"; }, 20s), gw.Log());
  const json during = gw.Incidents("?monitor=shop");
  REQUIRE(during["incidents"].size() == 1);  // the same incident: its verdict changed
  CHECK(during["incidents"][0]["id"] == id);
  CHECK(during["incidents"][0]["first_verdict"] != "transient");
  api.Restart();
  REQUIRE_MESSAGE(WaitFor([&] { return !gw.Incidents("?monitor=shop")["incidents"][0]["closed_at"].is_null(); }, 40s), gw.Log());
  const json closed = gw.Incidents("?monitor=shop")["incidents"][0];
  CHECK(closed["id"] == id);
  CHECK(closed["verdict"] == "transient");  // over within the alert window, no alert fired
  CHECK(closed["alert_fired"] == false);
  CHECK(seen.contains("transient"));
  CHECK(seen.contains("upstream_down"));
  CHECK(gw.Incidents("?open=true&monitor=shop")["incidents"].empty());
}

// Regions through the daemon: the verdicts that compare regions over time, which `check` (one
// probe each, no history) cannot show. One nginx with two addresses: 127.0.0.1 proxies to the
// healthy upstream, 127.0.0.2 (the broken gateway) to a dead port; each region has its own
// resolver for the gateway's name.
struct TwoRegionSite {
  testing::TempDir& dir;
  testing::UpstreamProcess api{dir, "shop-api-1"};
  const uint16_t dead = testing::FreePort();
  testing::NginxGateway nginx{testing::NginxGateway::Options{
      .routes = {{.location = "/", .servers = {static_cast<uint16_t>(api.port())}}},
      .http_extra = "server {\n  listen 127.0.0.2:@PORT@;\n  location / { proxy_pass http://127.0.0.1:" +
                    std::to_string(dead) + "; }\n}\n"}};
  fleet::DnsServer east_dns, west_dns;
  const std::string name = "gw.gatewatch.test";

  explicit TwoRegionSite(testing::TempDir& d) : dir(d) { east_dns.SetAnswer(name, {"127.0.0.1"}); }

  // The daemon's config: regions east and west, the gateway watched from both, its upstream,
  // a 502-rate alert on the gateway that posts to `hook` (Slack).
  std::string Config(const testing::WebhookReceiver& hook) const {
    return Header(dir.File("gw.db")) + "[regions.east]\ndns_servers = [\"" + east_dns.Address() +
           "\"]\n[regions.west]\ndns_servers = [\"" + west_dns.Address() + "\"]\n\n" +
           "[[monitors]]\nname = \"shop\"\nurl = \"http://" + name + ":" + std::to_string(nginx.port()) +
           "/healthz\"\nregions = [\"east\", \"west\"]\nupstreams = [\"shop-api-1\"]\n\n" +
           Monitor("shop-api-1", api.Url("/healthz")) +
           "[[alerts]]\nname = \"shop-502\"\nmonitors = [\"shop\"]\nkind = \"status_rate\"\ncodes = [502]\n"
           "above = 0.2\nwindow = \"10s\"\nmin_samples = 3\nfor = \"0s\"\nseverity = \"critical\"\n"
           "notify = [\"chat\"]\n\n" +
           Slack(hook);
  }
};

// The open incident of `monitor` once its verdict is `verdict` and its evidence has seen
// `healthy_region` healthy (an incident opens at the first failure, maybe before the other
// region's first result; it is re-diagnosed every 10 s). REQUIREd within 40 s.
json OpenIncidentWith(Daemon& gw, const std::string& monitor, const std::string& verdict,
                      const std::string& healthy_region) {
  json found;
  REQUIRE_MESSAGE(WaitFor([&] {
    const json open = gw.Incidents("?open=true&monitor=" + monitor);
    if (open["incidents"].size() != 1 || open["incidents"][0]["verdict"] != verdict) return false;
    found = open["incidents"][0];
    return found["evidence"]["healthy_regions"] == json{healthy_region};
  }, 40s), "no open " << verdict << " incident with " << healthy_region << " healthy; incidents: "
                      << gw.Incidents("?monitor=" + monitor).dump() << "\n" << gw.Log());
  return found;
}

TEST_CASE("Incident e2e: one region's resolver moves the name to a broken gateway -> dns, naming the change") {
  testing::TempDir dir;
  TwoRegionSite site(dir);
  site.west_dns.SetAnswer(site.name, {"127.0.0.1"});  // both regions healthy first
  testing::WebhookReceiver hook;
  Daemon gw(dir, site.Config(hook));
  REQUIRE_MESSAGE(WaitFor([&] {
    const std::string body = gw.Get("/api/v1/monitors/shop");
    if (body.empty()) return false;
    const json m = json::parse(body);
    int ok = 0;
    for (const json& r : m["current"]) ok += r.value("state", "") == "ok";
    return ok == 2;
  }, 30s), gw.Log());

  site.west_dns.SetAnswer(site.name, {"127.0.0.2"});  // west now reaches the broken gateway
  const json inc = OpenIncidentWith(gw, "shop", "dns", "east");
  INFO("incident: " << inc.dump());
  CHECK(inc["regions"] == json{"west"});
  CHECK(inc["evidence"]["failing_regions"] == json{"west"});
  CHECK(inc["evidence"]["healthy_regions"] == json{"east"});
  const std::string summary = inc["summary"];
  CHECK(summary.find("resolved addresses changed in west at onset (127.0.0.1 -> 127.0.0.2)") != std::string::npos);
  REQUIRE_MESSAGE(WaitFor([&] { return !FiringText(hook).empty(); }, 30s), gw.Log());
  const std::string firing = FiringText(hook);
  MESSAGE("dns chat message (Slack):\n" << firing);
  CHECK(firing.find("dns") != std::string::npos);
  CHECK(firing.find("127.0.0.1 -&gt; 127.0.0.2") != std::string::npos);  // Slack escapes '>' as &gt;
  CHECK(site.west_dns.QueryCount(site.name) >= 2);
}

TEST_CASE("Incident e2e: failing from one region, healthy from the other -> regional, naming the region") {
  testing::TempDir dir;
  TwoRegionSite site(dir);
  site.west_dns.SetAnswer(site.name, {"127.0.0.2"});  // west sees the broken gateway from the start
  testing::WebhookReceiver hook;
  Daemon gw(dir, site.Config(hook));
  const json inc = OpenIncidentWith(gw, "shop", "regional", "east");
  INFO("incident: " << inc.dump());
  CHECK(inc["evidence"]["failing_regions"] == json{"west"});
  CHECK(inc["evidence"]["healthy_regions"] == json{"east"});
  const std::string summary = inc["summary"];
  CHECK(summary.find("fails in 1/2 regions (west: http_502 from nginx)") != std::string::npos);
  CHECK(summary.find("healthy in east") != std::string::npos);
  REQUIRE_MESSAGE(WaitFor([&] { return !FiringText(hook).empty(); }, 30s), gw.Log());
  const std::string firing = FiringText(hook);
  MESSAGE("regional chat message (Slack):\n" << firing);
  CHECK(firing.find("regional") != std::string::npos);
  CHECK(firing.find("west") != std::string::npos);
}

TEST_CASE("Incident e2e: a region whose egress proxy refuses -> proxy_region, the site stays healthy elsewhere") {
  fleet::RawHttpServer site;
  fleet::ConnectProxy refusing(fleet::ConnectProxy::Mode::kRefuse);
  testing::TempDir dir;
  Daemon gw(dir, Header(dir.File("gw.db")) + "[regions.via-proxy]\nproxy = \"" + refusing.Url() + "\"\n\n" +
                     "[[monitors]]\nname = \"shop\"\nurl = \"" + site.Url("/healthz") +
                     "\"\nregions = [\"local\", \"via-proxy\"]\n");
  const json inc = OpenIncidentWith(gw, "shop", "proxy_region", "local");
  INFO("incident: " << inc.dump());
  CHECK(inc["evidence"]["failing_regions"] == json{"via-proxy"});
  CHECK(inc["evidence"]["healthy_regions"] == json{"local"});
  CHECK(std::string(inc["summary"]).find("not the site") != std::string::npos);
  CHECK(refusing.ConnectCount() >= 1);
  CHECK(site.RequestCount("/healthz") >= 1);  // the direct region reached the site
}

}  // namespace
}  // namespace gatewatch::daemon
