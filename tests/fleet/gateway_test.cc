// Gateway behaves like nginx 1.22 in front of a pool (relay, next upstream, 502/503/504
// pages byte for byte, misroute), RawHttpServer can refuse and listen again on its port,
// and DemoFleet's phases give what they promise, checked with a plain blocking client.

#include "fleet/gateway.h"

#include <doctest/doctest.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "fleet/demo_fleet.h"
#include "fleet/pages.h"
#include "fleet/raw_server.h"
#include "fleet/socket_util.h"
#include "fleet/tcp_faults.h"
#include "tests/support/raw_http.h"
#include "tests/support/wait.h"

namespace gatewatch::fleet {
namespace {

using namespace std::chrono_literals;
using gatewatch::testing::ParseRawResponse;
using gatewatch::testing::RawResponse;
using gatewatch::testing::WaitFor;

// ---- a blocking loopback client with timeouts ----

struct Reply {
  int connect_err = 0;  // errno of a failed connect() (ECONNREFUSED for a closed port)
  std::string data;     // every byte until the server closed
  bool eof = false;     // orderly close seen
  int read_err = 0;     // errno of a failed recv (EAGAIN: the receive timeout passed)
};

UniqueFd ConnectTo(int port, int* err, std::chrono::milliseconds io = 5s) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(fd.valid());
  const timeval tv{static_cast<time_t>(io.count() / 1000),
                   static_cast<suseconds_t>((io.count() % 1000) * 1000)};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  socklen_t len = 0;
  const sockaddr_storage addr = LoopbackAddress(IpFamily::kV4, port, &len);
  *err = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), len) == 0 ? 0 : errno;
  return fd;
}

Reply Exchange(int port, std::string_view request, std::chrono::milliseconds io = 5s) {
  Reply r;
  UniqueFd fd = ConnectTo(port, &r.connect_err, io);
  if (r.connect_err != 0) return r;
  while (!request.empty()) {
    const ssize_t n = ::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL);
    REQUIRE(n > 0);
    request.remove_prefix(static_cast<size_t>(n));
  }
  char buf[16 * 1024];
  while (r.data.size() < 16 * 1024 * 1024) {
    const ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (n == 0) {
      r.eof = true;
      break;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      r.read_err = errno;
      break;
    }
    r.data.append(buf, static_cast<size_t>(n));
  }
  return r;
}

std::string Get(std::string_view path) {
  return "GET " + std::string(path) +
         " HTTP/1.1\r\nHost: test\r\nUser-Agent: gatewatch-test\r\nConnection: close\r\n\r\n";
}

Reply Fetch(int port, std::string_view path = "/healthz") { return Exchange(port, Get(path)); }

RawResponse Parse(const Reply& r) {
  INFO("response: " << r.data);
  REQUIRE(r.connect_err == 0);
  auto parsed = ParseRawResponse(r.data);
  REQUIRE(parsed.has_value());
  return *parsed;
}

int Status(const Reply& r) { return r.connect_err != 0 || r.data.empty() ? 0 : Parse(r).status; }

int HeaderCount(const RawResponse& r, std::string_view name) {
  return static_cast<int>(std::count_if(r.headers.begin(), r.headers.end(),
                                        [&](const auto& h) { return h.first == name; }));
}

Behavior Json(std::string_view body) {
  return Behavior::Raw(
      "HTTP/1.1 200 OK\r\nServer: upstreamd/2.0\r\nDate: Thu, 01 Jan 2026 "
      "00:00:00 GMT\r\nX-App: yes\r\nContent-Type: application/json\r\n"
      "Keep-Alive: timeout=5\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + std::string(body));
}

// ---- Gateway ----

TEST_CASE("Gateway: relays a healthy upstream with nginx's headers") {
  RawHttpServer api;
  api.Route("/healthz", Json("{\"status\":\"ok\"}"));
  Gateway gw({.upstreams = {api.port()}});
  CHECK(gw.Url("/x") == "http://127.0.0.1:" + std::to_string(gw.port()) + "/x");

  const Reply reply = Fetch(gw.port(), "/healthz?x=1");
  CHECK(reply.eof);
  const RawResponse r = Parse(reply);
  CHECK(r.version == "HTTP/1.1");
  CHECK(r.status == 200);
  CHECK(r.body == "{\"status\":\"ok\"}");
  CHECK(r.Header("server") == "nginx/1.22.1");  // nginx replaces the upstream's Server
  CHECK(HeaderCount(r, "server") == 1);
  CHECK(HeaderCount(r, "date") == 1);
  CHECK(r.Header("date") != "Thu, 01 Jan 2026 00:00:00 GMT");
  CHECK(r.Header("x-app") == "yes");
  CHECK(r.Header("content-type") == "application/json");
  CHECK(r.Header("connection") == "close");
  CHECK_FALSE(r.Header("keep-alive").has_value());
  CHECK(reply.data.rfind("HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: ", 0) == 0);
  // The request as nginx's proxy module sends it.
  CHECK(api.LastRequestHead().rfind(
            "GET /healthz?x=1 HTTP/1.0\r\nHost: backend\r\nConnection: close\r\n"
            "User-Agent: gatewatch-test\r\n",
            0) == 0);
  CHECK(gw.RequestCount() == 1);
  CHECK(gw.UpstreamAttemptCount() == 1);
  CHECK(gw.BadGatewayCount() == 0);
}

TEST_CASE("Gateway: round-robin over the pool, changed at run time") {
  RawHttpServer a, b, c;
  Gateway gw({.upstreams = {a.port(), b.port()}});
  for (int i = 0; i < 4; ++i) CHECK(Status(Fetch(gw.port())) == 200);
  CHECK(a.RequestCount() == 2);
  CHECK(b.RequestCount() == 2);
  gw.SetUpstreams({c.port()});
  CHECK(Status(Fetch(gw.port())) == 200);
  CHECK(c.RequestCount() == 1);
  CHECK(gw.options().upstreams == std::vector<int>{c.port()});
}

TEST_CASE("Gateway: a dead server is skipped unless next_upstream is off") {
  RawHttpServer ok;
  const int dead = RefusedPort();
  Gateway gw({.upstreams = {dead, ok.port()}});
  for (int i = 0; i < 6; ++i) CHECK(Status(Fetch(gw.port())) == 200);
  CHECK(ok.RequestCount() == 6);
  CHECK(gw.UpstreamAttemptCount() == 9);  // every other request tried the dead one first
  CHECK(gw.BadGatewayCount() == 0);

  gw.SetNextUpstream(false);  // proxy_next_upstream off
  int ok_count = 0;
  int bad_gateway = 0;
  for (int i = 0; i < 6; ++i) {
    const Reply r = Fetch(gw.port());
    if (r.data == pages::Nginx(502)) ++bad_gateway;
    if (Status(r) == 200) ++ok_count;
  }
  CHECK(bad_gateway == 3);
  CHECK(ok_count == 3);
  CHECK(gw.BadGatewayCount() == 3);
}

TEST_CASE("Gateway: every server failing gives the exact nginx 502 page") {
  RawHttpServer empty(Behavior::EmptyReply());
  RawHttpServer reset(Behavior::ResetAfterRequest());
  RawHttpServer reset_on_accept(Behavior::ResetOnAccept());
  const std::vector<int> pool = {RefusedPort(), empty.port(), reset.port(), reset_on_accept.port()};
  SUBCASE("one server per failure") {
    for (const int port : pool) {
      Gateway gw({.upstreams = {port}});
      const Reply r = Fetch(gw.port());
      CHECK(r.eof);
      CHECK(r.data == pages::Nginx(502));
      CHECK(gw.BadGatewayCount() == 1);
    }
  }
  SUBCASE("all of them in one pool: each tried once") {
    Gateway gw({.upstreams = pool});
    for (int i = 0; i < 2; ++i) CHECK(Fetch(gw.port()).data == pages::Nginx(502));
    CHECK(gw.UpstreamAttemptCount() == 8);
    CHECK(empty.RequestCount() == 2);
    CHECK(reset.RequestCount() == 2);
    CHECK(gw.BadGatewayCount() == 2);
  }
  SUBCASE("an empty pool") {
    Gateway gw;
    CHECK(Fetch(gw.port()).data == pages::Nginx(502));
    CHECK(gw.UpstreamAttemptCount() == 0);
  }
}

TEST_CASE("Gateway: a slow upstream past read_timeout gives the nginx 504 page") {
  RawHttpServer slow(Behavior::SlowHeaders(30s));
  RawHttpServer ok;
  Gateway gw({.upstreams = {slow.port()}, .read_timeout = 200ms});
  const Reply r = Fetch(gw.port());
  CHECK(r.data == pages::Nginx(504));
  CHECK(gw.GatewayTimeoutCount() == 1);
  CHECK(gw.BadGatewayCount() == 0);

  // "timeout" is in the default proxy_next_upstream: the next server answers.
  gw.SetUpstreams({slow.port(), ok.port()});
  for (int i = 0; i < 2; ++i) CHECK(Status(Fetch(gw.port())) == 200);
  CHECK(gw.GatewayTimeoutCount() == 1);
  CHECK(slow.RequestCount() == 2);  // the first request above and one of these two
}

TEST_CASE("Gateway: misroute answers 502 while the upstreams stay healthy") {
  RawHttpServer api;
  Gateway gw({.upstreams = {api.port()}});
  CHECK(Status(Fetch(gw.port())) == 200);
  gw.SetMisroute(RefusedPort());
  for (int i = 0; i < 3; ++i) CHECK(Fetch(gw.port()).data == pages::Nginx(502));
  CHECK(api.RequestCount() == 1);
  CHECK(Status(Fetch(api.port())) == 200);  // the upstream itself is fine
  gw.SetMisroute(std::nullopt);
  CHECK(Status(Fetch(gw.port())) == 200);
  CHECK(gw.BadGatewayCount() == 3);
}

TEST_CASE(
    "Gateway: relays upstream errors, HTTP/0.9 garbage and bodies, and never replays a POST") {
  RawHttpServer api;
  api.Route("/haproxy", Behavior::Raw(pages::Haproxy(502)))
      .Route("/garbage", Behavior::Garbage())
      .Route("/big", Behavior::OversizedBody(300 * 1024, /*chunked=*/false));
  Gateway gw({.upstreams = {api.port()}});

  const RawResponse haproxy = Parse(Fetch(gw.port(), "/haproxy"));
  CHECK(haproxy.status == 502);  // the upstream's own 502, passed through
  CHECK(haproxy.body == Parse({.data = pages::Haproxy(502)}).body);
  CHECK(haproxy.Header("server") == "nginx/1.22.1");
  CHECK(gw.BadGatewayCount() == 0);

  CHECK(Fetch(gw.port(), "/garbage").data == "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");

  const RawResponse big = Parse(Fetch(gw.port(), "/big"));
  CHECK(big.body == std::string(300 * 1024, 'x'));

  const std::string post =
      "POST /form HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\nConnection: close\r\n\r\na=1";
  CHECK(Status(Exchange(gw.port(), post)) == 200);
  CHECK(api.LastRequestHead().rfind("POST /form HTTP/1.0\r\n", 0) == 0);
  CHECK(api.LastRequestHead().find("Content-Length: 3\r\n") != std::string::npos);

  // A POST that reached a server which then failed goes to no other server.
  RawHttpServer empty(Behavior::EmptyReply());
  Gateway pool({.upstreams = {empty.port(), api.port()}});
  const int before = api.RequestCount();
  CHECK(Exchange(pool.port(), post).data == pages::Nginx(502));
  CHECK(empty.RequestCount() == 1);
  CHECK(api.RequestCount() == before);
}

TEST_CASE("Gateway: beyond 64 connections answers the nginx 503 page") {
  RawHttpServer api;
  Gateway gw({.upstreams = {api.port()}});
  std::vector<UniqueFd> idle;
  for (int i = 0; i < Gateway::kMaxConnections; ++i) {
    int err = 0;
    idle.push_back(ConnectTo(gw.port(), &err));
    REQUIRE(err == 0);
  }
  REQUIRE(WaitFor([&] { return gw.ActiveConnections() == Gateway::kMaxConnections; }));
  CHECK(Fetch(gw.port()).data == pages::Nginx(503));
  CHECK(gw.OverloadCount() == 1);
  idle.clear();  // the workers see EOF and end
  REQUIRE(WaitFor([&] { return gw.ActiveConnections() == 0; }));
  CHECK(Status(Fetch(gw.port())) == 200);
}

TEST_CASE("Gateway: stops promptly with a silent client and a hanging upstream") {
  RawHttpServer slow(Behavior::SlowHeaders(60s));
  std::optional<Gateway> gw;
  gw.emplace(GatewayOptions{.upstreams = {slow.port()}, .read_timeout = 60s});
  int err = 0;
  UniqueFd silent_client = ConnectTo(gw->port(), &err);
  REQUIRE(err == 0);
  UniqueFd waiting_client = ConnectTo(gw->port(), &err);
  REQUIRE(err == 0);
  const std::string request = Get("/");
  REQUIRE(::send(waiting_client.get(), request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size()));
  REQUIRE(WaitFor([&] { return slow.RequestCount() == 1; }));
  REQUIRE(gw->ActiveConnections() == 2);
  gw.reset();  // must not wait for the 60 s timeouts (ctest's TIMEOUT would catch a hang)
  // Both clients see the connection end (EOF or RST), not their 5 s receive timeout.
  for (UniqueFd* fd : {&silent_client, &waiting_client}) {
    char c = 0;
    const ssize_t n = ::recv(fd->get(), &c, 1, 0);
    CHECK((n == 0 || (n < 0 && errno == ECONNRESET)));
  }
}

// ---- RawHttpServer::SetRefusing ----

TEST_CASE("Fleet: raw server refuses and listens again on the same port") {
  RawHttpServer server;
  const int port = server.port();
  for (int round = 0; round < 2; ++round) {
    // Served connections leave TIME_WAIT entries on the server's port (it closes first).
    for (int i = 0; i < 3; ++i) CHECK(Status(Fetch(port)) == 200);
    REQUIRE(server.SetRefusing(true));
    CHECK(server.Refusing());
    CHECK(Fetch(port).connect_err == ECONNREFUSED);
    REQUIRE(server.SetRefusing(false));
    CHECK_FALSE(server.Refusing());
    CHECK(server.port() == port);
    CHECK(Status(Fetch(port)) == 200);
  }
  CHECK(server.SetRefusing(false));  // no change is fine
}

// ---- DemoFleet ----

struct Observed {
  int gateway = 0;  // HTTP status, 0 = none
  std::string gateway_raw;
  int upstream[DemoFleet::kUpstreams] = {};
  int upstream_connect_err[DemoFleet::kUpstreams] = {};
};

int PortOf(const std::string& url) {
  const size_t colon = url.rfind(':');
  return std::stoi(url.substr(colon + 1, url.find('/', colon) - colon - 1));
}

Observed Observe(const DemoFleet& fleet) {
  Observed o;
  const Reply g = Fetch(PortOf(fleet.GatewayUrl()));
  o.gateway = Status(g);
  o.gateway_raw = g.data;
  for (int i = 0; i < DemoFleet::kUpstreams; ++i) {
    const Reply u = Fetch(PortOf(fleet.UpstreamUrl(i)));
    o.upstream[i] = Status(u);
    o.upstream_connect_err[i] = u.connect_err;
  }
  return o;
}

TEST_CASE("DemoFleet: each phase answers as promised (manual mode)") {
  std::mutex mu;
  std::vector<DemoFleet::Phase> seen;
  DemoFleet fleet(0ms, [&](DemoFleet::Phase p) {
    std::lock_guard lock(mu);
    seen.push_back(p);
  });
  using Phase = DemoFleet::Phase;
  CHECK(fleet.phase() == Phase::kHealthy);
  CHECK(fleet.GatewayUrl().rfind("http://127.0.0.1:", 0) == 0);
  CHECK(fleet.GatewayUrl().ends_with("/healthz"));
  CHECK(DemoFleet::UpstreamName(0) == "api-1");
  CHECK(DemoFleet::UpstreamName(1) == "api-2");

  SUBCASE("healthy: 200 everywhere, JSON from the upstream") {
    const Observed o = Observe(fleet);
    CHECK(o.gateway == 200);
    CHECK(o.upstream[0] == 200);
    CHECK(o.upstream[1] == 200);
    const RawResponse r = Parse({.data = o.gateway_raw});
    CHECK(r.Header("server") == "nginx/1.22.1");
    CHECK(r.Header("content-type") == "application/json");
    CHECK(r.body.rfind("{\"status\":\"ok\",\"upstream\":\"api-", 0) == 0);
  }
  SUBCASE("the cycle, twice round") {
    for (int round = 0; round < 2; ++round) {
      fleet.SetPhase(Phase::kOneUpstreamDown);
      CHECK(fleet.phase() == Phase::kOneUpstreamDown);
      for (int i = 0; i < 3; ++i) {  // the gateway retries api-2 whichever it picks first
        const Observed o = Observe(fleet);
        CHECK(o.gateway == 200);
        CHECK(o.upstream_connect_err[0] == ECONNREFUSED);  // api-1: connect_refused
        CHECK(o.upstream[1] == 200);
      }

      fleet.SetPhase(Phase::kBothUpstreamsDown);
      Observed o = Observe(fleet);
      CHECK(o.gateway_raw == pages::Nginx(502));
      CHECK(o.upstream_connect_err[0] == ECONNREFUSED);
      CHECK(o.upstream_connect_err[1] == ECONNREFUSED);

      fleet.SetPhase(Phase::kGatewayMisrouted);
      o = Observe(fleet);
      CHECK(o.gateway_raw == pages::Nginx(502));
      CHECK(o.upstream[0] == 200);
      CHECK(o.upstream[1] == 200);

      fleet.SetPhase(Phase::kHealthy);
      o = Observe(fleet);
      CHECK(o.gateway == 200);
      CHECK(o.upstream[0] == 200);
      CHECK(o.upstream[1] == 200);
    }
    std::lock_guard lock(mu);
    const std::vector<Phase> expected = {Phase::kOneUpstreamDown,  Phase::kBothUpstreamsDown,
                                         Phase::kGatewayMisrouted, Phase::kHealthy,
                                         Phase::kOneUpstreamDown,  Phase::kBothUpstreamsDown,
                                         Phase::kGatewayMisrouted, Phase::kHealthy};
    CHECK(seen == expected);
  }
  SUBCASE("SetPhase to the current phase calls no callback") {
    fleet.SetPhase(Phase::kHealthy);
    std::lock_guard lock(mu);
    CHECK(seen.empty());
  }
}

TEST_CASE("DemoFleet: phase names and order") {
  using Phase = DemoFleet::Phase;
  CHECK(DemoFleet::PhaseName(Phase::kHealthy) == "healthy");
  CHECK(DemoFleet::PhaseName(Phase::kOneUpstreamDown) == "one upstream down");
  CHECK(DemoFleet::PhaseName(Phase::kBothUpstreamsDown) == "both upstreams down");
  CHECK(DemoFleet::PhaseName(Phase::kGatewayMisrouted) == "gateway misrouted");
  Phase p = Phase::kHealthy;
  for (int i = 0; i < 4; ++i) {
    CHECK_FALSE(DemoFleet::PhaseDescription(p).empty());
    p = DemoFleet::NextPhase(p);
  }
  CHECK(p == Phase::kHealthy);
}

TEST_CASE("DemoFleet: cycles through the phases in order") {
  using Phase = DemoFleet::Phase;
  std::mutex mu;
  std::vector<Phase> seen;
  const auto count = [&] {
    std::lock_guard lock(mu);
    return seen.size();
  };
  {
    DemoFleet fleet(200ms, [&](Phase p) {
      std::lock_guard lock(mu);
      seen.push_back(p);
    });
    REQUIRE(WaitFor([&] { return count() >= 5; }, 20s));
  }  // the destructor stops the cycler without waiting for the next phase
  std::lock_guard lock(mu);
  REQUIRE(seen.size() >= 5);
  const std::vector<Phase> expected = {Phase::kOneUpstreamDown, Phase::kBothUpstreamsDown,
                                       Phase::kGatewayMisrouted, Phase::kHealthy,
                                       Phase::kOneUpstreamDown};
  CHECK(std::vector<Phase>(seen.begin(), seen.begin() + 5) == expected);
}

TEST_CASE("DemoFleet: a phase seen by the callback is in force") {
  using Phase = DemoFleet::Phase;
  std::mutex mu;
  std::optional<int> api1_err_when_down;
  DemoFleet* self = nullptr;
  DemoFleet fleet(100ms, [&](Phase p) {
    if (p != Phase::kOneUpstreamDown) return;
    std::lock_guard lock(mu);
    if (api1_err_when_down || self == nullptr) return;
    api1_err_when_down = Fetch(PortOf(self->UpstreamUrl(0))).connect_err;
  });
  {
    std::lock_guard lock(mu);
    self = &fleet;
  }
  REQUIRE(WaitFor(
      [&] {
        std::lock_guard lock(mu);
        return api1_err_when_down.has_value();
      },
      20s));
  std::lock_guard lock(mu);
  CHECK(*api1_err_when_down == ECONNREFUSED);
}

}  // namespace
}  // namespace gatewatch::fleet
