// Responder fingerprint against raw responses in tests/fixtures/responses/: real captures from
// nine Debian 12 gateways in every situation of tests/gateways/ (capture.py, one folder per
// gateway, expectations in tests/support/gateway_expectations.cc written from the captures and
// the gateways' logs), a few more real nginx/HAProxy variants, and pages written from the
// vendors' documentation (write_doc_fixtures.py, expectations below). No expectation is
// derived from the rule table in probes/fingerprint.cc.

#include "probes/fingerprint.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "tests/support/gateway_expectations.h"
#include "tests/support/raw_http.h"

namespace gatewatch::probes {
namespace {

using E = Emitter;
using R = Reason;

struct Expect {
  const char* group;  // TEST_CASE that checks it
  const char* file;   // under tests/fixtures/responses/
  int status;
  Emitter emitter;
  Reason reason;
};

constexpr Expect kExpected[] = {
    // nginx 1.22.1, captured.
    {"nginx", "nginx_502_server_tokens_off.http", 502, E::kNginx, R::kUnknown},
    {"nginx", "nginx_502_chrome_padding.http", 502, E::kNginx, R::kUnknown},
    {"nginx", "nginx_503_return.http", 503, E::kNginx, R::kUnknown},
    {"openresty", "openresty_502.http", 502, E::kOpenResty, R::kUnknown},
    {"openresty", "openresty_504_apisix.http", 504, E::kOpenResty, R::kUpstreamTimeout},
    // HAProxy 2.6.12, captured.
    {"haproxy", "haproxy_502_head.http", 502, E::kHaproxy, R::kUnknown},
    {"haproxy", "haproxy_503_head.http", 503, E::kHaproxy, R::kNoHealthyUpstream},
    {"haproxy", "haproxy_504_head.http", 504, E::kHaproxy, R::kUpstreamTimeout},
    // Cloudflare.
    {"cloudflare", "cloudflare_edge_502.http", 502, E::kCloudflare, R::kUnknown},
    {"cloudflare", "cloudflare_origin_502_branded.http", 502, E::kCloudflareOrigin, R::kUnknown},
    {"cloudflare", "cloudflare_origin_504_branded.http", 504, E::kCloudflareOrigin,
     R::kUpstreamTimeout},
    {"cloudflare", "cloudflare_520.http", 520, E::kCloudflare, R::kInvalidUpstreamResponse},
    {"cloudflare", "cloudflare_521.http", 521, E::kCloudflare, R::kUpstreamConnectFailed},
    {"cloudflare", "cloudflare_522.http", 522, E::kCloudflare, R::kUpstreamTimeout},
    {"cloudflare", "cloudflare_523.http", 523, E::kCloudflare, R::kOriginUnreachable},
    {"cloudflare", "cloudflare_524.http", 524, E::kCloudflare, R::kUpstreamTimeout},
    {"cloudflare", "cloudflare_525.http", 525, E::kCloudflare, R::kOriginTls},
    {"cloudflare", "cloudflare_526.http", 526, E::kCloudflare, R::kOriginTls},
    {"cloudflare", "cloudflare_530.http", 530, E::kCloudflare, R::kUnknown},
    {"cloudflare", "cloudflare_522_without_cf_ray.http", 522, E::kCloudflare, R::kUnknown},
    // AWS ALB.
    {"aws_alb", "aws_alb_502.http", 502, E::kAwsAlb, R::kUnknown},
    {"aws_alb", "aws_alb_503.http", 503, E::kAwsAlb, R::kNoHealthyUpstream},
    {"aws_alb", "aws_alb_504.http", 504, E::kAwsAlb, R::kUpstreamTimeout},
    // CloudFront (unverified pages).
    {"cloudfront", "cloudfront_502_connect.http", 502, E::kCloudFront, R::kUpstreamConnectFailed},
    {"cloudfront", "cloudfront_502_dns.http", 502, E::kCloudFront, R::kOriginUnreachable},
    {"cloudfront", "cloudfront_504.http", 504, E::kCloudFront, R::kUpstreamTimeout},
    {"cloudfront", "cloudfront_503_capacity.http", 503, E::kCloudFront, R::kUnknown},
    {"cloudfront", "cloudfront_502_no_body.http", 502, E::kCloudFront, R::kUnknown},
    // Google Cloud LB.
    {"google_lb", "google_lb_502.http", 502, E::kGoogleLb, R::kUnknown},
    {"google_lb", "google_lb_503_no_healthy_upstream.http", 503, E::kGoogleLb,
     R::kNoHealthyUpstream},
    // Fastly: always 503, reason from obj.response.
    {"fastly", "fastly_503_first_byte_timeout.http", 503, E::kFastly, R::kUpstreamTimeout},
    {"fastly", "fastly_503_connection_timed_out.http", 503, E::kFastly, R::kUpstreamTimeout},
    {"fastly", "fastly_503_backend_read_error.http", 503, E::kFastly, R::kUpstreamReset},
    {"fastly", "fastly_503_backend_unhealthy.http", 503, E::kFastly, R::kNoHealthyUpstream},
    {"fastly", "fastly_503_all_backends_unhealthy.http", 503, E::kFastly, R::kNoHealthyUpstream},
    {"fastly", "fastly_503_operation_in_progress.http", 503, E::kFastly, R::kUpstreamConnectFailed},
    {"fastly", "fastly_503_maximum_threads.http", 503, E::kFastly, R::kUnknown},
    // Varnish Cache.
    {"varnish", "varnish_503_backend_fetch_failed.http", 503, E::kVarnish, R::kUnknown},
    // Akamai.
    {"akamai", "akamai_503.http", 503, E::kAkamai, R::kUnknown},
    {"akamai", "akamai_504.http", 504, E::kAkamai, R::kUpstreamTimeout},
    {"akamai", "akamai_502_origin_tls.http", 502, E::kAkamai, R::kOriginTls},
    // Envoy local replies, and a reply relayed from the app.
    {"envoy", "envoy_503_no_healthy_upstream.http", 503, E::kEnvoy, R::kNoHealthyUpstream},
    {"envoy", "envoy_503_connection_failure.http", 503, E::kEnvoy, R::kUpstreamConnectFailed},
    {"envoy", "envoy_503_retried_connection_failure_istio.http", 503, E::kEnvoy,
     R::kUpstreamConnectFailed},
    {"envoy", "envoy_503_connection_termination.http", 503, E::kEnvoy, R::kUpstreamReset},
    {"envoy", "envoy_503_overflow.http", 503, E::kEnvoy, R::kOverloaded},
    {"envoy", "envoy_503_tls.http", 503, E::kEnvoy, R::kOriginTls},
    {"envoy", "envoy_503_connection_timeout.http", 503, E::kEnvoy, R::kUpstreamTimeout},
    {"envoy", "envoy_503_remote_reset.http", 503, E::kEnvoy, R::kUpstreamReset},
    {"envoy", "envoy_502_protocol_error.http", 502, E::kEnvoy, R::kInvalidUpstreamResponse},
    {"envoy", "envoy_503_local_reset.http", 503, E::kEnvoy, R::kUnknown},
    {"envoy", "envoy_504_upstream_request_timeout.http", 504, E::kEnvoy, R::kUpstreamTimeout},
    {"envoy", "envoy_relays_app_503.http", 503, E::kApplication, R::kUnknown},
    // Traefik.
    {"traefik", "traefik_502.http", 502, E::kTraefik, R::kUnknown},
    {"traefik", "traefik_504.http", 504, E::kTraefik, R::kUpstreamTimeout},
    {"traefik", "traefik_503_no_available_server.http", 503, E::kTraefik, R::kNoHealthyUpstream},
    // Caddy.
    {"caddy", "caddy_502.http", 502, E::kCaddy, R::kUnknown},
    {"caddy", "caddy_503.http", 503, E::kCaddy, R::kNoHealthyUpstream},
    {"caddy", "caddy_504.http", 504, E::kCaddy, R::kUpstreamTimeout},
    // Apache httpd mod_proxy.
    {"apache", "apache_502_proxy_read_error.http", 502, E::kApache, R::kUnknown},
    {"apache", "apache_502_proxy_headers.http", 502, E::kApache, R::kInvalidUpstreamResponse},
    {"apache", "apache_503.http", 503, E::kApache, R::kUnknown},
    {"apache", "apache_504.http", 504, E::kApache, R::kUpstreamTimeout},
    // Kong.
    {"kong", "kong_502_invalid_response.http", 502, E::kKong, R::kInvalidUpstreamResponse},
    {"kong", "kong_504_timeout.http", 504, E::kKong, R::kUpstreamTimeout},
    {"kong", "kong_503_no_peer.http", 503, E::kKong, R::kNoHealthyUpstream},
    {"kong", "kong_503_dns.http", 503, E::kKong, R::kOriginUnreachable},
    {"kong", "kong_500_unexpected.http", 500, E::kKong, R::kUnknown},
    {"kong", "kong_relays_app_500.http", 500, E::kApplication, R::kUnknown},
    // Traffic Server 9.2, captured (capture.py extras): a parent pool of one origin, on its
    // first failure and once marked down.
    {"trafficserver", "trafficserver/parent_first_failure.http", 502, E::kTrafficServer,
     R::kUnknown},
    {"trafficserver", "trafficserver/parent_marked_down.http", 502, E::kTrafficServer,
     R::kUnknown},
    // Applications and layers without a tell.
    {"application", "app_500_json.http", 500, E::kApplication, R::kUnknown},
    {"application", "app_503_retry_after.http", 503, E::kApplication, R::kUnknown},
    {"application", "app_502_text_via_nginx.http", 502, E::kApplication, R::kUnknown},
    {"application", "app_404.http", 404, E::kNone, R::kUnknown},
    {"application", "go_reverseproxy_502_empty.http", 502, E::kUnknown, R::kUnknown},
};

std::string FixturePath(std::string_view file) {
  return std::string(GATEWATCH_SOURCE_DIR) + "/tests/fixtures/responses/" + std::string(file);
}

// Parses and classifies one fixture; fails the current test when the file is unusable.
Fingerprint ClassifyFixture(const Expect& row, testing::RawResponse* parsed) {
  auto response = testing::ParseRawResponseFile(FixturePath(row.file));
  REQUIRE_MESSAGE(response.has_value(), (response ? "" : response.error()));
  *parsed = std::move(*response);
  return ClassifyResponder(parsed->Sample());
}

void CheckGroup(std::string_view group) {
  int rows = 0;
  for (const Expect& row : kExpected) {
    if (group != row.group) continue;
    ++rows;
    SUBCASE(row.file) {
      testing::RawResponse response;
      const Fingerprint fp = ClassifyFixture(row, &response);
      INFO("fixture ", row.file, " matched rule ", std::string(fp.rule));
      CHECK(response.status == row.status);
      CHECK(ToString(fp.emitter) == ToString(row.emitter));
      CHECK(ToString(fp.reason) == ToString(row.reason));
    }
  }
  REQUIRE(rows > 0);
}

}  // namespace

TEST_CASE("Fingerprint: nginx pages (captured from nginx 1.22)") { CheckGroup("nginx"); }
TEST_CASE("Fingerprint: OpenResty pages") { CheckGroup("openresty"); }
TEST_CASE("Fingerprint: HAProxy replies (captured from HAProxy 2.6)") { CheckGroup("haproxy"); }
TEST_CASE("Fingerprint: Cloudflare edge, 52x and branded origin pages") {
  CheckGroup("cloudflare");
}
TEST_CASE("Fingerprint: AWS ALB") { CheckGroup("aws_alb"); }
TEST_CASE("Fingerprint: CloudFront (unverified pages)") { CheckGroup("cloudfront"); }
TEST_CASE("Fingerprint: Google Cloud LB") { CheckGroup("google_lb"); }
TEST_CASE("Fingerprint: Fastly Guru Mediation reasons") { CheckGroup("fastly"); }
TEST_CASE("Fingerprint: Varnish Guru Meditation") { CheckGroup("varnish"); }
TEST_CASE("Fingerprint: Akamai") { CheckGroup("akamai"); }
TEST_CASE("Fingerprint: Envoy local replies vs relayed app replies") { CheckGroup("envoy"); }
TEST_CASE("Fingerprint: Traefik") { CheckGroup("traefik"); }
TEST_CASE("Fingerprint: Caddy empty bodies") { CheckGroup("caddy"); }
TEST_CASE("Fingerprint: Apache httpd mod_proxy") { CheckGroup("apache"); }
TEST_CASE("Fingerprint: Kong") { CheckGroup("kong"); }
TEST_CASE("Fingerprint: Traffic Server parent pool") { CheckGroup("trafficserver"); }
TEST_CASE("Fingerprint: application errors and responses without tells") {
  CheckGroup("application");
}

namespace {

// A real capture of one gateway in one situation, classified; nullopt for a reply that is
// not HTTP/1.x at all (nginx relays an SSH banner as an HTTP/0.9 body).
struct Captured {
  std::optional<testing::RawResponse> response;
  Fingerprint fp{};
};

Captured ClassifyCapture(const testing::GatewayCase& c) {
  const std::string file = std::string(c.gateway) + "/" + std::string(c.situation) + ".http";
  Captured out;
  auto response = testing::ParseRawResponseFile(FixturePath(file));
  if (!response) {
    INFO(file, ": ", response.error());
    REQUIRE(c.status == 0);  // only a capture expected to be no HTTP may fail to parse
    out.fp = Fingerprint{Emitter::kNone, Reason::kUnknown, "not_5xx"};
    return out;
  }
  out.fp = ClassifyResponder(response->Sample());
  out.response = std::move(*response);
  return out;
}

void CheckCaptures(std::string_view gateway) {
  int rows = 0;
  for (const testing::GatewayCase& c : testing::GatewayCases()) {
    if (c.gateway != gateway) continue;
    ++rows;
    SUBCASE(std::string(c.situation).c_str()) {
      const Captured got = ClassifyCapture(c);
      INFO(std::string(gateway), "/", std::string(c.situation), " matched rule ",
           std::string(got.fp.rule));
      CHECK((got.response ? got.response->status : 0) == c.status);
      CHECK(ToString(got.fp.emitter) == c.emitter);
      CHECK(ToString(got.fp.reason) == c.reason);
    }
  }
  REQUIRE(rows >= 7);  // every situation but pool_down exists on every gateway
}

}  // namespace

TEST_CASE("Fingerprint: real nginx 1.22 captures") { CheckCaptures("nginx"); }
TEST_CASE("Fingerprint: real HAProxy 2.6 captures") { CheckCaptures("haproxy"); }
TEST_CASE("Fingerprint: real Apache 2.4 captures") { CheckCaptures("apache2"); }
TEST_CASE("Fingerprint: real lighttpd 1.4 captures") { CheckCaptures("lighttpd"); }
TEST_CASE("Fingerprint: real Caddy 2.6 captures") { CheckCaptures("caddy"); }
TEST_CASE("Fingerprint: real Varnish 7.1 captures") { CheckCaptures("varnish"); }
TEST_CASE("Fingerprint: real h2o 2.2 captures") { CheckCaptures("h2o"); }
TEST_CASE("Fingerprint: real Squid 5.7 captures") { CheckCaptures("squid"); }
TEST_CASE("Fingerprint: real Traffic Server 9.2 captures") { CheckCaptures("trafficserver"); }

TEST_CASE("Fingerprint: an application's 5xx relayed by any gateway is the application's") {
  // The negative control of every capture set: the app's own 503 + Retry-After, relayed.
  int relayed = 0;
  for (const testing::GatewayCase& c : testing::GatewayCases()) {
    if (c.situation != "app503") continue;
    ++relayed;
    CAPTURE(c.gateway);
    const Captured got = ClassifyCapture(c);
    REQUIRE(got.response.has_value());
    CHECK(got.response->status == 503);
    CHECK(got.response->Header("retry-after") == std::optional<std::string>("120"));
    CHECK(got.fp.emitter == Emitter::kApplication);
    CHECK(got.fp.reason == Reason::kUnknown);
  }
  CHECK(relayed == 9);
}

TEST_CASE("Fingerprint: every rule is exercised by a fixture, every fixture has a row") {
  std::set<std::string> hit;
  for (const Expect& row : kExpected) {
    testing::RawResponse response;
    hit.insert(std::string(ClassifyFixture(row, &response).rule));
  }
  for (const testing::GatewayCase& c : testing::GatewayCases()) {
    hit.insert(std::string(ClassifyCapture(c).fp.rule));
  }
  for (std::string_view rule : FingerprintRuleNames()) {
    INFO("rule ", std::string(rule));
    CHECK(hit.count(std::string(rule)) == 1);
  }
  CHECK(hit.count("not_5xx") == 1);

  std::set<std::string> listed;
  for (const Expect& row : kExpected) listed.insert(row.file);
  CHECK(listed.size() == std::size(kExpected));  // no duplicate rows
  for (const testing::GatewayCase& c : testing::GatewayCases()) {
    CHECK(listed.insert(std::string(c.gateway) + "/" + std::string(c.situation) + ".http").second);
  }
  const std::filesystem::path dir = FixturePath("");
  size_t files = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (entry.path().extension() != ".http") continue;
    ++files;
    const std::string name = std::filesystem::relative(entry.path(), dir).generic_string();
    INFO("fixture without an expectation: ", name);
    CHECK(listed.count(name) == 1);
  }
  CHECK(files == listed.size());
}

TEST_CASE("Fingerprint: rule names are unique") {
  std::set<std::string_view> names;
  for (std::string_view rule : FingerprintRuleNames()) {
    INFO("rule ", std::string(rule));
    CHECK(names.insert(rule).second);
  }
  CHECK(names.size() > 40);
}

TEST_CASE("Fingerprint: header names and values match case-insensitively") {
  ResponseSample sample;
  sample.status = 504;
  sample.headers = {{"SERVER", "AWSELB/2.0"}};
  const Fingerprint fp = ClassifyResponder(sample);
  CHECK(fp.emitter == Emitter::kAwsAlb);
  CHECK(fp.reason == Reason::kUpstreamTimeout);
}

TEST_CASE("Fingerprint: only the first 4 KiB of the body are looked at") {
  std::string body(kFingerprintBodyLimit, 'x');
  body += "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
  ResponseSample sample;
  sample.status = 502;
  sample.headers = {{"content-type", "text/html"}};
  sample.body = body;
  CHECK(ClassifyResponder(sample).emitter == Emitter::kApplication);
  sample.body = std::string_view(body).substr(kFingerprintBodyLimit - 100);
  CHECK(ClassifyResponder(sample).emitter == Emitter::kNginx);
}

TEST_CASE("Fingerprint: responses outside 5xx get no emitter") {
  const std::string nginx_page =
      "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n"
      "<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx</center>\r\n";
  for (int status : {0, 200, 301, 404, 499, 600}) {
    CAPTURE(status);
    ResponseSample sample;
    sample.status = status;
    sample.headers = {{"server", "nginx"}};
    sample.body = nginx_page;
    const Fingerprint fp = ClassifyResponder(sample);
    CHECK(fp.emitter == Emitter::kNone);
    CHECK(fp.rule == "not_5xx");
  }
}

TEST_CASE("Fingerprint: an Envoy text with x-envoy-upstream-service-time is the app's") {
  ResponseSample sample;
  sample.status = 503;
  sample.headers = {{"content-type", "text/plain"}, {"x-envoy-upstream-service-time", "3"}};
  sample.body = "no healthy upstream";
  CHECK(ClassifyResponder(sample).emitter == Emitter::kApplication);
}

TEST_CASE("Fingerprint: HAProxy's length quirk needs the exact length and no Server header") {
  ResponseSample sample;
  sample.status = 502;
  sample.headers = {{"content-type", "text/html"}, {"cache-control", "no-cache"}};
  sample.content_length = 107;
  CHECK(ClassifyResponder(sample).emitter == Emitter::kHaproxy);
  sample.content_length = 108;
  CHECK(ClassifyResponder(sample).emitter == Emitter::kUnknown);
  sample.content_length = 107;
  sample.headers.emplace_back("server", "gunicorn");
  CHECK(ClassifyResponder(sample).emitter == Emitter::kUnknown);
}

TEST_CASE("Fingerprint: every Emitter and Reason name round-trips") {
  // The stable names, written out by hand (docs/probes.md, metric labels, API).
  const std::vector<std::string_view> emitters = {
      "none",    "application", "nginx",     "openresty", "apache",     "haproxy",
      "envoy",   "traefik",     "caddy",     "varnish",   "cloudflare", "cloudflare_origin",
      "aws_alb", "cloudfront",  "google_lb", "fastly",    "akamai",     "kong",
      "squid",   "lighttpd",    "h2o",       "trafficserver", "unknown"};
  const std::vector<std::string_view> reasons = {"unknown",
                                                 "upstream_connect_failed",
                                                 "upstream_timeout",
                                                 "upstream_reset",
                                                 "invalid_upstream_response",
                                                 "no_healthy_upstream",
                                                 "origin_tls",
                                                 "overloaded",
                                                 "origin_unreachable"};
  REQUIRE(AllEmitters().size() == emitters.size());
  REQUIRE(AllReasons().size() == reasons.size());
  for (size_t i = 0; i < emitters.size(); ++i) {
    const Emitter e = AllEmitters()[i];
    CAPTURE(emitters[i]);
    CHECK(ToString(e) == emitters[i]);
    REQUIRE(EmitterFromString(emitters[i]).has_value());
    CHECK(*EmitterFromString(emitters[i]) == e);
  }
  for (size_t i = 0; i < reasons.size(); ++i) {
    const Reason r = AllReasons()[i];
    CAPTURE(reasons[i]);
    CHECK(ToString(r) == reasons[i]);
    REQUIRE(ReasonFromString(reasons[i]).has_value());
    CHECK(*ReasonFromString(reasons[i]) == r);
  }
  CHECK_FALSE(EmitterFromString("Nginx").has_value());
  CHECK_FALSE(EmitterFromString("").has_value());
  CHECK_FALSE(ReasonFromString("timeout").has_value());
}

TEST_CASE("Fingerprint: IsGatewayEmitter and IsGatewayError") {
  CHECK_FALSE(IsGatewayEmitter(Emitter::kNone));
  CHECK_FALSE(IsGatewayEmitter(Emitter::kApplication));
  CHECK_FALSE(IsGatewayEmitter(Emitter::kUnknown));
  for (Emitter e : AllEmitters()) {
    if (e == Emitter::kNone || e == Emitter::kApplication || e == Emitter::kUnknown) continue;
    CAPTURE(ToString(e));
    CHECK(IsGatewayEmitter(e));
  }
  CHECK(IsGatewayError(503, Emitter::kNginx));
  CHECK(IsGatewayError(502, Emitter::kApplication));
  CHECK_FALSE(IsGatewayError(500, Emitter::kApplication));
  CHECK(IsGatewayError(504, Emitter::kApplication));
  CHECK(IsGatewayError(503, Emitter::kEnvoy));
  CHECK(IsGatewayError(522, Emitter::kCloudflare));
  CHECK(IsGatewayError(502, Emitter::kUnknown));
  CHECK_FALSE(IsGatewayError(503, Emitter::kUnknown));
  CHECK_FALSE(IsGatewayError(503, Emitter::kApplication));
  CHECK_FALSE(IsGatewayError(404, Emitter::kNginx));
  CHECK_FALSE(IsGatewayError(200, Emitter::kNone));
}

}  // namespace gatewatch::probes
