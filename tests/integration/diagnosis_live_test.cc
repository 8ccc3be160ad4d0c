// The verdicts of docs/alerts-and-diagnosis.md, end to end: REAL gateways (nginx and HAProxy from the Debian
// packages, tests/support/gateways.h) and fleet/ servers on loopback, probed by `gatewatch
// check` in-process (RunCheck, --json parsed), which feeds the live results to the verdict
// engine. Each case asserts the verdict, the exit code, the summary's key words and the
// evidence. Missing nginx/haproxy fail the test (CI installs them). 127.0.0.0/8 only.

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "daemon/check.h"
#include "daemon/cli.h"
#include "fleet/connect_proxy.h"
#include "fleet/dns_server.h"
#include "fleet/pages.h"
#include "fleet/raw_server.h"
#include "fleet/tls_server.h"
#include "tests/support/gateways.h"
#include "tests/support/temp_dir.h"
#include "tests/support/upstream_process.h"

namespace gatewatch::daemon {
namespace {

using namespace std::chrono_literals;
using fleet::Behavior;
using fleet::RawHttpServer;
using nlohmann::json;
using testing::FreePort;
using testing::HaproxyGateway;
using testing::NginxGateway;

struct Checked {
  int code = -1;
  std::string out, err;
  json j;  // the --json object (null for human output)

  std::string Verdict() const { return j.value("verdict", ""); }
  std::string Summary() const { return j.value("summary", ""); }
  const json& Evidence() const { return j.at("evidence"); }
  const json& Target() const { return j.at("target"); }
  // evidence.upstreams[] entry called `name`; REQUIREs it exists.
  json Upstream(const std::string& name) const {
    for (const json& u : Evidence().at("upstreams")) {
      if (u.value("name", "") == name) return u;
    }
    FAIL("no upstream " << name << " in the evidence");
    return nullptr;
  }
};

struct Args {
  std::string url;
  std::vector<std::string> upstreams{};
  std::vector<std::string> regions{};
  std::optional<std::string> config{};
  std::optional<std::string> ca_file{};
  bool json_output = true;
};

// `gatewatch check` in-process; every probe gives up after 5 s.
Checked Check(const Args& a) {
  CheckOptions o;
  o.url = a.url;
  o.upstreams = a.upstreams;
  o.regions = a.regions;
  o.config = a.config;
  o.ca_file = a.ca_file;
  o.timeout = 5s;
  o.json = a.json_output;
  std::ostringstream out, err;
  Checked c;
  c.code = RunCheck(o, out, err);
  c.out = out.str();
  c.err = err.str();
  if (a.json_output) {
    c.j = json::parse(c.out, nullptr, /*allow_exceptions=*/false);
    REQUIRE_MESSAGE(c.j.is_object(), "not a JSON object on stdout:\n"
                                         << c.out << "\nstderr:\n"
                                         << c.err);
  }
  return c;
}

bool Contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

// The name check gives an upstream at 127.0.0.1:port (CheckName of "http://127.0.0.1:P/").
std::string Name(int port) { return "127.0.0.1:" + std::to_string(port); }

#define INFO_RUN(c) \
  INFO("exit " << (c).code << "\nstdout:\n" << (c).out << "\nstderr:\n" << (c).err)

}  // namespace

TEST_CASE("Diagnosis live: upstream killed behind nginx is upstream_down (502)") {
  testing::TempDir dir;
  testing::UpstreamProcess upstream(dir);
  NginxGateway nginx({{.location = "/", .servers = {static_cast<uint16_t>(upstream.port())}}});
  INFO("nginx log:\n" << nginx.Log());
  const std::string name = Name(upstream.port());

  const Checked before = Check({nginx.Url("/"), {upstream.Url("/")}});
  INFO_RUN(before);
  CHECK(before.Verdict() == "healthy");
  CHECK(before.code == kExitOk);

  upstream.Kill();
  const Checked c = Check({nginx.Url("/"), {upstream.Url("/")}});
  INFO_RUN(c);
  CHECK(c.code == kExitFailed);
  CHECK(c.Verdict() == "upstream_down");
  CHECK(c.j.value("healthy", true) == false);
  CHECK(c.Target().value("outcome", "") == "http_502");
  CHECK(c.Target().value("emitter", "") == "nginx");
  CHECK(Contains(c.Summary(), "upstream " + name + " refuses connections (connect_refused)"));
  CHECK(Contains(c.Summary(), "gateway nginx answers 502"));
  const json u = c.Upstream(name);
  CHECK(u.value("state", "") == "failing");
  CHECK(u.at("latest").value("outcome", "") == "connect_refused");
  CHECK(c.Evidence().at("failing_regions") == json{"local"});
  CHECK(c.Evidence().at("emitters").value("nginx", 0) == 1);
}

TEST_CASE("Diagnosis live: upstream killed behind HAProxy is upstream_down (503)") {
  testing::TempDir dir;
  testing::UpstreamProcess upstream(dir);
  // retries 0: HAProxy waits about a second before each retry of a refused connect; one
  // attempt gives the same 503 at once (the probe's 5 s stay far away).
  HaproxyGateway haproxy({{.path_prefix = "",
                           .servers = {static_cast<uint16_t>(upstream.port())},
                           .directives = "retries 0"}});
  INFO("haproxy log:\n" << haproxy.Log());
  const std::string name = Name(upstream.port());
  upstream.Kill();

  const Checked c = Check({haproxy.Url("/"), {upstream.Url("/")}});
  INFO_RUN(c);
  CHECK(c.code == kExitFailed);
  CHECK(c.Verdict() == "upstream_down");
  CHECK(c.Target().value("outcome", "") == "http_503");
  CHECK(c.Target().value("emitter", "") == "haproxy");
  CHECK(Contains(c.Summary(), "upstream " + name + " refuses connections"));
  CHECK(Contains(c.Summary(), "gateway haproxy answers 503"));
  CHECK(c.Upstream(name).value("state", "") == "failing");
}

TEST_CASE(
    "Diagnosis live: nginx pointed at a wrong port with a healthy upstream is gateway_fault") {
  RawHttpServer upstream;
  NginxGateway nginx({{.location = "/", .servers = {FreePort()}}});  // misconfigured
  INFO("nginx log:\n" << nginx.Log());
  const std::string name = Name(upstream.port());

  const Checked c = Check({nginx.Url("/"), {upstream.Url("/")}});
  INFO_RUN(c);
  CHECK(c.code == kExitFailed);
  CHECK(c.Verdict() == "gateway_fault");
  CHECK(c.Target().value("outcome", "") == "http_502");
  CHECK(Contains(c.Summary(), "gateway nginx answers 502"));
  CHECK(Contains(c.Summary(), "while upstream " + name + " is healthy"));
  CHECK(c.Upstream(name).value("state", "") == "healthy");
  CHECK(c.Upstream(name).at("latest").value("outcome", "") == "ok");
  CHECK(upstream.RequestCount() >= 1);  // the upstream really answered check's probe
}

TEST_CASE(
    "Diagnosis live: one of two upstreams dead behind nginx's pool is partial_upstream_failure") {
  RawHttpServer alive, dead;
  NginxGateway nginx(
      {{.location = "/",
        .servers = {static_cast<uint16_t>(alive.port()), static_cast<uint16_t>(dead.port())}}});
  INFO("nginx log:\n" << nginx.Log());
  REQUIRE(dead.SetRefusing(true));
  const std::vector<std::string> ups = {alive.Url("/"), dead.Url("/")};

  // Round robin: of two requests at least one goes to the dead server first; nginx retries
  // the next server, so the gateway answers 200 every time and only the upstreams tell.
  for (int round = 0; round < 2; ++round) {
    CAPTURE(round);
    const Checked c = Check({nginx.Url("/"), ups});
    INFO_RUN(c);
    CHECK(c.Verdict() == "partial_upstream_failure");
    CHECK(c.code == kExitFailed);  // although the gateway answered 200
    CHECK(c.Target().value("outcome", "") == "ok");
    CHECK(c.Target().value("http_status", 0) == 200);
    CHECK(Contains(c.Summary(), "1/2 upstreams failing"));
    CHECK(Contains(c.Summary(), "upstream " + Name(dead.port()) + " refuses connections"));
    CHECK(Contains(c.Summary(), "gateway still healthy"));
    CHECK(c.Upstream(Name(dead.port())).value("state", "") == "failing");
    CHECK(c.Upstream(Name(alive.port())).value("state", "") == "healthy");
    CHECK(c.Evidence().at("failing_regions").empty());
  }
  CHECK(Contains(nginx.Log(), "Connection refused"));  // nginx did try the dead server
}

TEST_CASE("Diagnosis live: upstream slower than nginx's read timeout is upstream_slow (504)") {
  RawHttpServer upstream(Behavior::SlowHeaders(2s));
  NginxGateway nginx({{.location = "/",
                       .servers = {static_cast<uint16_t>(upstream.port())},
                       .directives = "proxy_read_timeout 1s;"}});
  INFO("nginx log:\n" << nginx.Log());
  const std::string name = Name(upstream.port());

  const Checked c = Check({nginx.Url("/"), {upstream.Url("/")}});
  INFO_RUN(c);
  CHECK(c.code == kExitFailed);
  CHECK(c.Verdict() == "upstream_slow");
  CHECK(c.Target().value("outcome", "") == "http_504");
  CHECK(c.Target().value("reason", "") == "upstream_timeout");
  CHECK(Contains(c.Summary(), "gateway nginx answers 504"));
  CHECK(Contains(c.Summary(), "slowest " + name));
  CHECK(c.Evidence().value("slowest_upstream", "") == name);
  const json u = c.Upstream(name);
  CHECK(u.value("state", "") == "healthy");
  // The upstream answered after its 2 s delay: slower than the gateway's 1 s (sanity bound).
  CHECK(u.value("max_total_ms", 0.0) >= 1000.0);
}

TEST_CASE(
    "Diagnosis live: a garbage-speaking upstream is named by HAProxy's 502 and nginx's HTTP/0.9") {
  RawHttpServer upstream(Behavior::Garbage());
  const std::string name = Name(upstream.port());

  SUBCASE("HAProxy: 502 -> upstream_down") {
    HaproxyGateway haproxy(
        {{.path_prefix = "", .servers = {static_cast<uint16_t>(upstream.port())}}});
    INFO("haproxy log:\n" << haproxy.Log());
    const Checked c = Check({haproxy.Url("/"), {upstream.Url("/")}});
    INFO_RUN(c);
    CHECK(c.code == kExitFailed);
    CHECK(c.Target().value("outcome", "") == "http_502");
    CHECK(c.Target().value("reason", "") == "unknown");
    CHECK(c.Verdict() == "upstream_down");
    CHECK(Contains(c.Summary(),
                   "upstream " + name + " answers with invalid HTTP (malformed_response)"));
    CHECK(Contains(c.Summary(), "gateway haproxy answers 502"));
  }
  SUBCASE("nginx: passed through as HTTP/0.9 -> malformed_response, relayed -> upstream_down") {
    NginxGateway nginx({{.location = "/", .servers = {static_cast<uint16_t>(upstream.port())}}});
    INFO("nginx log:\n" << nginx.Log());
    const Checked c = Check({nginx.Url("/"), {upstream.Url("/")}});
    INFO_RUN(c);
    CHECK(c.code == kExitFailed);
    CHECK(c.Target().value("outcome", "") == "malformed_response");
    CHECK(c.Verdict() == "upstream_down");
    CHECK(Contains(c.Summary(), "upstream " + name + " answers with invalid HTTP"));
    CHECK(Contains(c.Summary(), "gateway shows malformed_response"));
  }
  CHECK(upstream.RequestCount() >= 1);
}

TEST_CASE("Diagnosis live: a region whose CONNECT proxy refuses is proxy_region, not the site") {
  RawHttpServer site;
  fleet::ConnectProxy refusing(fleet::ConnectProxy::Mode::kRefuse);
  testing::TempDir dir;
  const std::string config =
      dir.Write("gw.toml", "[regions.via-proxy]\nproxy = \"" + refusing.Url() + "\"\n");

  SUBCASE("only the proxied region") {
    const Checked c = Check({.url = site.Url("/"), .regions = {"via-proxy"}, .config = config});
    INFO_RUN(c);
    CHECK(c.code == kExitFailed);
    CHECK(c.Verdict() == "proxy_region");
    CHECK(c.Target().value("outcome", "") == "proxy_error");
    CHECK(c.Target().value("region", "") == "via-proxy");
    CHECK(Contains(c.Summary(), "egress proxy fails (proxy_error) in 1/1 regions (via-proxy)"));
    CHECK(Contains(c.Summary(), "not the site"));
    CHECK(site.RequestCount() == 0);
  }
  SUBCASE("beside a direct region that sees the site healthy") {
    const Checked c =
        Check({.url = site.Url("/"), .regions = {"local", "via-proxy"}, .config = config});
    INFO_RUN(c);
    CHECK(c.Verdict() == "proxy_region");
    CHECK(c.j.at("regions") == json{"local", "via-proxy"});
    CHECK(c.Evidence().at("failing_regions") == json{"via-proxy"});
    CHECK(c.Evidence().at("healthy_regions") == json{"local"});
    REQUIRE(c.j.at("other_regions").size() == 1);
    CHECK(c.j.at("other_regions")[0].at("target").value("outcome", "") == "proxy_error");
    CHECK(c.Target().value("outcome", "") == "ok");
    CHECK(site.RequestCount() >= 1);
  }
  CHECK(refusing.ConnectCount() >= 1);
}

TEST_CASE("Diagnosis live: two regions with their own resolvers: regional, and NXDOMAIN is dns") {
  RawHttpServer upstream;
  const uint16_t dead = FreePort();
  // One nginx, two addresses: 127.0.0.1 proxies to the healthy upstream, 127.0.0.2 (the broken
  // gateway one region's resolver points at) to a dead port.
  NginxGateway::Options options;
  options.routes = {{.location = "/", .servers = {static_cast<uint16_t>(upstream.port())}}};
  options.http_extra =
      "server {\n  listen 127.0.0.2:@PORT@;\n  location / { proxy_pass http://127.0.0.1:" +
      std::to_string(dead) + "; }\n}\n";
  NginxGateway nginx(options);
  INFO("nginx log:\n" << nginx.Log());
  fleet::DnsServer east_dns, west_dns;
  east_dns.SetAnswer("gw.gatewatch.test", {"127.0.0.1"});
  testing::TempDir dir;
  const std::string config =
      dir.Write("gw.toml", "[regions.east]\ndns_servers = [\"" + east_dns.Address() + "\"]\n" +
                               "[regions.west]\ndns_servers = [\"" + west_dns.Address() + "\"]\n");
  const std::string host = "gw.gatewatch.test:" + std::to_string(nginx.port());
  const Args args{.url = "http://" + host + "/",
                  .upstreams = {upstream.Url("/")},
                  .regions = {"east", "west"},
                  .config = config};

  SUBCASE("west resolves to the broken gateway -> regional naming west") {
    west_dns.SetAnswer("gw.gatewatch.test", {"127.0.0.2"});
    const Checked c = Check(args);
    INFO_RUN(c);
    CHECK(c.code == kExitFailed);
    CHECK(c.Verdict() == "regional");
    CHECK(Contains(c.Summary(), host + " fails in 1/2 regions (west: http_502 from nginx)"));
    CHECK(Contains(c.Summary(), "healthy in east"));
    CHECK(c.Evidence().at("failing_regions") == json{"west"});
    CHECK(c.Evidence().at("healthy_regions") == json{"east"});
    CHECK(c.Evidence().at("resolved_sets").size() == 2);
    CHECK(c.Target().value("outcome", "") == "ok");  // east, the first region
    CHECK(c.j.at("other_regions")[0].at("target").value("remote_ip", "") == "127.0.0.2");
  }
  SUBCASE("west answers NXDOMAIN -> dns") {
    west_dns.SetNxdomain("gw.gatewatch.test");
    const Checked c = Check(args);
    INFO_RUN(c);
    CHECK(c.code == kExitFailed);
    CHECK(c.Verdict() == "dns");
    CHECK(Contains(c.Summary(), host + " does not resolve (dns_error) in 1/2 regions"));
    CHECK(c.Evidence().at("failing_regions") == json{"west"});
    CHECK(c.j.at("other_regions")[0].at("target").value("outcome", "") == "dns_error");
    CHECK(Contains(c.j.at("other_regions")[0].at("target").value("detail", ""), "NXDOMAIN"));
  }
  CHECK(west_dns.QueryCount("gw.gatewatch.test") >= 1);
  CHECK(east_dns.QueryCount("gw.gatewatch.test") >= 1);
}

TEST_CASE("Diagnosis live: an expired certificate is tls, with the certificate facts") {
  fleet::TestCa ca;
  fleet::TlsServerOptions options;
  fleet::TlsServer valid(ca, options);
  options.leaf = fleet::LeafKind::kExpired;
  fleet::TlsServer expired(ca, options);

  const Checked good = Check({.url = valid.Url("/"), .ca_file = ca.CaFile()});
  INFO_RUN(good);
  CHECK(good.Verdict() == "healthy");  // the CA is trusted: only the expiry fails below

  const Checked c = Check({.url = expired.Url("/"), .ca_file = ca.CaFile()});
  INFO_RUN(c);
  CHECK(c.code == kExitFailed);
  CHECK(c.Verdict() == "tls");
  CHECK(c.Target().value("outcome", "") == "tls_cert_invalid");
  CHECK(Contains(c.Summary(), "TLS fails (tls_cert_invalid) in 1/1 regions"));
  CHECK(Contains(c.Summary(), " expired "));
  const json& tls = c.Evidence().at("tls");
  REQUIRE(tls.is_object());
  CHECK(tls.value("region", "") == "local");
  CHECK_FALSE(tls.value("subject", "").empty());
  CHECK(Contains(tls.value("issuer", ""), "gatewatch test CA"));
  REQUIRE(tls.at("earliest_expiry").is_string());
  CHECK(tls.at("earliest_expiry").get<std::string>() <
        c.Target().value("started_at", ""));  // RFC 3339 UTC strings compare as times
}

TEST_CASE("Diagnosis live: Cloudflare's 522 origin-error page is cdn_origin") {
  RawHttpServer edge(Behavior::Raw(fleet::pages::CloudflareBranded(522)));
  const Checked c = Check({edge.Url("/")});
  INFO_RUN(c);
  CHECK(c.code == kExitFailed);
  CHECK(c.Verdict() == "cdn_origin");
  CHECK(c.Target().value("http_status", 0) == 522);
  CHECK(c.Target().value("emitter", "") == "cloudflare");
  CHECK(Contains(c.Summary(), "cloudflare cannot reach the origin: answers 522"));
}

TEST_CASE("Diagnosis live: healthy gateway and upstream are healthy, exit 0") {
  RawHttpServer upstream;
  NginxGateway nginx({{.location = "/", .servers = {static_cast<uint16_t>(upstream.port())}}});
  INFO("nginx log:\n" << nginx.Log());
  const std::string name = Name(upstream.port());

  SUBCASE("--json") {
    const Checked c = Check({nginx.Url("/"), {upstream.Url("/")}});
    INFO_RUN(c);
    CHECK(c.code == kExitOk);
    CHECK(c.Verdict() == "healthy");
    CHECK(c.j.value("healthy", false) == true);
    CHECK(c.Summary() == Name(nginx.port()) + " healthy in 1/1 regions; 1/1 upstreams healthy");
    CHECK(c.Upstream(name).value("state", "") == "healthy");
    CHECK(c.j.at("upstreams")[0].value("name", "") == name);
    CHECK(c.j.at("upstreams")[0].value("url", "") == upstream.Url("/"));
    CHECK(c.Evidence().value("failures", -1) == 0);
  }
  SUBCASE("human output: the verdict, the summary and the upstream's state") {
    const Checked c =
        Check({.url = nginx.Url("/"), .upstreams = {upstream.Url("/")}, .json_output = false});
    INFO_RUN(c);
    CHECK(c.code == kExitOk);
    CHECK(Contains(c.out, "\nverdict   healthy\n"));
    CHECK(Contains(c.out, "\nsummary   " + Name(nginx.port()) + " healthy in 1/1 regions"));
    CHECK(Contains(c.out, "\nupstream  " + name + "  healthy  ok (200) in local"));
    CHECK(Contains(c.out, "\nhealthy   local\n"));
  }
}

}  // namespace gatewatch::daemon
