// The responder fingerprint against REAL gateways: nginx and HAProxy from the Debian packages
// (scripts/test-packages.txt), started on free loopback ports with their own config files in a
// temp dir, in front of upstreams that are dead, silent or close without replying. Missing
// binaries fail the test (CI installs them); nothing is skipped. 127.0.0.1 only.

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "probes/fingerprint.h"
#include "tests/support/gateways.h"
#include "tests/support/raw_http.h"

namespace gatewatch::probes {
namespace {

using namespace std::chrono_literals;

using testing::BadUpstream;
using testing::FreePort;
using testing::HaproxyGateway;
using testing::NginxGateway;

struct Observed {
  testing::RawResponse response;
  Fingerprint fp;
};

Observed Get(uint16_t port, std::string_view path) {
  auto raw = testing::FetchRaw(port, testing::GetRequest(path), 15s);
  REQUIRE_MESSAGE(raw.has_value(), (raw ? std::string() : raw.error()));
  auto parsed = testing::ParseRawResponse(*raw);
  REQUIRE_MESSAGE(parsed.has_value(), (parsed ? std::string() : parsed.error() + "\n" + *raw));
  Observed o{std::move(*parsed), {}};
  o.fp = ClassifyResponder(o.response.Sample());
  return o;
}

}  // namespace

TEST_CASE("Fingerprint: live nginx 502 from a dead upstream and 504 from a silent one") {
  BadUpstream silent(BadUpstream::Mode::kSilent);
  NginxGateway nginx(
      {{.location = "/dead", .servers = {FreePort()}},
       {.location = "/slow", .servers = {silent.port()}, .directives = "proxy_read_timeout 1s;"}});
  const uint16_t port = nginx.port();

  SUBCASE("dead upstream: 502, nginx, reason not knowable") {
    const Observed o = Get(port, "/dead");
    INFO("matched rule " << o.fp.rule);
    CHECK(o.response.status == 502);
    CHECK(o.response.Header("server").value_or("").starts_with("nginx"));
    CHECK(o.fp.emitter == Emitter::kNginx);
    CHECK(o.fp.reason == Reason::kUnknown);
    CHECK(IsGatewayError(o.response.status, o.fp.emitter));
  }
  SUBCASE("silent upstream past proxy_read_timeout: 504 upstream_timeout") {
    const Observed o = Get(port, "/slow");
    INFO("matched rule " << o.fp.rule);
    CHECK(o.response.status == 504);
    CHECK(silent.accepted() >= 1);
    CHECK(o.fp.emitter == Emitter::kNginx);
    CHECK(o.fp.reason == Reason::kUpstreamTimeout);
  }
}

TEST_CASE("Fingerprint: live HAProxy 503 with its server down and 502 on a close") {
  BadUpstream closer(BadUpstream::Mode::kClose);
  BadUpstream silent(BadUpstream::Mode::kSilent);
  // The default backend's only server is a dead port (health-checked down).
  HaproxyGateway haproxy({{.path_prefix = "/close", .servers = {closer.port()}},
                          {.path_prefix = "/slow", .servers = {silent.port()}},
                          {.path_prefix = "", .servers = {FreePort()}, .health_check = true}});
  const uint16_t port = haproxy.port();

  SUBCASE("only server down: 503 no_healthy_upstream, no Server header") {
    const Observed o = Get(port, "/");
    INFO("matched rule " << o.fp.rule);
    CHECK(o.response.status == 503);
    CHECK_FALSE(o.response.Header("server").has_value());
    CHECK(o.fp.emitter == Emitter::kHaproxy);
    CHECK(o.fp.reason == Reason::kNoHealthyUpstream);
    CHECK(IsGatewayError(o.response.status, o.fp.emitter));
  }
  SUBCASE("upstream closes without a reply: 502, a page that does not say why") {
    const Observed o = Get(port, "/close");
    INFO("matched rule " << o.fp.rule);
    CHECK(o.response.status == 502);
    CHECK(closer.accepted() >= 1);
    CHECK(o.fp.emitter == Emitter::kHaproxy);
    CHECK(o.fp.reason == Reason::kUnknown);  // the same page as for a garbage reply
  }
  SUBCASE("silent upstream past timeout server: 504 upstream_timeout") {
    const Observed o = Get(port, "/slow");
    INFO("matched rule " << o.fp.rule);
    CHECK(o.response.status == 504);
    CHECK(o.fp.emitter == Emitter::kHaproxy);
    CHECK(o.fp.reason == Reason::kUpstreamTimeout);
  }
}

}  // namespace gatewatch::probes
