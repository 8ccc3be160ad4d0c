// The probe engine against the misbehaving fleet on loopback: every outcome class of
// docs/probes.md, phases present/absent, DNS through a test resolver, regions, retries,
// and 1,000 probes in flight against targets that never answer.

#include "probes/http_prober.h"

#include <dirent.h>
#include <doctest/doctest.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "fleet/connect_proxy.h"
#include "fleet/dns_server.h"
#include "fleet/netns.h"
#include "fleet/pages.h"
#include "fleet/raw_server.h"
#include "fleet/tcp_faults.h"
#include "fleet/tls_server.h"
#include "probes/classify.h"
#include "tests/support/wait.h"

namespace gatewatch::probes {
namespace {

using namespace std::chrono_literals;
using fleet::Behavior;
using fleet::RawHttpServer;
using testing::WaitFor;

// Collects results delivered on the engine thread.
class Sink {
 public:
  void Add(ProbeResult r) {
    std::lock_guard lock(mu_);
    results_.push_back(std::move(r));
    cv_.notify_all();
  }
  void Skip() {
    std::lock_guard lock(mu_);
    ++skips_;
    cv_.notify_all();
  }
  bool WaitCount(size_t n, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return results_.size() + skips_ >= n; });
  }
  std::vector<ProbeResult> Results() {
    std::lock_guard lock(mu_);
    return results_;
  }
  int Skips() {
    std::lock_guard lock(mu_);
    return skips_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<ProbeResult> results_;
  int skips_ = 0;
};

MonitorConfig Monitor(std::string url, std::string name = "m") {
  MonitorConfig m;
  m.name = std::move(name);
  m.url = std::move(url);
  m.probe.timeout = 3s;
  m.probe.interval = 30s;
  m.probe.retries = 0;
  m.probe.user_agent = "gatewatch-test";
  return m;
}

RegionConfig Local() { return RegionConfig{"local", "", {}, ""}; }

class Harness {
 public:
  explicit Harness(std::string ca_file = "", int max_in_flight = 64)
      : prober_(Options(ca_file, max_in_flight), clock_) {}

  void Submit(const MonitorConfig& m, const RegionConfig& region, Sink& sink,
              SteadyTime start_by = SteadyTime::max()) {
    Submit(std::make_shared<const MonitorConfig>(m), std::make_shared<const RegionConfig>(region),
           sink, start_by);
  }
  // The same config objects every time: the engine knows a monitor x region by them.
  void Submit(std::shared_ptr<const MonitorConfig> m, std::shared_ptr<const RegionConfig> region,
              Sink& sink, SteadyTime start_by = SteadyTime::max()) {
    ProbeJob job;
    job.monitor = std::move(m);
    job.region = std::move(region);
    job.start_by = start_by;
    job.on_result = [&sink](ProbeResult r) { sink.Add(std::move(r)); };
    job.on_skip = [&sink] { sink.Skip(); };
    prober_.Submit(std::move(job));
  }

  // One probe, its confirmed result.
  ProbeResult Probe(const MonitorConfig& m, const RegionConfig& region = Local()) {
    Sink sink;
    Submit(m, region, sink);
    const size_t expected = static_cast<size_t>(m.probe.retries) + 1;
    REQUIRE(sink.WaitCount(1, m.probe.timeout + 10s));
    auto all = sink.Results();
    // A failure is followed by its retries; wait for the confirmed one.
    if (!all.back().confirmed) {
      REQUIRE(sink.WaitCount(expected, (m.probe.timeout + m.probe.retry_delay) * expected + 10s));
      all = sink.Results();
    }
    REQUIRE(all.back().confirmed);
    return all.back();
  }

  HttpProber& prober() { return prober_; }

 private:
  static HttpProber::Options Options(const std::string& ca_file, int max_in_flight) {
    HttpProber::Options o;
    if (!ca_file.empty()) o.ca_file = ca_file;
    o.max_in_flight = max_in_flight;
    return o;
  }
  RealClock clock_;
  HttpProber prober_;
};

bool HasHeader(const ProbeResult& r, std::string_view name, std::string_view value) {
  for (const auto& [n, v] : r.headers) {
    if (n == name && v == value) return true;
  }
  return false;
}

int ThreadCount() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/task")) {
    while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
    closedir(d);
  }
  return n;
}

long RssKiB() {
  std::ifstream in("/proc/self/status");
  std::string key;
  long value = 0;
  while (in >> key) {
    if (key == "VmRSS:") {
      in >> value;
      return value;
    }
    in.ignore(1 << 10, '\n');
  }
  return 0;
}

TEST_CASE("Engine: ok with every phase of plain HTTP, no tls, nothing faked") {
  RawHttpServer server;
  Harness h;
  const ProbeResult r = h.Probe(Monitor(server.Url("/healthz")));
  CHECK(r.outcome == Outcome::kOk);
  CHECK(r.http_status == 200);
  CHECK(r.http_version == "1.1");
  CHECK(r.confirmed);
  CHECK(r.attempt == 0);
  CHECK_FALSE(r.phases.resolve.has_value());  // an IP literal is not resolved
  CHECK(r.phases.connect.has_value());
  CHECK_FALSE(r.phases.tls.has_value());
  CHECK(r.phases.processing.has_value());
  CHECK(r.phases.transfer.has_value());
  REQUIRE(r.phases.total.has_value());
  CHECK(*r.phases.total >= *r.phases.connect);
  CHECK(r.remote_ip == "127.0.0.1");
  CHECK(r.bytes_read == 2);
  CHECK(r.emitter == Emitter::kNone);
  CHECK(server.LastRequestHead().find("User-Agent: gatewatch-test") != std::string::npos);
}

TEST_CASE("Engine: request method, headers and body are sent as configured") {
  RawHttpServer server;
  Harness h;
  MonitorConfig m = Monitor(server.Url("/submit"));
  m.probe.method = "POST";
  m.probe.body = "{\"probe\":1}";
  m.probe.headers = {{"X-Probe", "1"}, {"Content-Type", "application/json"}};
  CHECK(h.Probe(m).outcome == Outcome::kOk);
  const std::string head = server.LastRequestHead();
  CHECK(head.rfind("POST /submit HTTP/1.1", 0) == 0);
  CHECK(head.find("X-Probe: 1") != std::string::npos);
  CHECK(head.find("Content-Length: 11") != std::string::npos);
}

TEST_CASE("Engine: connect_refused, connect_timeout") {
  Harness h;
  const ProbeResult refused =
      h.Probe(Monitor("http://127.0.0.1:" + std::to_string(fleet::RefusedPort()) + "/"));
  CHECK(refused.outcome == Outcome::kConnectRefused);
  CHECK(refused.http_status == 0);
  CHECK_FALSE(refused.phases.connect.has_value());
  CHECK(refused.phases.total.has_value());

  fleet::BlackholeServer blackhole;
  MonitorConfig m = Monitor(blackhole.Url());
  m.probe.connect_timeout = 300ms;
  const ProbeResult timeout = h.Probe(m);
  CHECK(timeout.outcome == Outcome::kConnectTimeout);
  CHECK_FALSE(timeout.phases.connect.has_value());
  CHECK(*timeout.phases.total >= 250ms);
  CHECK(*timeout.phases.total < 3s);  // the connect limit, not the whole timeout
}

TEST_CASE("Engine: network_unreachable inside an isolated network namespace") {
  if (!fleet::CanCreateNetworkNamespace()) {
    MESSAGE("SKIPPED: network namespaces are not allowed here; network_unreachable untested");
    return;
  }
  std::optional<ProbeResult> result;
  auto ran = fleet::RunInIsolatedNetwork([&] {
    // The engine thread is created here, so it lives in the namespace (lo only, no routes).
    Harness h;
    result = h.Probe(Monitor("http://" + std::string(fleet::kUnroutableIpv4) + "/"));
  });
  REQUIRE(ran.has_value());
  REQUIRE(result.has_value());
  CHECK(result->outcome == Outcome::kNetworkUnreachable);
  CHECK_FALSE(result->phases.connect.has_value());
}

TEST_CASE("Engine: timeouts are classified by the phase they interrupt") {
  RawHttpServer server;
  server.Route("/slow-headers", Behavior::SlowHeaders(30s))
      .Route("/slow-body", Behavior::SlowBody(200ms, 100000));
  Harness h;
  MonitorConfig ttfb = Monitor(server.Url("/slow-headers"));
  ttfb.probe.timeout = 700ms;
  const ProbeResult a = h.Probe(ttfb);
  CHECK(a.outcome == Outcome::kTimeoutTtfb);
  CHECK(a.phases.connect.has_value());
  CHECK_FALSE(a.phases.processing.has_value());
  CHECK(*a.phases.total >= 650ms);

  // A status line, then one header line that never ends: still no response headers.
  Behavior drip = Behavior::Raw("HTTP/1.1 200 OK\r\nX-Drip: ");
  drip.drip_bytes = 100000;
  drip.drip_interval = 100ms;
  server.Route("/dripping-headers", drip);
  MonitorConfig dripping = Monitor(server.Url("/dripping-headers"));
  dripping.probe.timeout = 700ms;
  const ProbeResult d = h.Probe(dripping);
  CHECK(d.outcome == Outcome::kTimeoutTtfb);
  CHECK(d.detail == "request sent, no response headers in time");

  MonitorConfig body = Monitor(server.Url("/slow-body"));
  body.probe.timeout = 900ms;
  const ProbeResult b = h.Probe(body);
  CHECK(b.outcome == Outcome::kTimeoutBody);
  CHECK(b.http_status == 200);
  CHECK(b.phases.processing.has_value());
  CHECK(b.phases.transfer.has_value());
}

TEST_CASE("Engine: resets, empty replies and garbage") {
  RawHttpServer server;
  server.Route("/reset", Behavior::ResetAfterRequest())
      .Route("/empty", Behavior::EmptyReply())
      .Route("/garbage", Behavior::Garbage())
      .Route("/huge-headers", Behavior::OversizedHeaders(200 * 1024));
  RawHttpServer reset_on_accept(Behavior::ResetOnAccept());
  Harness h;
  CHECK(h.Probe(Monitor(server.Url("/reset"))).outcome == Outcome::kConnectionReset);
  CHECK(h.Probe(Monitor(reset_on_accept.Url())).outcome == Outcome::kConnectionReset);
  const ProbeResult empty = h.Probe(Monitor(server.Url("/empty")));
  CHECK(empty.outcome == Outcome::kEmptyReply);
  CHECK(empty.phases.connect.has_value());
  CHECK(empty.http_status == 0);
  CHECK(h.Probe(Monitor(server.Url("/garbage"))).outcome == Outcome::kMalformedResponse);
  const ProbeResult huge = h.Probe(Monitor(server.Url("/huge-headers")));
  CHECK(huge.outcome == Outcome::kMalformedResponse);
}

TEST_CASE("Engine: body is capped at max_body and the probe still succeeds") {
  RawHttpServer server(Behavior::OversizedBody(10 * 1024 * 1024, /*chunked=*/true));
  Harness h;
  MonitorConfig m = Monitor(server.Url("/big"));
  m.probe.max_body = 10 * 1024;
  const ProbeResult r = h.Probe(m);
  CHECK(r.outcome == Outcome::kOk);
  CHECK(r.bytes_read == 10 * 1024);
}

TEST_CASE("Engine: redirects: unexpected_status when not followed, redirect_loop when followed") {
  RawHttpServer server(Behavior::RedirectLoop());
  Harness h;
  MonitorConfig m = Monitor(server.Url("/loop/1"));
  const ProbeResult once = h.Probe(m);
  CHECK(once.outcome == Outcome::kUnexpectedStatus);
  CHECK(once.http_status == 302);
  m.probe.follow_redirects = true;
  const ProbeResult loop = h.Probe(m);
  CHECK(loop.outcome == Outcome::kRedirectLoop);
  CHECK(server.RequestCount() == 1 + 1 + kMaxRedirects);
}

TEST_CASE("Engine: status classes with the emitter of each gateway's page") {
  RawHttpServer server;
  server.Route("/404", Behavior::Status(404))
      .Route("/500", Behavior::Status(500))
      .Route("/nginx-502", Behavior::Raw(fleet::pages::Nginx(502)))
      .Route("/haproxy-503", Behavior::Raw(fleet::pages::Haproxy(503)))
      .Route("/nginx-504", Behavior::Raw(fleet::pages::Nginx(504)))
      .Route("/cf-522", Behavior::Raw(fleet::pages::CloudflareBranded(522)))
      .Route("/204", Behavior::Status(204));
  Harness h;
  CHECK(h.Probe(Monitor(server.Url("/404"))).outcome == Outcome::kHttp4xx);
  const ProbeResult e500 = h.Probe(Monitor(server.Url("/500")));
  CHECK(e500.outcome == Outcome::kHttp500);
  CHECK(e500.emitter != Emitter::kNone);
  const ProbeResult e502 = h.Probe(Monitor(server.Url("/nginx-502")));
  CHECK(e502.outcome == Outcome::kHttp502);
  CHECK(e502.emitter == Emitter::kNginx);
  CHECK(HasHeader(e502, "server", "nginx/1.22.1"));
  CHECK(e502.body_snippet.find("<center><h1>502 Bad Gateway</h1></center>") != std::string::npos);
  const ProbeResult e503 = h.Probe(Monitor(server.Url("/haproxy-503")));
  CHECK(e503.outcome == Outcome::kHttp503);
  CHECK(e503.emitter == Emitter::kHaproxy);
  CHECK(e503.reason == Reason::kNoHealthyUpstream);
  const ProbeResult e504 = h.Probe(Monitor(server.Url("/nginx-504")));
  CHECK(e504.outcome == Outcome::kHttp504);
  CHECK(e504.reason == Reason::kUpstreamTimeout);
  const ProbeResult e522 = h.Probe(Monitor(server.Url("/cf-522")));
  CHECK(e522.outcome == Outcome::kHttp5xx);
  CHECK(e522.http_status == 522);
  CHECK((e522.emitter == Emitter::kCloudflare || e522.emitter == Emitter::kCloudflareOrigin));

  MonitorConfig strict = Monitor(server.Url("/204"));
  strict.probe.expect_status = {StatusMatcher{200, 0}};
  CHECK(h.Probe(strict).outcome == Outcome::kUnexpectedStatus);
}

TEST_CASE("Engine: assertion_failed on body and header assertions") {
  RawHttpServer server;
  Harness h;
  MonitorConfig body = Monitor(server.Url());
  body.body_contains = "healthy";
  const ProbeResult a = h.Probe(body);
  CHECK(a.outcome == Outcome::kAssertionFailed);
  CHECK(a.detail.find("healthy") != std::string::npos);
  body.body_contains = "ok";
  CHECK(h.Probe(body).outcome == Outcome::kOk);

  MonitorConfig header = Monitor(server.Url());
  header.header_contains = {{"content-type", "json"}};
  CHECK(h.Probe(header).outcome == Outcome::kAssertionFailed);
  header.header_contains = {{"content-type", "text/plain"}};
  CHECK(h.Probe(header).outcome == Outcome::kOk);
}

TEST_CASE("Engine: excused is a 503 with Retry-After inside a silence") {
  RawHttpServer server(
      Behavior::Raw("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 120\r\nContent-Length: "
                    "11\r\n\r\nmaintenance"));
  Harness h;
  const ProbeResult r = h.Probe(Monitor(server.Url()));
  CHECK(r.outcome == Outcome::kHttp503);
  CHECK(HasHeader(r, "retry-after", "120"));
  CHECK(ExcuseIfSilenced(r, /*silenced=*/false) == Outcome::kHttp503);
  CHECK(ExcuseIfSilenced(r, /*silenced=*/true) == Outcome::kExcused);
  ProbeResult no_retry_after = r;
  no_retry_after.headers.clear();
  CHECK(ExcuseIfSilenced(no_retry_after, true) == Outcome::kHttp503);
}

TEST_CASE("Engine: proxy_error when the region's CONNECT proxy refuses or is down") {
  RawHttpServer server;
  fleet::ConnectProxy refusing(fleet::ConnectProxy::Mode::kRefuse);
  fleet::ConnectProxy bad_gateway(fleet::ConnectProxy::Mode::kBadGateway);
  Harness h;
  RegionConfig region{"eu-proxy", refusing.Url(), {}, ""};
  const ProbeResult r = h.Probe(Monitor(server.Url()), region);
  CHECK(r.outcome == Outcome::kProxyError);
  CHECK(r.detail.find("403") != std::string::npos);
  CHECK(refusing.ConnectCount() == 1);
  CHECK(server.RequestCount() == 0);  // the target was never reached

  region.proxy = bad_gateway.Url();
  CHECK(h.Probe(Monitor(server.Url()), region).outcome == Outcome::kProxyError);
  region.proxy = "http://127.0.0.1:" + std::to_string(fleet::RefusedPort());
  CHECK(h.Probe(Monitor(server.Url()), region).outcome == Outcome::kProxyError);
}

TEST_CASE("Engine: a direct region ignores proxy variables in the environment") {
  RawHttpServer server;
  fleet::ConnectProxy proxy(fleet::ConnectProxy::Mode::kRefuse);
  for (const char* var : {"http_proxy", "HTTPS_PROXY", "all_proxy"})
    setenv(var, proxy.Url().c_str(), 1);
  Harness h;
  const ProbeResult r = h.Probe(Monitor(server.Url()));
  for (const char* var : {"http_proxy", "HTTPS_PROXY", "all_proxy"}) unsetenv(var);
  CHECK(r.outcome == Outcome::kOk);
  CHECK(proxy.ConnectCount() == 0);
  CHECK(proxy.OtherRequestCount() == 0);
}

TEST_CASE("Engine: TLS: ok with facts, every invalid certificate, and handshake failures") {
  fleet::TestCa ca;
  fleet::TlsServer valid(ca, {});
  Harness h(ca.CaFile());
  const ProbeResult ok = h.Probe(Monitor(valid.UrlFor("localhost", "/")));
  CHECK(ok.outcome == Outcome::kOk);
  CHECK(ok.phases.resolve.has_value());
  CHECK(ok.phases.tls.has_value());
  CHECK(ok.tls.version.rfind("TLSv1.", 0) == 0);
  REQUIRE(ok.tls.earliest_expiry.has_value());
  CHECK(std::chrono::abs(*ok.tls.earliest_expiry - valid.LeafNotAfter()) <= 1s);
  CHECK(ok.tls.issuer.find("gatewatch test CA") != std::string::npos);

  for (auto kind : {fleet::LeafKind::kExpired, fleet::LeafKind::kNotYetValid,
                    fleet::LeafKind::kWrongHost, fleet::LeafKind::kSelfSigned}) {
    CAPTURE(static_cast<int>(kind));
    fleet::TlsServerOptions o;
    o.leaf = kind;
    fleet::TlsServer bad(ca, o);
    const ProbeResult r = h.Probe(Monitor(bad.UrlFor("localhost", "/")));
    CHECK(r.outcome == Outcome::kTlsCertInvalid);
    CHECK_FALSE(r.phases.tls.has_value());
    // Facts are captured even though verification failed.
    CHECK(r.tls.earliest_expiry.has_value());
    MonitorConfig skip = Monitor(bad.UrlFor("localhost", "/"));
    skip.probe.tls_skip_verify = true;
    CHECK(h.Probe(skip).outcome == Outcome::kOk);
  }

  fleet::TlsServerOptions garbage;
  garbage.mode = fleet::TlsServerOptions::Mode::kGarbageHandshake;
  fleet::TlsServer garbage_server(ca, garbage);
  CHECK(h.Probe(Monitor(garbage_server.Url())).outcome == Outcome::kTlsError);

  fleet::TlsServerOptions reset;
  reset.mode = fleet::TlsServerOptions::Mode::kResetHandshake;
  fleet::TlsServer reset_server(ca, reset);
  CHECK(h.Probe(Monitor(reset_server.Url())).outcome == Outcome::kTlsError);

  fleet::TlsServerOptions stall;
  stall.mode = fleet::TlsServerOptions::Mode::kStallHandshake;
  fleet::TlsServer stall_server(ca, stall);
  MonitorConfig m = Monitor(stall_server.Url());
  m.probe.tls_timeout = 400ms;
  const ProbeResult stalled = h.Probe(m);
  CHECK(stalled.outcome == Outcome::kTlsError);
  CHECK(stalled.detail.find("did not finish within 400ms") != std::string::npos);
  // libcurl 7.88 reports no connect time when the handshake fails: absent, never faked.
  CHECK_FALSE(stalled.phases.tls.has_value());
  CHECK(*stalled.phases.total < 3s);  // the TLS limit, not the whole timeout
}

TEST_CASE("Engine: an IDN host is resolved and sent by its ASCII name") {
  RawHttpServer server;
  fleet::DnsServer dns;
  dns.SetAnswer("xn--bcher-kva.gatewatch.test", {"127.0.0.1"});
  RegionConfig region{"own-dns", "", {dns.Address()}, ""};
  Harness h;
  const std::string port = std::to_string(server.port());
  const ProbeResult r =
      h.Probe(Monitor("http://b\xc3\xbc" "cher.gatewatch.test:" + port + "/"), region);  // bücher
  CHECK(r.outcome == Outcome::kOk);
  CHECK(r.remote_ip == "127.0.0.1");
  CHECK(dns.QueryCount("xn--bcher-kva.gatewatch.test", fleet::DnsServer::QueryType::kA) >= 1);
  CHECK(server.LastRequestHead().find("\r\nHost: xn--bcher-kva.gatewatch.test:" + port + "\r\n") !=
        std::string::npos);
}

TEST_CASE("Engine: DNS through the region's resolver: timed, every failure is dns_error") {
  RawHttpServer server;
  fleet::DnsServer dns;
  dns.SetAnswer("svc.gatewatch.test", {"127.0.0.1"});
  dns.SetNxdomain("gone.gatewatch.test");
  dns.SetServfail("broken.gatewatch.test");
  dns.SetSilent("silent.gatewatch.test");
  dns.SetRotating("moving.gatewatch.test", {{"127.0.0.1"}, {"127.0.0.1", "127.0.0.9"}});
  RegionConfig region{"own-dns", "", {dns.Address()}, ""};
  Harness h;
  const std::string port = std::to_string(server.port());

  const ProbeResult ok = h.Probe(Monitor("http://svc.gatewatch.test:" + port + "/"), region);
  CHECK(ok.outcome == Outcome::kOk);
  REQUIRE(ok.phases.resolve.has_value());
  CHECK(ok.resolved == std::vector<std::string>{"127.0.0.1"});
  CHECK(ok.remote_ip == "127.0.0.1");
  CHECK(dns.QueryCount("svc.gatewatch.test", fleet::DnsServer::QueryType::kA) >= 1);
  CHECK(*ok.phases.total >= *ok.phases.resolve);

  const ProbeResult nx = h.Probe(Monitor("http://gone.gatewatch.test:" + port + "/"), region);
  CHECK(nx.outcome == Outcome::kDnsError);
  CHECK(nx.detail.find("NXDOMAIN") != std::string::npos);
  CHECK(nx.phases.resolve.has_value());
  CHECK_FALSE(nx.phases.connect.has_value());

  const ProbeResult sf = h.Probe(Monitor("http://broken.gatewatch.test:" + port + "/"), region);
  CHECK(sf.outcome == Outcome::kDnsError);
  CHECK(sf.detail.find("SERVFAIL") != std::string::npos);

  MonitorConfig silent = Monitor("http://silent.gatewatch.test:" + port + "/");
  silent.probe.resolve_timeout = 500ms;
  const ProbeResult to = h.Probe(silent, region);
  CHECK(to.outcome == Outcome::kDnsError);
  CHECK(to.detail.find("did not answer within 500ms") != std::string::npos);
  CHECK(*to.phases.total < 3s);

  const ProbeResult first = h.Probe(Monitor("http://moving.gatewatch.test:" + port + "/"), region);
  const ProbeResult second = h.Probe(Monitor("http://moving.gatewatch.test:" + port + "/"), region);
  CHECK(first.resolved == std::vector<std::string>{"127.0.0.1"});
  CHECK(second.resolved == std::vector<std::string>{"127.0.0.1", "127.0.0.9"});
}

TEST_CASE("Engine: hundreds of lookups add no thread (c-ares on the engine loop)") {
  RawHttpServer server;
  fleet::DnsServer dns;
  constexpr int kNames = 300;
  for (int i = 0; i < kNames; ++i)
    dns.SetAnswer("n" + std::to_string(i) + ".gatewatch.test", {"127.0.0.1"});
  RegionConfig region{"own-dns", "", {dns.Address()}, ""};
  Harness h("", 128);
  Sink warmup;
  h.Submit(Monitor(server.Url()), Local(), warmup);
  REQUIRE(warmup.WaitCount(1, 10s));
  const int baseline = ThreadCount();

  Sink sink;
  for (int i = 0; i < kNames; ++i) {
    h.Submit(Monitor("http://n" + std::to_string(i) +
                     ".gatewatch.test:" + std::to_string(server.port()) + "/"),
             region, sink);
  }
  int peak = baseline;
  REQUIRE(WaitFor(
      [&] {
        peak = std::max(peak, ThreadCount());
        return sink.Results().size() == kNames;
      },
      30s));
  CHECK(peak == baseline);
  int ok = 0;
  for (const auto& r : sink.Results())
    ok += r.outcome == Outcome::kOk && r.phases.resolve.has_value();
  CHECK(ok == kNames);
}

TEST_CASE("Engine: regions probing at once never mix addresses") {
  RawHttpServer server;
  fleet::DnsServer dns_a, dns_b;
  dns_a.SetAnswer("svc.gatewatch.test", {"127.0.0.1"});
  dns_b.SetAnswer("svc.gatewatch.test", {"127.0.0.3"});  // nothing listens there
  fleet::ConnectProxy proxy;
  const RegionConfig a{"a", "", {dns_a.Address()}, ""};
  const RegionConfig b{"b", "", {dns_b.Address()}, ""};
  const RegionConfig via{"via-proxy", proxy.Url(), {}, ""};
  Harness h;
  Sink sink;
  const std::string port = std::to_string(server.port());
  constexpr int kRounds = 20;
  for (int i = 0; i < kRounds; ++i) {
    h.Submit(Monitor("http://svc.gatewatch.test:" + port + "/", "m"), a, sink);
    h.Submit(Monitor("http://svc.gatewatch.test:" + port + "/", "m"), b, sink);
    h.Submit(Monitor("http://localhost:" + port + "/", "m"), via, sink);
  }
  REQUIRE(sink.WaitCount(3 * kRounds, 30s));
  int per_region[3] = {0, 0, 0};
  for (const auto& r : sink.Results()) {
    CAPTURE(r.region);
    if (r.region == "a") {
      ++per_region[0];
      CHECK(r.outcome == Outcome::kOk);
      CHECK(r.resolved == std::vector<std::string>{"127.0.0.1"});
      CHECK(r.remote_ip == "127.0.0.1");
    } else if (r.region == "b") {
      ++per_region[1];
      CHECK(r.outcome == Outcome::kConnectRefused);
      CHECK(r.resolved == std::vector<std::string>{"127.0.0.3"});
    } else {
      ++per_region[2];
      CHECK(r.outcome == Outcome::kOk);
      CHECK(r.resolved.empty());  // the proxy resolves
      CHECK(r.remote_ip.empty());
      CHECK_FALSE(r.phases.resolve.has_value());
    }
  }
  CHECK(per_region[0] == kRounds);
  CHECK(per_region[1] == kRounds);
  CHECK(per_region[2] == kRounds);
  CHECK(proxy.TunnelCount() == kRounds);
}

TEST_CASE("Engine: retries after retry_delay, every attempt delivered, the last confirmed") {
  RawHttpServer server(Behavior::Status(502));
  Harness h;
  MonitorConfig m = Monitor(server.Url());
  m.probe.retries = 2;
  m.probe.retry_delay = 100ms;
  Sink sink;
  h.Submit(m, Local(), sink);
  REQUIRE(sink.WaitCount(3, 10s));
  const auto all = sink.Results();
  REQUIRE(all.size() == 3);
  for (int i = 0; i < 3; ++i) {
    CHECK(all[i].attempt == i);
    CHECK(all[i].outcome == Outcome::kHttp502);
    CHECK(all[i].confirmed == (i == 2));
  }
  CHECK(all[1].started_at - all[0].started_at >= 100ms);
  CHECK(server.RequestCount() == 3);

  // A success needs no confirmation.
  RawHttpServer healthy;
  Sink one;
  MonitorConfig ok = Monitor(healthy.Url());
  ok.probe.retries = 2;
  h.Submit(ok, Local(), one);
  REQUIRE(one.WaitCount(1, 10s));
  CHECK(one.Results()[0].confirmed);
  CHECK_FALSE(one.WaitCount(2, 300ms));
}

TEST_CASE("Engine: a probe that cannot start by its start_by is skipped, not queued") {
  RawHttpServer server(Behavior::SlowHeaders(30s));
  Harness h("", 1);  // one slot
  Sink busy, skipped;
  MonitorConfig slow = Monitor(server.Url());
  slow.probe.timeout = 800ms;
  h.Submit(slow, Local(), busy);
  REQUIRE(WaitFor([&] { return h.prober().GetStats().in_flight == 1; }));
  h.Submit(Monitor(server.Url()), Local(), skipped, std::chrono::steady_clock::now() + 100ms);
  REQUIRE(skipped.WaitCount(1, 10s));
  CHECK(skipped.Skips() == 1);
  CHECK(skipped.Results().empty());
  CHECK(h.prober().GetStats().skipped == 1);
  REQUIRE(busy.WaitCount(1, 10s));
}

TEST_CASE("Engine: 1,000 probes in flight against a fleet that never answers") {
  RawHttpServer server(Behavior::SlowHeaders(60s));
  constexpr int kProbes = 1000;
  Harness h("", kProbes);
  Sink warmup;
  h.Submit(Monitor("http://127.0.0.1:" + std::to_string(fleet::RefusedPort()) + "/"), Local(),
           warmup);
  REQUIRE(warmup.WaitCount(1, 10s));
  const int threads_before = ThreadCount();
  const long rss_before = RssKiB();

  Sink sink;
  MonitorConfig m = Monitor(server.Url("/never"));
  m.probe.timeout = 2s;
  for (int i = 0; i < kProbes; ++i) h.Submit(m, Local(), sink);
  int peak_threads = threads_before;
  int peak_in_flight = 0;
  long peak_rss = rss_before;
  REQUIRE(WaitFor(
      [&] {
        peak_threads = std::max(peak_threads, ThreadCount());
        peak_in_flight = std::max(peak_in_flight, h.prober().GetStats().in_flight);
        peak_rss = std::max(peak_rss, RssKiB());
        return sink.Results().size() == kProbes;
      },
      60s));
  const auto results = sink.Results();
  int timeouts = 0;
  std::map<std::string, int> outcomes;
  for (const auto& r : results) {
    ++outcomes[std::string(ToString(r.outcome)) + ": " + r.detail.substr(0, 60)];
    timeouts += r.outcome == Outcome::kTimeoutTtfb;
    CHECK(*r.phases.total >= 1900ms);  // each one ends at its own deadline...
    CHECK(*r.phases.total < 6s);       // ...not much later (generous: shared machine)
  }
  for (const auto& [what, n] : outcomes) MESSAGE(n << " x " << what);
  CHECK(timeouts == kProbes);
  CHECK(peak_in_flight == kProbes);
  CHECK(peak_threads == threads_before);
  MESSAGE("RSS before " << rss_before << " KiB, peak " << peak_rss << " KiB");
  CHECK(peak_rss - rss_before < 200 * 1024);  // bounded: well under 200 KiB per probe
  CHECK(h.prober().GetStats().in_flight == 0);
}

TEST_CASE(
    "Engine: a waiting probe is skipped as soon as its start_by passes, not when a slot frees") {
  RawHttpServer silent(Behavior::SlowHeaders(30s));
  Harness h("", 1);  // one slot
  Sink busy, skipped;
  MonitorConfig hold = Monitor(silent.Url(), "hold");
  hold.probe.timeout = 3s;
  h.Submit(hold, Local(), busy);
  REQUIRE(WaitFor([&] { return h.prober().GetStats().in_flight == 1; }));
  h.Submit(Monitor(silent.Url(), "late"), Local(), skipped,
           std::chrono::steady_clock::now() + 100ms);
  REQUIRE(skipped.WaitCount(1, 10s));
  CHECK(skipped.Skips() == 1);
  CHECK(busy.Results().empty());  // the slot is still taken: the skip did not wait for it
  CHECK(h.prober().GetStats().queued == 0);
  REQUIRE(busy.WaitCount(1, 10s));
  CHECK(busy.Results()[0].outcome == Outcome::kTimeoutTtfb);
}

TEST_CASE("Engine: under overload the newest first attempt starts first") {
  RawHttpServer silent(Behavior::SlowHeaders(30s));
  RawHttpServer healthy;
  Harness h("", 1);  // one slot
  Sink busy, sink;
  MonitorConfig hold = Monitor(silent.Url(), "hold");
  hold.probe.timeout = 1500ms;
  h.Submit(hold, Local(), busy);
  REQUIRE(WaitFor([&] { return h.prober().GetStats().in_flight == 1; }));
  for (const char* name : {"a", "b", "c"}) h.Submit(Monitor(healthy.Url(), name), Local(), sink);
  REQUIRE(WaitFor([&] { return h.prober().GetStats().queued == 3; }));
  REQUIRE(sink.WaitCount(3, 10s));
  const auto results = sink.Results();
  REQUIRE(results.size() == 3);
  // Each freed slot goes to the newest waiting probe: the probes that run measure the
  // present, and the oldest are the ones left to expire.
  CHECK(results[0].monitor == "c");
  CHECK(results[1].monitor == "b");
  CHECK(results[2].monitor == "a");
  for (const auto& r : results) CHECK(r.outcome == Outcome::kOk);
  CHECK(busy.Results().size() == 1);
}

TEST_CASE("Engine: under lasting overload every monitor gets its turn, not the newest every time") {
  // One slot; each round a "hold" probe takes it for 300 ms while a, b, c, d wait with a
  // start_by of 800 ms. When the slot frees, one of them starts and holds it for 1.5 s, so
  // the other three expire: one run per round. Newest-first alone would pick d every round
  // (the mass-outage bench showed 264 of 2,000 monitors ever probed); a monitor x region
  // skipped last time is owed a run and goes first, the longest-skipped first.
  RawHttpServer silent(Behavior::SlowHeaders(30s));
  Harness h("", 1);
  const auto region = std::make_shared<const RegionConfig>(Local());
  MonitorConfig hold_config = Monitor(silent.Url(), "hold");
  hold_config.probe.timeout = 300ms;
  const auto hold = std::make_shared<const MonitorConfig>(hold_config);
  std::vector<std::shared_ptr<const MonitorConfig>> waiting;
  for (const char* name : {"a", "b", "c", "d"}) {
    MonitorConfig m = Monitor(silent.Url(), name);
    m.probe.timeout = 1500ms;
    waiting.push_back(std::make_shared<const MonitorConfig>(m));
  }
  Sink held, sink;
  std::vector<std::string> ran;
  for (size_t round = 1; round <= 4; ++round) {
    CAPTURE(round);
    REQUIRE(WaitFor([&] { return h.prober().GetStats().in_flight == 0; }, 10s));
    h.Submit(hold, region, held);
    REQUIRE(WaitFor([&] { return h.prober().GetStats().in_flight == 1; }));
    const auto start_by = std::chrono::steady_clock::now() + 800ms;
    for (const auto& m : waiting) h.Submit(m, region, sink, start_by);
    REQUIRE(sink.WaitCount(4 * round, 20s));  // one result and three skips per round
    REQUIRE(sink.Results().size() == round);
    ran.push_back(sink.Results().back().monitor);
    MESSAGE("round " << round << ": " << ran.back() << " ran");
  }
  CHECK(sink.Skips() == 12);
  std::vector<std::string> sorted = ran;
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted == std::vector<std::string>{"a", "b", "c", "d"});
  CHECK(ran.front() == "d");  // with nothing owed yet, the newest
}

TEST_CASE("Engine: a confirmation retry starts before first attempts that wait with it") {
  RawHttpServer bad(Behavior::Status(502));
  RawHttpServer silent(Behavior::SlowHeaders(30s));
  RawHttpServer healthy;
  Harness h("", 1);  // one slot
  Sink sink;
  MonitorConfig retried = Monitor(bad.Url(), "retried");
  retried.probe.retries = 1;
  retried.probe.retry_delay = 100ms;
  h.Submit(retried, Local(), sink);
  REQUIRE(sink.WaitCount(1, 10s));  // attempt 0 failed; its retry is due in 100 ms
  MonitorConfig hold = Monitor(silent.Url(), "hold");
  hold.probe.timeout = 1500ms;
  h.Submit(hold, Local(), sink);
  REQUIRE(WaitFor([&] { return h.prober().GetStats().in_flight == 1; }));
  REQUIRE(WaitFor([&] { return h.prober().GetStats().queued == 1; }));  // the retry waits
  h.Submit(Monitor(healthy.Url(), "fresh"), Local(), sink);
  REQUIRE(WaitFor([&] { return h.prober().GetStats().queued == 2; }));
  REQUIRE(sink.WaitCount(4, 10s));
  const auto results = sink.Results();
  REQUIRE(results.size() == 4);
  CHECK(results[1].monitor == "hold");
  CHECK(results[2].monitor == "retried");
  CHECK(results[2].attempt == 1);
  CHECK(results[2].confirmed);
  CHECK(results[3].monitor == "fresh");
}

TEST_CASE("Engine: a reused easy handle carries nothing of the previous probe") {
  RawHttpServer server;
  server.Route("/nginx-502", Behavior::Raw(fleet::pages::Nginx(502)));
  fleet::TestCa ca;
  fleet::TlsServer tls(ca, {});
  fleet::TlsServerOptions expired_options;
  expired_options.leaf = fleet::LeafKind::kExpired;
  fleet::TlsServer expired(ca, expired_options);
  fleet::ConnectProxy proxy;
  Harness h(ca.CaFile(), 1);  // one slot: every probe below runs on the same handle

  MonitorConfig post = Monitor(server.Url("/submit"));
  post.probe.method = "POST";
  post.probe.body = "{\"probe\":1}";
  post.probe.headers = {{"X-Probe", "1"}};
  post.probe.follow_redirects = true;
  CHECK(h.Probe(post).outcome == Outcome::kOk);
  CHECK(server.LastRequestHead().rfind("POST /submit HTTP/1.1", 0) == 0);

  const ProbeResult get = h.Probe(Monitor(server.Url("/plain")));
  CHECK(get.outcome == Outcome::kOk);
  const std::string head = server.LastRequestHead();
  CHECK(head.rfind("GET /plain HTTP/1.1", 0) == 0);
  CHECK(head.find("X-Probe") == std::string::npos);
  CHECK(head.find("Content-Length") == std::string::npos);

  MonitorConfig head_only = Monitor(server.Url("/head"));
  head_only.probe.method = "HEAD";
  CHECK(h.Probe(head_only).bytes_read == 0);
  CHECK(server.LastRequestHead().rfind("HEAD /head HTTP/1.1", 0) == 0);
  const ProbeResult body_again = h.Probe(Monitor(server.Url("/after-head")));
  CHECK(server.LastRequestHead().rfind("GET /after-head HTTP/1.1", 0) == 0);
  CHECK(body_again.bytes_read == 2);  // NOBODY did not stay

  const ProbeResult gateway = h.Probe(Monitor(server.Url("/nginx-502")));
  CHECK(gateway.emitter == Emitter::kNginx);
  const ProbeResult after_gateway = h.Probe(Monitor(server.Url("/ok")));
  CHECK(after_gateway.outcome == Outcome::kOk);
  CHECK(after_gateway.headers.empty());
  CHECK(after_gateway.body_snippet.empty());
  CHECK(after_gateway.emitter == Emitter::kNone);

  // TLS: facts on every handshake (no session resumed from the previous probe), none for
  // plain HTTP, and verification settings per probe.
  const ProbeResult tls_first = h.Probe(Monitor(tls.UrlFor("localhost", "/")));
  CHECK(tls_first.outcome == Outcome::kOk);
  CHECK(tls_first.tls.earliest_expiry.has_value());
  CHECK(h.Probe(Monitor(server.Url("/plain-between"))).tls.version.empty());
  const ProbeResult tls_second = h.Probe(Monitor(tls.UrlFor("localhost", "/")));
  CHECK(tls_second.outcome == Outcome::kOk);
  CHECK(tls_second.phases.tls.has_value());
  CHECK(tls_second.tls.earliest_expiry.has_value());
  CHECK(tls_second.tls.issuer.find("gatewatch test CA") != std::string::npos);
  CHECK(tls.HandshakeCount() == 2);
  MonitorConfig skip = Monitor(expired.UrlFor("localhost", "/"));
  skip.probe.tls_skip_verify = true;
  CHECK(h.Probe(skip).outcome == Outcome::kOk);
  CHECK(h.Probe(Monitor(expired.UrlFor("localhost", "/"))).outcome == Outcome::kTlsCertInvalid);

  // Route: a proxy region, then a direct one.
  const RegionConfig via{"via-proxy", proxy.Url(), {}, ""};
  CHECK(h.Probe(Monitor(server.Url("/via")), via).outcome == Outcome::kOk);
  const ProbeResult direct = h.Probe(Monitor(server.Url("/direct")));
  CHECK(direct.outcome == Outcome::kOk);
  CHECK(direct.remote_ip == "127.0.0.1");
  CHECK(proxy.TunnelCount() == 1);

  CHECK(h.prober().GetStats().easy_handles_created == 1);  // it was one handle throughout
}

TEST_CASE(
    "Engine: on_tick submits from the engine thread, paced by tick_batch, at least once a second") {
  RawHttpServer server;
  RealClock clock;
  Sink sink;
  std::atomic<int> ticks{0};
  std::atomic<bool> submitted{false};
  std::atomic<bool> busy_loop{false};
  HttpProber::Options o;
  o.on_tick = [&](Prober& p) {
    ++ticks;
    if (!submitted.exchange(true)) {
      ProbeJob job;
      job.monitor = std::make_shared<const MonitorConfig>(Monitor(server.Url("/from-tick")));
      job.region = std::make_shared<const RegionConfig>(Local());
      job.on_result = [&sink](ProbeResult r) { sink.Add(std::move(r)); };
      p.Submit(std::move(job));  // on the engine thread: no wakeup needed
    }
    // Always due: only tick_batch keeps this from running on every loop turn.
    return busy_loop.load() ? clock.Now() : SystemTime::max();
  };
  HttpProber prober(o, clock);
  REQUIRE(sink.WaitCount(1, 10s));
  CHECK(sink.Results()[0].outcome == Outcome::kOk);
  CHECK(server.RequestCount("/from-tick") == 1);

  // SystemTime::max() ("nothing scheduled") still gets a call each second: the daemon's
  // readiness check watches the ticks.
  const int idle_start = ticks.load();
  REQUIRE(WaitFor([&] { return ticks.load() >= idle_start + 2; }, 10s));

  busy_loop = true;
  prober.Wake();
  REQUIRE(WaitFor([&] { return ticks.load() >= idle_start + 4; }, 10s));
  // A measurement window, not a synchronisation: the rate of calls when always due.
  const int before = ticks.load();
  std::this_thread::sleep_for(1s);
  const int per_second = ticks.load() - before;
  MESSAGE("on_tick calls in one second when always due: " << per_second);
  CHECK(per_second >= 1);
  CHECK(per_second <= 1000 / 5 * 2);  // tick_batch 5 ms: ~200, never a busy loop
}

}  // namespace
}  // namespace gatewatch::probes
