#include "probes/verdict.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>

namespace gatewatch::probes {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using Ups = std::map<std::string, std::vector<ProbeResult>>;

// t = 0 is 2026-09-21T14:13:20Z; the tests' "now" is t = 300 and the window 600 s.
SystemTime At(int seconds) { return SystemTime(std::chrono::seconds(1'790'000'000 + seconds)); }

// A confirmed result of series `monitor`.
ProbeResult R(std::string monitor, std::string region, int t, Outcome outcome, int status = 0,
              Emitter emitter = Emitter::kNone, Reason reason = Reason::kUnknown) {
  ProbeResult r;
  r.monitor = std::move(monitor);
  r.region = std::move(region);
  r.started_at = At(t);
  r.confirmed = true;
  r.outcome = outcome;
  r.http_status = status;
  r.emitter = emitter;
  r.reason = reason;
  r.phases.total = 40ms;
  return r;
}

ProbeResult Ok(std::string region, int t, std::string monitor = "shop") {
  return R(std::move(monitor), std::move(region), t, Outcome::kOk, 200);
}
ProbeResult Fail(std::string region, int t, Outcome o, int status = 0, Emitter e = Emitter::kNone,
                 Reason reason = Reason::kUnknown) {
  return R("shop", std::move(region), t, o, status, e, reason);
}
ProbeResult Nginx502(std::string region, int t) {
  ProbeResult r = Fail(std::move(region), t, Outcome::kHttp502, 502, Emitter::kNginx);
  r.headers = {{"server", "nginx/1.22.1"}};
  r.body_snippet = "<html>\r\n<head><title>502 Bad Gateway</title></head>";
  return r;
}
ProbeResult Up(std::string name, std::string region, int t, Outcome o, int status = 0) {
  return R(std::move(name), std::move(region), t, o, status);
}
ProbeResult UpOk(std::string name, std::string region, int t) {
  return Up(std::move(name), std::move(region), t, Outcome::kOk, 200);
}

template <typename F>
ProbeResult With(ProbeResult r, F change) {
  change(r);
  return r;
}

DiagnosisInput In(std::vector<ProbeResult> results, Ups upstreams = {}, bool alert_fired = false) {
  DiagnosisInput in;
  in.monitor = "shop";
  in.results = std::move(results);
  in.upstreams = std::move(upstreams);
  in.now = At(300);
  in.window = 600s;
  in.alert_fired = alert_fired;
  return in;
}

json Parsed(const Diagnosis& d) { return json::parse(EvidenceToJson(d)); }

struct Case {
  const char* name;
  DiagnosisInput input;
  Verdict want;
  std::vector<std::string> summary_has;
  std::function<void(const json&)> evidence;
};

// Results of the blip used twice: eu fails at 60 and 90, us at 70; the upstream refuses
// connections meanwhile and is back (140 in eu, 95 in us) before the gateway's next probe.
DiagnosisInput HealedIncident(bool alert_fired) {
  return In(
      {Ok("eu", 0), Nginx502("eu", 60), Nginx502("eu", 90), Ok("eu", 150), Ok("us", 0),
       Nginx502("us", 70), Ok("us", 100)},
      {{"shop-api-1",
        {Up("shop-api-1", "eu", 61, Outcome::kConnectRefused), UpOk("shop-api-1", "eu", 140),
         Up("shop-api-1", "us", 71, Outcome::kConnectRefused), UpOk("shop-api-1", "us", 95)}}},
      alert_fired);
}

std::vector<Case> Cases() {
  const auto refused = Outcome::kConnectRefused;
  std::vector<Case> cases;
  cases.push_back(
      {"proxy_region over regional: the failing region's egress proxy fails, the other is healthy",
       In({Ok("eu", 0), Fail("eu", 60, Outcome::kProxyError), Ok("us", 0), Ok("us", 60)}),
       Verdict::kProxyRegion,
       {"egress proxy fails (proxy_error) in 1/2 regions (eu) since 2026-09-21T14:14:20Z"},
       [](const json& j) {
         CHECK(j["failing_regions"] == json{"eu"});
         CHECK(j["healthy_regions"] == json{"us"});
         CHECK(j["outcomes"] == json{{"proxy_error", 1}});
       }});
  cases.push_back({"proxy_region over dns: a region that showed dns_error now fails at its proxy",
                   In({Fail("eu", 30, Outcome::kDnsError), Fail("eu", 60, Outcome::kProxyError),
                       Fail("us", 60, Outcome::kProxyError)}),
                   Verdict::kProxyRegion,
                   {"2/2 regions (eu, us) since 2026-09-21T14:13:50Z"},
                   [](const json& j) {
                     CHECK(j["outcomes"] == json{{"dns_error", 1}, {"proxy_error", 2}});
                     CHECK(j["failing_since"] == "2026-09-21T14:13:50.000Z");
                   }});
  cases.push_back({"dns over proxy_region: another region cannot resolve the name",
                   In({Fail("eu", 60, Outcome::kProxyError), Fail("us", 60, Outcome::kDnsError)}),
                   Verdict::kDns,
                   {"shop does not resolve (dns_error) in 2/2 regions since 2026-09-21T14:14:20Z"},
                   [](const json& j) { CHECK(j["outcomes"]["dns_error"] == 1); }});
  cases.push_back({"dns over regional: one region cannot resolve, the other is healthy",
                   In({Ok("eu", 0), Fail("eu", 60, Outcome::kDnsError), Ok("us", 60)}),
                   Verdict::kDns,
                   {"(dns_error) in 1/2 regions"},
                   [](const json& j) { CHECK(j["failing_regions"] == json{"eu"}); }});
  cases.push_back(
      {"dns over upstream_down: the resolved address set changed at onset",
       In({With(Ok("eu", 0), [](ProbeResult& r) { r.resolved = {"10.0.0.1"}; }),
           With(Nginx502("eu", 60), [](ProbeResult& r) { r.resolved = {"10.0.0.9"}; })},
          {{"shop-api-1", {Up("shop-api-1", "eu", 61, refused)}}}),
       Verdict::kDns,
       {"resolved addresses changed in eu at onset (10.0.0.1 -> 10.0.0.9)", "http_502 from nginx"},
       [](const json& j) {
         CHECK(j["dns_change"]["region"] == "eu");
         CHECK(j["dns_change"]["before"] == json{"10.0.0.1"});
         CHECK(j["dns_change"]["after"] == json{"10.0.0.9"});
         CHECK(j["dns_change"]["at"] == "2026-09-21T14:14:20.000Z");
         REQUIRE(j["resolved_sets"].size() == 2);
         CHECK(j["resolved_sets"][0]["addresses"] == json{"10.0.0.1"});
         CHECK(j["resolved_sets"][0]["regions"] == json{"eu"});
       }});
  cases.push_back({"tls over regional: the certificate fails in one region only",
                   In({Ok("eu", 0),
                       With(Fail("eu", 60, Outcome::kTlsCertInvalid),
                            [](ProbeResult& r) {
                              r.tls.subject = "CN=shop.example";
                              r.tls.issuer = "CN=Test CA";
                              r.tls.earliest_expiry = At(-100);
                            }),
                       Ok("us", 60)}),
                   Verdict::kTls,
                   {"TLS fails (tls_cert_invalid) in 1/2 regions",
                    "certificate CN=shop.example expired 2026-09-21T14:11:40Z"},
                   [](const json& j) {
                     CHECK(j["tls"]["region"] == "eu");
                     CHECK(j["tls"]["subject"] == "CN=shop.example");
                     CHECK(j["tls"]["issuer"] == "CN=Test CA");
                     CHECK(j["tls"]["earliest_expiry"] == "2026-09-21T14:11:40.000Z");
                   }});
  cases.push_back(
      {"regional over upstream_down: one region fails, the other is healthy",
       In({Ok("eu", 0), Nginx502("eu", 60), Ok("us", 0), Ok("us", 60)},
          {{"shop-api-1",
            {Up("shop-api-1", "eu", 61, refused), Up("shop-api-1", "us", 61, refused)}}}),
       Verdict::kRegional,
       {"shop fails in 1/2 regions (eu: http_502 from nginx) since 2026-09-21T14:14:20Z; healthy "
        "in us"},
       [](const json& j) {
         CHECK(j["failing_regions"] == json{"eu"});
         CHECK(j["healthy_regions"] == json{"us"});
         CHECK(j["regions"][0]["failing_since"] == "2026-09-21T14:14:20.000Z");
         CHECK(j["regions"][1]["failing_since"].is_null());
       }});
  cases.push_back(
      {"upstream_down: nginx 502 and the only upstream refuses connections in every region",
       In({Ok("eu", 0), Nginx502("eu", 60), Nginx502("eu", 90), Ok("us", 0), Nginx502("us", 65)},
          {{"shop-api-1",
            {UpOk("shop-api-1", "eu", 0), Up("shop-api-1", "eu", 61, refused),
             Up("shop-api-1", "eu", 91, refused), UpOk("shop-api-1", "us", 0),
             Up("shop-api-1", "us", 66, refused)}}}),
       Verdict::kUpstreamDown,
       {"upstream shop-api-1 refuses connections (connect_refused) from 2/2 regions since "
        "2026-09-21T14:14:21Z; gateway nginx answers 502"},
       [](const json& j) {
         CHECK(j["results"] == 5);
         CHECK(j["failures"] == 3);
         CHECK(j["emitters"] == json{{"nginx", 3}});
         CHECK(j["reasons"] == json{{"unknown", 3}});
         CHECK(j["sample_headers"]["server"] == "nginx/1.22.1");
         CHECK(j["sample_body"].get<std::string>().find("502 Bad Gateway") != std::string::npos);
         CHECK(j["latest_failure"]["region"] == "eu");
         CHECK(j["latest_failure"]["started_at"] == "2026-09-21T14:14:50.000Z");
         CHECK(j["failing_since"] == "2026-09-21T14:14:20.000Z");
         REQUIRE(j["upstreams"].size() == 1);
         const json& u = j["upstreams"][0];
         CHECK(u["name"] == "shop-api-1");
         CHECK(u["state"] == "failing");
         CHECK(u["regions"] == json{"eu", "us"});
         CHECK(u["latest"]["outcome"] == "connect_refused");
         CHECK(u["latest"]["started_at"] == "2026-09-21T14:14:51.000Z");
         CHECK(u["failing_since"] == "2026-09-21T14:14:21.000Z");
         CHECK(u["results"] == 5);
         CHECK(u["failures"] == 3);
       }});
  cases.push_back(
      {"upstream_down over upstream_slow: a 504 while every upstream times out",
       In({Fail("eu", 60, Outcome::kHttp504, 504, Emitter::kNginx, Reason::kUpstreamTimeout)},
          {{"shop-api-1", {Up("shop-api-1", "eu", 61, Outcome::kTimeoutTtfb)}}}),
       Verdict::kUpstreamDown,
       {"upstream shop-api-1 does not answer in time (timeout_ttfb) from 1/1 regions",
        "gateway nginx answers 504 (upstream_timeout)"},
       [](const json& j) {
         CHECK(j["upstreams"][0]["latest"]["outcome"] == "timeout_ttfb");
         CHECK(j["slowest_upstream"].is_null());
       }});
  cases.push_back(
      {"upstream_down: HAProxy 503 with both upstreams down",
       In({Fail("eu", 60, Outcome::kHttp503, 503, Emitter::kHaproxy, Reason::kNoHealthyUpstream)},
          {{"shop-api-1", {Up("shop-api-1", "eu", 61, refused)}},
           {"shop-api-2", {Up("shop-api-2", "eu", 61, Outcome::kConnectTimeout)}}}),
       Verdict::kUpstreamDown,
       {"all 2 upstreams fail: shop-api-1 (connect_refused), shop-api-2 (connect_timeout) from 1/1 "
        "regions",
        "gateway haproxy answers 503 (no_healthy_upstream)"},
       [](const json& j) {
         CHECK(j["upstreams"][1]["name"] == "shop-api-2");
         CHECK(j["upstreams"][1]["latest"]["outcome"] == "connect_timeout");
       }});
  cases.push_back({"upstream_down: nginx relays a garbage-speaking upstream as malformed_response",
                   In({Fail("eu", 60, Outcome::kMalformedResponse)},
                      {{"shop-api-1", {Up("shop-api-1", "eu", 61, Outcome::kMalformedResponse)}}}),
                   Verdict::kUpstreamDown,
                   {"upstream shop-api-1 answers with invalid HTTP (malformed_response)",
                    "gateway shows malformed_response"},
                   [](const json& j) {
                     CHECK(j["latest_failure"]["http_status"] == 0);
                     CHECK(j["upstreams"][0]["latest"]["outcome"] == "malformed_response");
                   }});
  cases.push_back(
      {"connection_failure, not upstream_down: malformed_response at the gateway, the upstream is "
       "healthy",
       In({Fail("eu", 60, Outcome::kMalformedResponse)},
          {{"shop-api-1", {UpOk("shop-api-1", "eu", 61)}}}),
       Verdict::kConnectionFailure,
       {"shop accepts connections but answers with invalid HTTP (malformed_response) in 1/1 "
        "regions since 2026-09-21T14:14:20Z"},
       [](const json& j) { CHECK(j["upstreams"][0]["state"] == "healthy"); }});
  cases.push_back(
      {"upstream_slow: nginx 504 while the upstreams answer, the slowest named",
       In({Fail("eu", 60, Outcome::kHttp504, 504, Emitter::kNginx, Reason::kUpstreamTimeout),
           Fail("us", 60, Outcome::kHttp504, 504, Emitter::kNginx, Reason::kUpstreamTimeout)},
          {{"shop-api-1",
            {With(UpOk("shop-api-1", "eu", 61),
                  [](ProbeResult& r) {
                    r.phases.total = 3200ms;
                    r.phases.processing = 3100ms;
                  }),
             With(UpOk("shop-api-1", "us", 61), [](ProbeResult& r) { r.phases.total = 900ms; })}},
           {"shop-api-2",
            {With(UpOk("shop-api-2", "eu", 62), [](ProbeResult& r) { r.phases.total = 200ms; })}}}),
       Verdict::kUpstreamSlow,
       {"gateway nginx answers 504 (upstream_timeout) in 2/2 regions since 2026-09-21T14:14:20Z "
        "while upstreams answer; slowest shop-api-1 took 3s200ms (processing 3s100ms)"},
       [](const json& j) {
         CHECK(j["slowest_upstream"] == "shop-api-1");
         CHECK(j["upstreams"][0]["max_total_ms"] == 3200.0);
         CHECK(j["upstreams"][0]["max_processing_ms"] == 3100.0);
         CHECK(j["upstreams"][1]["max_total_ms"] == 200.0);
         CHECK(j["upstreams"][1]["max_processing_ms"].is_null());
       }});
  cases.push_back(
      {"partial_upstream_failure with a healthy gateway (nginx retries the next server)",
       In({Ok("eu", 0), Ok("eu", 60), Ok("us", 60)},
          {{"shop-api-1",
            {UpOk("shop-api-1", "eu", 0), Up("shop-api-1", "eu", 50, refused),
             Up("shop-api-1", "us", 55, refused)}},
           {"shop-api-2", {UpOk("shop-api-2", "eu", 50)}}}),
       Verdict::kPartialUpstreamFailure,
       {"1/2 upstreams failing: upstream shop-api-1 refuses connections (connect_refused) since "
        "2026-09-21T14:14:10Z; gateway still healthy in 2/2 regions"},
       [](const json& j) {
         CHECK(j["failures"] == 0);
         CHECK(j["failing_regions"].empty());
         CHECK(j["upstreams"][0]["state"] == "failing");
         CHECK(j["upstreams"][0]["regions"] == json{"eu", "us"});
         CHECK(j["upstreams"][1]["state"] == "healthy");
       }});
  cases.push_back(
      {"partial_upstream_failure over gateway_fault: nginx 502 with one of two upstreams failing",
       In({Nginx502("eu", 60)}, {{"shop-api-1", {Up("shop-api-1", "eu", 61, refused)}},
                                 {"shop-api-2", {UpOk("shop-api-2", "eu", 61)}}}),
       Verdict::kPartialUpstreamFailure,
       {"1/2 upstreams failing: upstream shop-api-1 refuses connections",
        "gateway nginx answers 502 in 1/1 regions"},
       [](const json& j) { CHECK(j["failing_regions"] == json{"eu"}); }});
  cases.push_back(
      {"partial_upstream_failure over transient: a healed blip while an upstream is still down",
       In({Ok("eu", 0), Nginx502("eu", 60), Ok("eu", 120)},
          {{"shop-api-1", {Up("shop-api-1", "eu", 110, refused)}},
           {"shop-api-2", {UpOk("shop-api-2", "eu", 110)}}}),
       Verdict::kPartialUpstreamFailure,
       {"1/2 upstreams failing", "gateway still healthy in 1/1 regions"},
       [](const json& j) { CHECK(j["failures"] == 1); }});
  cases.push_back(
      {"upstream_down, not partial: the gateway still serves although every linked upstream fails",
       In({Ok("eu", 60)}, {{"shop-api-1", {Up("shop-api-1", "eu", 50, refused)}}}),
       Verdict::kUpstreamDown,
       {"upstream shop-api-1 refuses connections (connect_refused) since 2026-09-21T14:14:10Z; the "
        "gateway still answers in 1/1 regions"},
       [](const json& j) {
         CHECK(j["upstreams"][0]["state"] == "failing");
         CHECK(j["failing_regions"].empty());
       }});
  cases.push_back(
      {"cdn_origin: Cloudflare 522 and no upstreams linked",
       In({Fail("eu", 60, Outcome::kHttp5xx, 522, Emitter::kCloudflare, Reason::kUpstreamTimeout)}),
       Verdict::kCdnOrigin,
       {"cloudflare cannot reach the origin: answers 522 (upstream_timeout) in 1/1 regions since "
        "2026-09-21T14:14:20Z"},
       [](const json& j) {
         CHECK(j["emitters"] == json{{"cloudflare", 1}});
         CHECK(j["reasons"] == json{{"upstream_timeout", 1}});
       }});
  cases.push_back({"cdn_origin: Cloudflare's branded page for a 502 of the origin",
                   In({Fail("eu", 60, Outcome::kHttp502, 502, Emitter::kCloudflareOrigin)}),
                   Verdict::kCdnOrigin,
                   {"the origin answers 502 through cloudflare in 1/1 regions"},
                   [](const json& j) {
                     CHECK(j["emitters"] == json{{"cloudflare_origin", 1}});
                   }});
  cases.push_back({"unknown, not cdn_origin: a Fastly 503 without an origin reason",
                   In({Fail("eu", 60, Outcome::kHttp503, 503, Emitter::kFastly)}),
                   Verdict::kBehindGateway,
                   {"gateway fastly answers 503 (its page does not say why) in 1/1 regions since "
                    "2026-09-21T14:14:20Z: its upstream fails; link the upstream monitors to name "
                    "which"},
                   [](const json& j) {
                     CHECK(j["emitters"] == json{{"fastly", 1}});
                   }});
  cases.push_back(
      {"gateway_fault: nginx 502 while the upstream is healthy from the same regions",
       In({Ok("eu", 0), Nginx502("eu", 60), Nginx502("us", 60)},
          {{"shop-api-1", {UpOk("shop-api-1", "eu", 61), UpOk("shop-api-1", "us", 61)}}}),
       Verdict::kGatewayFault,
       {"gateway nginx answers 502 in 2/2 regions since 2026-09-21T14:14:20Z while upstream "
        "shop-api-1 is healthy: gateway config or its path to the upstream"},
       [](const json& j) {
         CHECK(j["upstreams"][0]["state"] == "healthy");
         CHECK(j["upstreams"][0]["regions"] == json{"eu", "us"});
         CHECK(j["notes"].empty());
       }});
  cases.push_back(
      {"behind_gateway instead of gateway_fault without upstreams",
       In({Ok("eu", 0), Nginx502("eu", 60)}),
       Verdict::kBehindGateway,
       {"gateway nginx answers 502 (its page does not say why) in 1/1 regions since "
        "2026-09-21T14:14:20Z: its upstream fails; link the upstream monitors to name which"},
       [](const json& j) {
         CHECK(j["upstreams"].empty());
         CHECK(j["notes"] == json{"no upstreams linked: the failure is judged from shop's own "
                                  "results; link the monitors behind it to compare"});
       }});
  cases.push_back(
      {"behind_gateway with the reason the page gives",
       In({Fail("eu", 60, Outcome::kHttp502, 502, Emitter::kH2o, Reason::kUpstreamConnectFailed)}),
       Verdict::kBehindGateway,
       {"gateway h2o answers 502 (upstream_connect_failed) in 1/1 regions"},
       [](const json& j) { CHECK(j["reasons"] == json{{"upstream_connect_failed", 1}}); }});
  cases.push_back(
      {"behind_gateway: a 504 whose page names no layer is still a gateway's",
       In({Fail("eu", 60, Outcome::kHttp504, 504, Emitter::kUnknown)}),
       Verdict::kBehindGateway,
       {"shop answers 504 from a layer whose page names neither itself nor the cause"},
       [](const json& j) { CHECK(j["emitters"] == json{{"unknown", 1}}); }});
  cases.push_back({"behind_gateway instead of gateway_fault when the upstream has no results",
                   In({Nginx502("eu", 60)}, {{"shop-api-1", {}}}),
                   Verdict::kBehindGateway,
                   {"its upstream fails; the linked upstreams have no results to tell which"},
                   [](const json& j) {
                     CHECK(j["upstreams"][0]["state"] == "no_data");
                     CHECK(j["upstreams"][0]["latest"].is_null());
                     CHECK(j["notes"] ==
                           json{"upstream shop-api-1 has no confirmed results in the window"});
                   }});
  cases.push_back({"connection_failure: the gateway does not answer in time, its upstream does",
                   In({Fail("eu", 60, Outcome::kTimeoutTtfb)},
                      {{"shop-api-1", {UpOk("shop-api-1", "eu", 61)}}}),
                   Verdict::kConnectionFailure,
                   {"shop accepts connections but does not answer in time (timeout_ttfb) after 40 "
                    "ms in 1/1 regions"},
                   [](const json& j) {
                     CHECK(j["outcomes"] == json{{"timeout_ttfb", 1}});
                   }});
  cases.push_back(
      {"upstream_down: the gateway does not answer in time while its only upstream refuses",
       In({With(Fail("eu", 60, Outcome::kTimeoutTtfb),
                [](ProbeResult& r) { r.phases.total = 1500ms; })},
          {{"shop-api-1", {Up("shop-api-1", "eu", 61, refused)}}}),
       Verdict::kUpstreamDown,
       {"upstream shop-api-1 refuses connections (connect_refused) from 1/1 regions",
        "the gateway does not answer in time (timeout_ttfb) while it waits on the dead upstream"},
       [](const json& j) {
         REQUIRE(j["notes"].size() == 1);
         CHECK(j["notes"][0].get<std::string>().find("still waiting on (or retrying) the dead "
                                                     "upstream") != std::string::npos);
       }});
  cases.push_back(
      {"application_error: the application's own 503, relayed, with its Retry-After",
       In({With(Fail("eu", 60, Outcome::kHttp503, 503, Emitter::kApplication),
                [](ProbeResult& r) { r.headers = {{"retry-after", "120"}}; })}),
       Verdict::kApplicationError,
       {"shop's application answers 503 itself (its own response, not a gateway's error page) in "
        "1/1 regions since 2026-09-21T14:14:20Z; Retry-After: 120"},
       [](const json& j) { CHECK(j["emitters"] == json{{"application", 1}}); }});
  cases.push_back(
      {"not_listening: the target refuses connections",
       In({Ok("eu", 0), Fail("eu", 60, refused)}),
       Verdict::kNotListening,
       {"shop refuses connections (connect_refused) in 1/1 regions since 2026-09-21T14:14:20Z: "
        "nothing listens on that address and port"},
       [](const json& j) { CHECK(j["outcomes"] == json{{"connect_refused", 1}}); }});
  cases.push_back({"network_path: connect timeout (packets dropped)",
                   In({Fail("eu", 60, Outcome::kConnectTimeout)}),
                   Verdict::kNetworkPath,
                   {"shop does not accept connections in time (connect_timeout) in 1/1 regions",
                    "packets are dropped on the way (firewall, security group) or the host is "
                    "down"},
                   [](const json&) {}});
  cases.push_back({"network_path: no route",
                   In({Fail("eu", 60, Outcome::kNetworkUnreachable)}),
                   Verdict::kNetworkPath,
                   {"shop is unreachable (network_unreachable) in 1/1 regions",
                    "no route to the host from here"},
                   [](const json&) {}});
  cases.push_back(
      {"bad_response: an answer the monitor does not expect, with the detail",
       In({With(Fail("eu", 60, Outcome::kHttp4xx, 404),
                [](ProbeResult& r) { r.detail = "status 404 not in expect_status [200]"; })}),
       Verdict::kBadResponse,
       {"shop answers 404 (http_4xx) in 1/1 regions since 2026-09-21T14:14:20Z: it answers, but "
        "not what the monitor expects: status 404 not in expect_status [200]"},
       [](const json&) {}});
  cases.push_back(
      {"unknown: a 503 whose response names no layer",
       In({Fail("eu", 60, Outcome::kHttp503, 503, Emitter::kUnknown)}),
       Verdict::kUnknown,
       {"shop answers 503 in 1/1 regions since 2026-09-21T14:14:20Z, and nothing in the response "
        "(page, headers) tells which layer sent it"},
       [](const json& j) { CHECK(j["emitters"] == json{{"unknown", 1}}); }});
  cases.push_back(
      {"transient: a blip that healed before any alert fired",
       HealedIncident(false),
       Verdict::kTransient,
       {"shop failed 3x in 2/2 regions between 2026-09-21T14:14:20Z and 2026-09-21T14:14:50Z "
        "(http_502); healthy again before any alert fired"},
       [](const json& j) {
         CHECK(j["failing_regions"].empty());
         CHECK(j["as_of"].is_null());
         CHECK(j["first_failure"] == "2026-09-21T14:14:20.000Z");
         CHECK(j["last_failure"] == "2026-09-21T14:14:50.000Z");
       }});
  cases.push_back({"alert fired: the same healed incident keeps its root cause upstream_down",
                   HealedIncident(true),
                   Verdict::kUpstreamDown,
                   {"upstream shop-api-1 refuses connections (connect_refused) from 2/2 regions",
                    "gateway nginx answers 502; healthy again since 2026-09-21T14:15:50Z"},
                   [](const json& j) {
                     CHECK(j["as_of"] == "2026-09-21T14:14:50.000Z");
                     CHECK(j["recovered_at"] == "2026-09-21T14:15:50.000Z");
                     CHECK(j["failing_regions"] == json{"eu", "us"});
                     CHECK(j["upstreams"][0]["state"] == "failing");
                     CHECK(j["ignored"]["outside_window"] == 2);  // the recoveries after the cut
                   }});
  cases.push_back({"healthy: nothing failing",
                   In({Ok("eu", 0), Ok("us", 0)}, {{"shop-api-1", {UpOk("shop-api-1", "eu", 1)}}}),
                   Verdict::kHealthy,
                   {"shop healthy in 2/2 regions; 1/1 upstreams healthy"},
                   [](const json& j) {
                     CHECK(j["failures"] == 0);
                     CHECK(j["latest_failure"].is_null());
                     CHECK(j["healthy_regions"] == json{"eu", "us"});
                   }});
  cases.push_back({"unknown without a confirmed monitor result",
                   In({With(Nginx502("eu", 60), [](ProbeResult& r) { r.confirmed = false; })}),
                   Verdict::kUnknown,
                   {"no confirmed results for shop in the window"},
                   [](const json& j) {
                     CHECK(j["results"] == 0);
                     CHECK(j["ignored"]["unconfirmed"] == 1);
                   }});
  return cases;
}

TEST_CASE("Verdict: the table, one case per row and the precedence between neighbours") {
  std::set<Verdict> seen;
  for (const Case& c : Cases()) {
    INFO(c.name);
    const Diagnosis d = Diagnose(c.input);
    INFO(d.summary);
    CHECK(ToString(d.verdict) == ToString(c.want));
    for (const std::string& part : c.summary_has) {
      INFO(part);
      CHECK(d.summary.find(part) != std::string::npos);
    }
    CHECK(d.summary.size() <= kSummaryMaxBytes);
    CHECK(d.summary.find('\n') == std::string::npos);
    const json j = Parsed(d);
    CHECK(j["verdict"] == ToString(c.want));
    CHECK(j["summary"] == d.summary);
    CHECK(j["monitor"] == "shop");
    CHECK(j["window"]["start"] == "2026-09-21T14:08:20.000Z");
    CHECK(j["window"]["end"] == "2026-09-21T14:18:20.000Z");
    c.evidence(j);
    seen.insert(d.verdict);
  }
  CHECK(seen.size() == AllVerdicts().size());  // every verdict has a row case
}

// A gateway-class failure of `emitter` with `status` that took `total`.
ProbeResult Took(int t, Emitter emitter, int status, std::chrono::milliseconds total) {
  const Outcome o = status == 502 ? Outcome::kHttp502 : Outcome::kHttp503;
  return With(Fail("eu", t, o, status, emitter), [&](ProbeResult& r) { r.phases.total = total; });
}
ProbeResult UpTook(int t, std::chrono::milliseconds total) {
  return With(UpOk("shop-api-1", "eu", t), [&](ProbeResult& r) { r.phases.total = total; });
}

TEST_CASE("Verdict: a gateway that gives up after a constant time before its upstream answers") {
  SUBCASE("Varnish 503 after ~2 s twice, the upstream answers in 4 s: upstream_slow") {
    const Diagnosis d =
        Diagnose(In({Took(60, Emitter::kVarnish, 503, 2010ms), Took(90, Emitter::kVarnish, 503, 2030ms)},
                    {{"shop-api-1", {UpTook(91, 4000ms)}}}));
    INFO(d.summary);
    CHECK(d.verdict == Verdict::kUpstreamSlow);
    CHECK(d.summary ==
          "gateway varnish answers 503 in 1/1 regions since 2026-09-21T14:14:20Z: the gateway gives "
          "up after ~2.0 s; upstream shop-api-1 answers in 4.0 s");
    const json j = Parsed(d);
    CHECK(j["gives_up_after_ms"] == 2030.0);
    CHECK(j["slowest_upstream"] == "shop-api-1");
  }
  SUBCASE("Apache 502 at once: no timer, the upstream is healthy: gateway_fault") {
    const Diagnosis d = Diagnose(
        In({Took(60, Emitter::kApache, 502, 5ms)}, {{"shop-api-1", {UpTook(61, 4000ms)}}}));
    CHECK(d.verdict == Verdict::kGatewayFault);
    CHECK(Parsed(d)["gives_up_after_ms"].is_null());
  }
  SUBCASE("times that vary are no timer: gateway_fault") {
    const Diagnosis d =
        Diagnose(In({Took(60, Emitter::kApache, 502, 2000ms), Took(90, Emitter::kApache, 502, 3100ms)},
                    {{"shop-api-1", {UpTook(91, 4000ms)}}}));
    CHECK(d.verdict == Verdict::kGatewayFault);
  }
  SUBCASE("the upstream answers faster than the gateway gives up: gateway_fault") {
    const Diagnosis d = Diagnose(
        In({Took(60, Emitter::kVarnish, 503, 2000ms)}, {{"shop-api-1", {UpTook(61, 300ms)}}}));
    CHECK(d.verdict == Verdict::kGatewayFault);
  }
  SUBCASE("a 504 in another region is described as a 504, not by the timing looked at first") {
    const Diagnosis d = Diagnose(
        In({Took(60, Emitter::kVarnish, 503, 5000ms),
            With(Fail("us", 60, Outcome::kHttp504, 504, Emitter::kNginx, Reason::kUpstreamTimeout),
                 [](ProbeResult& r) { r.phases.total = 2000ms; })},
           {{"shop-api-1", {UpTook(61, 4000ms)}}}));
    INFO(d.summary);
    CHECK(d.verdict == Verdict::kUpstreamSlow);
    CHECK(d.summary.find("gateway nginx answers 504 (upstream_timeout)") != std::string::npos);
    CHECK(d.summary.find("gives up after") == std::string::npos);
    CHECK(Parsed(d)["gives_up_after_ms"].is_null());
  }
  SUBCASE("the application's own 503 after 2 s is not a gateway giving up") {
    const Diagnosis d = Diagnose(
        In({Took(60, Emitter::kApplication, 503, 2000ms)}, {{"shop-api-1", {UpTook(61, 4000ms)}}}));
    CHECK(d.verdict == Verdict::kApplicationError);
  }
}

TEST_CASE("Verdict: names round-trip and match docs/alerts-and-diagnosis.md") {
  for (const Verdict v : AllVerdicts()) CHECK(VerdictFromString(ToString(v)) == v);
  CHECK(AllVerdicts().size() == 18);
  CHECK(ToString(Verdict::kPartialUpstreamFailure) == "partial_upstream_failure");
  CHECK(ToString(Verdict::kCdnOrigin) == "cdn_origin");
  CHECK_FALSE(VerdictFromString("upstream-down").has_value());
  CHECK_FALSE(VerdictFromString("").has_value());
}

TEST_CASE("Verdict: transient becomes upstream_down as results arrive") {
  DiagnosisInput in =
      In({Ok("eu", 0), Nginx502("eu", 30), Ok("eu", 60)},
         {{"shop-api-1",
           {Up("shop-api-1", "eu", 31, Outcome::kConnectRefused), UpOk("shop-api-1", "eu", 50)}}});
  CHECK(Diagnose(in).verdict == Verdict::kTransient);

  // The gateway fails again; until the upstream's confirmation arrives its last result is
  // healthy, so the gateway is blamed ...
  in.results.push_back(Nginx502("eu", 90));
  CHECK(Diagnose(in).verdict == Verdict::kGatewayFault);
  // ... and the confirmation probe right after the failure settles it.
  in.upstreams["shop-api-1"].push_back(Up("shop-api-1", "eu", 91, Outcome::kConnectRefused));
  const Diagnosis d = Diagnose(in);
  CHECK(d.verdict == Verdict::kUpstreamDown);
  CHECK(d.summary.find("since 2026-09-21T14:14:51Z") != std::string::npos);  // this streak's onset
}

TEST_CASE("Verdict: upstream results are compared with the time of the gateway's failure") {
  // The upstream came back at 75, after the gateway's 502 at 60: at 60 it was down.
  DiagnosisInput in =
      In({Nginx502("eu", 60)},
         {{"shop-api-1",
           {Up("shop-api-1", "eu", 61, Outcome::kConnectRefused), UpOk("shop-api-1", "eu", 75)}}});
  Diagnosis d = Diagnose(in);
  CHECK(d.verdict == Verdict::kUpstreamDown);
  CHECK(Parsed(d)["upstreams"][0]["latest"]["started_at"] == "2026-09-21T14:14:21.000Z");

  // A new 502 at 90 is compared with the upstream's healthy result at 75.
  in.results.push_back(Nginx502("eu", 90));
  CHECK(Diagnose(in).verdict == Verdict::kGatewayFault);

  // No result of the upstream from the failing region: its newest from another one counts.
  in = In({Nginx502("eu", 60)},
          {{"shop-api-1", {Up("shop-api-1", "us", 61, Outcome::kConnectRefused)}}});
  d = Diagnose(in);
  CHECK(d.verdict == Verdict::kUpstreamDown);
  CHECK(Parsed(d)["upstreams"][0]["regions"] == json{"us"});
}

TEST_CASE("Verdict: ignored results are counted, never silently dropped") {
  DiagnosisInput in =
      In({Ok("eu", 100), With(Nginx502("eu", 110), [](ProbeResult& r) { r.confirmed = false; }),
          Nginx502("eu", -400),  // before the window
          With(Nginx502("eu", 120), [](ProbeResult& r) { r.monitor = "other"; })},
         {{"shop-api-1",
           {UpOk("shop-api-1", "eu", 100),
            With(UpOk("shop-api-1", "eu", 101), [](ProbeResult& r) { r.confirmed = false; })}}});
  const Diagnosis d = Diagnose(in);
  CHECK(d.verdict == Verdict::kHealthy);
  const json j = Parsed(d);
  CHECK(j["results"] == 1);
  CHECK(j["ignored"] == json{{"unconfirmed", 2}, {"outside_window", 1}, {"other_monitor", 1}});
  CHECK(j["notes"] == json{"ignored 1 result(s) whose monitor field names another series"});

  in.window = Duration::zero();  // no lower bound: the old 502 counts, the monitor healed
  CHECK(Diagnose(in).verdict == Verdict::kTransient);
}

TEST_CASE("Verdict: input order does not change the diagnosis") {
  for (const Case& c : Cases()) {
    INFO(c.name);
    DiagnosisInput reversed = c.input;
    std::reverse(reversed.results.begin(), reversed.results.end());
    for (auto& [name, results] : reversed.upstreams) std::reverse(results.begin(), results.end());
    CHECK(EvidenceToJson(Diagnose(reversed)) == EvidenceToJson(Diagnose(c.input)));
  }
}

TEST_CASE("Verdict: summaries stay one short line and name at most two upstreams") {
  Ups ups;
  for (int i = 1; i <= 6; ++i) {
    const std::string name = "shop-api-" + std::to_string(i);
    ups[name] = {Up(name, "eu", 61, Outcome::kConnectRefused)};
  }
  Diagnosis d = Diagnose(In({Nginx502("eu", 60)}, ups));
  CHECK(d.verdict == Verdict::kUpstreamDown);
  CHECK(d.summary.find("all 6 upstreams fail: shop-api-1 (connect_refused), shop-api-2 "
                       "(connect_refused) and 4 more from 1/1 regions") != std::string::npos);

  // A name longer than the limit is cut with "...", never inside a UTF-8 sequence: the "é"
  // spans the bytes 196-197 where the cut would fall.
  DiagnosisInput in = In({Ok("eu", 0), Fail("eu", 60, Outcome::kConnectRefused)});
  in.monitor = std::string(196, 'x') + "\xc3\xa9" + std::string(100, 'y');
  for (auto& r : in.results) r.monitor = in.monitor;
  d = Diagnose(in);
  CHECK(d.verdict == Verdict::kNotListening);
  CHECK(d.summary == std::string(196, 'x') + "...");
  CHECK_NOTHROW(json::parse(EvidenceToJson(d)));
}

TEST_CASE("Verdict: evidence JSON survives bytes that are not UTF-8") {
  ProbeResult r = Nginx502("eu", 60);
  r.body_snippet = std::string("garbage \xff\xfe\x00 end", 14) + std::string(1000, 'z');
  r.detail = "bad \xc3";
  const Diagnosis d = Diagnose(In({r}));
  json j;
  REQUIRE_NOTHROW(j = json::parse(EvidenceToJson(d)));
  const std::string body = j["sample_body"];
  CHECK(body.find("garbage ") == 0);
  CHECK(body.find("\xef\xbf\xbd") != std::string::npos);  // U+FFFD replaces the bad bytes
  CHECK(body.size() < kSampleBodyBytes + 16);
  CHECK(j["latest_failure"]["detail"] == "bad \xef\xbf\xbd");
}

TEST_CASE("Verdict: many results in one call") {
  // 3 regions x 20'000 monitor results, 2 upstreams with 20'000 each; the last minute fails.
  DiagnosisInput in = In({});
  in.now = At(60'000);
  in.window = std::chrono::hours(24);
  const std::vector<std::string> regions = {"eu", "us", "ap"};
  for (int t = 0; t < 20'000; ++t) {
    for (const auto& region : regions) {
      in.results.push_back(t >= 19'990 ? Nginx502(region, t * 3) : Ok(region, t * 3));
    }
    in.upstreams["shop-api-1"].push_back(
        t >= 19'990 ? Up("shop-api-1", regions[t % 3], t * 3 + 1, Outcome::kConnectRefused)
                    : UpOk("shop-api-1", regions[t % 3], t * 3 + 1));
    in.upstreams["shop-api-2"].push_back(
        t >= 19'990 ? Up("shop-api-2", regions[t % 3], t * 3 + 1, Outcome::kConnectRefused)
                    : UpOk("shop-api-2", regions[t % 3], t * 3 + 1));
  }
  const Diagnosis d = Diagnose(in);
  CHECK(d.verdict == Verdict::kUpstreamDown);
  CHECK(d.evidence.results == 60'000);
  CHECK(d.evidence.failures == 30);
  CHECK(d.evidence.failing_regions.size() == 3);
}

}  // namespace
}  // namespace gatewatch::probes

namespace gatewatch::probes {
namespace {

TEST_CASE("Verdict: the upstream result closest to the failure stands for it, not a recovery a second later") {
  // The gateway's last 502 at 60; the upstream was refused at 59 (its regular probe) and at
  // 60 (the onset confirmation), and is back at 61, inside the confirmation slack. Re-run as
  // of the last failure (an alert fired): the upstream was down when the 502 happened.
  const DiagnosisInput in =
      In({Ok("eu", 0), Nginx502("eu", 58), Nginx502("eu", 60), Ok("eu", 62)},
         {{"shop-api-1",
           {UpOk("shop-api-1", "eu", 50), Up("shop-api-1", "eu", 59, Outcome::kConnectRefused),
            Up("shop-api-1", "eu", 60, Outcome::kConnectRefused), UpOk("shop-api-1", "eu", 61)}}},
         /*alert_fired=*/true);
  const Diagnosis d = Diagnose(in);
  CHECK(d.verdict == Verdict::kUpstreamDown);
  CHECK(Parsed(d)["upstreams"][0]["latest"]["outcome"] == "connect_refused");
  // Live, with the failure current: the confirmation right after it is what counts.
  const DiagnosisInput live = In({Ok("eu", 0), Nginx502("eu", 60)},
                                 {{"shop-api-1", {UpOk("shop-api-1", "eu", 55),
                                                  Up("shop-api-1", "eu", 60, Outcome::kConnectRefused)}}});
  CHECK(Diagnose(live).verdict == Verdict::kUpstreamDown);
}

}  // namespace
}  // namespace gatewatch::probes
