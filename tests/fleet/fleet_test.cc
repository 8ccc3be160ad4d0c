// Each fleet server misbehaves as promised, checked with plain blocking sockets (with
// timeouts), hand-built DNS queries and OpenSSL clients.

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "fleet/connect_proxy.h"
#include "fleet/dns_server.h"
#include "fleet/netns.h"
#include "fleet/pages.h"
#include "fleet/raw_server.h"
#include "fleet/socket_util.h"
#include "fleet/tcp_faults.h"
#include "fleet/tls_server.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace gatewatch::fleet {
namespace {

using namespace std::chrono_literals;
using gatewatch::testing::WaitFor;

// ---- blocking client helpers ----

struct Connected {
  UniqueFd fd;
  int err = 0;  // errno of a failed connect()
};

Connected Connect(int port, IpFamily family = IpFamily::kV4, std::chrono::milliseconds io = 5s) {
  Connected c;
  c.fd.Reset(::socket(family == IpFamily::kV4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(c.fd.valid());
  const timeval tv{static_cast<time_t>(io.count() / 1000),
                   static_cast<suseconds_t>((io.count() % 1000) * 1000)};
  ::setsockopt(c.fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(c.fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  socklen_t len = 0;
  const sockaddr_storage addr = LoopbackAddress(family, port, &len);
  if (::connect(c.fd.get(), reinterpret_cast<const sockaddr*>(&addr), len) != 0) c.err = errno;
  return c;
}

bool SendText(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::send(fd, text.data(), text.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    text.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

struct ReadResult {
  std::string data;
  bool eof = false;  // orderly close seen
  int err = 0;       // errno of a failed recv (EAGAIN = the receive timeout passed)
};

// Reads until EOF, an error, `limit` bytes, or (when `until` is non-empty) `until` seen.
ReadResult ReadUntil(int fd, size_t limit = 64 * 1024 * 1024, std::string_view until = "") {
  ReadResult r;
  char buf[64 * 1024];
  while (r.data.size() < limit) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n == 0) {
      r.eof = true;
      break;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      r.err = errno;
      break;
    }
    r.data.append(buf, static_cast<size_t>(n));
    if (!until.empty() && r.data.find(until) != std::string::npos) break;
  }
  return r;
}

std::string Get(std::string_view path) {
  return "GET " + std::string(path) + " HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
}

// One request on a fresh connection; everything until the server closes.
ReadResult Fetch(int port, std::string_view path, IpFamily family = IpFamily::kV4) {
  Connected c = Connect(port, family);
  REQUIRE(c.err == 0);
  REQUIRE(SendText(c.fd.get(), Get(path)));
  return ReadUntil(c.fd.get());
}

std::optional<std::string> HeaderValue(std::string_view response, std::string_view name) {
  const size_t head_end = response.find("\r\n\r\n");
  std::string_view head = response.substr(0, head_end);
  size_t pos = 0;
  while (pos < head.size()) {
    size_t eol = head.find("\r\n", pos);
    if (eol == std::string_view::npos) eol = head.size();
    const std::string_view line = head.substr(pos, eol - pos);
    const size_t colon = line.find(':');
    if (colon == name.size() && strncasecmp(line.data(), name.data(), name.size()) == 0) {
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      return std::string(value);
    }
    pos = eol + 2;
  }
  return std::nullopt;
}

std::string Body(std::string_view response) {
  const size_t head_end = response.find("\r\n\r\n");
  REQUIRE(head_end != std::string_view::npos);
  return std::string(response.substr(head_end + 4));
}

// True when nothing arrives on fd within `ms` (the peer neither wrote nor closed).
bool SilentFor(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, ms) == 0;
}

// ---- TCP faults ----

TEST_CASE("Fleet: refused port answers RST") {
  for (const IpFamily family : {IpFamily::kV4, IpFamily::kV6}) {
    if (family == IpFamily::kV6 && ::access("/proc/net/if_inet6", R_OK) != 0) continue;
    const int port = RefusedPort(family);
    REQUIRE(port > 0);
    Connected c = Connect(port, family);
    CHECK(c.err == ECONNREFUSED);
  }
}

TEST_CASE("Fleet: blackhole leaves connect in progress") {
  BlackholeServer blackhole;
  CHECK(blackhole.fillers() >= 2);  // one established, one probe left in SYN_SENT
  CHECK(blackhole.Url("/x") == "http://127.0.0.1:" + std::to_string(blackhole.port()) + "/x");
  for (int attempt = 0; attempt < 2; ++attempt) {  // stays black for repeated probes
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    socklen_t len = 0;
    const sockaddr_storage addr = LoopbackAddress(IpFamily::kV4, blackhole.port(), &len);
    REQUIRE(::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), len) != 0);
    REQUIRE(errno == EINPROGRESS);
    pollfd p{fd.get(), POLLOUT, 0};
    CHECK(::poll(&p, 1, 300) == 0);  // no SYN-ACK within 300 ms: still in progress
  }
}

// ---- RawHttpServer ----

TEST_CASE("Fleet: raw server answers ok by default") {
  RawHttpServer server;
  CHECK(server.Url() == "http://127.0.0.1:" + std::to_string(server.port()) + "/");
  CHECK(server.Url("/a/b") == "http://127.0.0.1:" + std::to_string(server.port()) + "/a/b");
  const ReadResult r = Fetch(server.port(), "/health?x=1");
  CHECK(r.eof);
  CHECK(r.data.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(Body(r.data) == "ok");
  CHECK(server.RequestCount() == 1);
  CHECK(server.RequestCount("/health") == 1);
  CHECK(server.LastRequestHead().rfind("GET /health?x=1 HTTP/1.1\r\n", 0) == 0);
}

TEST_CASE("Fleet: raw server routes by longest prefix") {
  RawHttpServer server;
  server.Route("/a", Behavior::Status(500)).Route("/a/b", Behavior::Status(502));
  CHECK(Fetch(server.port(), "/a/x").data.rfind("HTTP/1.1 500 Internal Server Error\r\n", 0) == 0);
  CHECK(Fetch(server.port(), "/a/b/c").data.rfind("HTTP/1.1 502 Bad Gateway\r\n", 0) == 0);
  CHECK(Fetch(server.port(), "/z").data.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  server.SetDefault(Behavior::Status(404));
  CHECK(Fetch(server.port(), "/z").data.rfind("HTTP/1.1 404 Not Found\r\n", 0) == 0);
  CHECK(server.RequestCount("/a") == 2);
  CHECK(server.RequestCount() == 4);
  CHECK(server.AcceptCount() == 4);
}

TEST_CASE("Fleet: raw server serves every page byte for byte") {
  RawHttpServer server;
  const std::vector<pages::Page> all = pages::AllPages();
  for (const pages::Page& page : all) server.Route("/p/" + page.name, Behavior::Raw(page.raw));
  for (const pages::Page& page : all) {
    CAPTURE(page.name);
    const ReadResult r = Fetch(server.port(), "/p/" + page.name);
    CHECK(r.eof);
    CHECK(r.data == page.raw);
  }
}

TEST_CASE("Fleet: raw server answers on ::1") {
  if (::access("/proc/net/if_inet6", R_OK) != 0) {
    MESSAGE("SKIPPED: no IPv6 on this host");
    return;
  }
  RawHttpServer server(Behavior::Ok(), IpFamily::kV6);
  CHECK(server.Url("/x") == "http://[::1]:" + std::to_string(server.port()) + "/x");
  CHECK(Body(Fetch(server.port(), "/x", IpFamily::kV6).data) == "ok");
}

TEST_CASE("Fleet: slow headers send nothing before the delay") {
  RawHttpServer server;
  server.Route("/slow", Behavior::SlowHeaders(30s)).Route("/soon", Behavior::SlowHeaders(50ms));
  Connected c = Connect(server.port());
  REQUIRE(SendText(c.fd.get(), Get("/slow")));
  REQUIRE(WaitFor([&] { return server.RequestCount() == 1; }));
  CHECK(SilentFor(c.fd.get(), 300));  // the request was read; no byte for 300 ms of 30 s
  // A short delay ends in a normal response.
  CHECK(Body(Fetch(server.port(), "/soon").data) == "ok");
}

TEST_CASE("Fleet: slow body drips after prompt headers") {
  RawHttpServer server(Behavior::SlowBody(20ms, 1000));
  Connected c = Connect(server.port());
  REQUIRE(SendText(c.fd.get(), Get("/")));
  ReadResult r = ReadUntil(c.fd.get(), 1 << 20, "\r\n\r\n");
  REQUIRE(r.err == 0);
  CHECK(HeaderValue(r.data, "Content-Length") == "1000");
  // A few body bytes trickle in, far fewer than promised (1000 bytes take 20 s).
  std::string body = Body(r.data);
  for (int i = 0; i < 1000 && body.size() < 3; ++i) {
    char ch;
    if (::recv(c.fd.get(), &ch, 1, 0) != 1) break;
    body += ch;
  }
  CHECK(body.size() >= 3);
  CHECK(body.size() < 1000);
}

TEST_CASE("Fleet: garbage bytes arrive instead of HTTP") {
  RawHttpServer server(Behavior::Garbage());
  const ReadResult r = Fetch(server.port(), "/");
  CHECK(r.eof);
  CHECK(r.data == "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
}

TEST_CASE("Fleet: reset on accept gives ECONNRESET") {
  RawHttpServer server(Behavior::ResetOnAccept());
  Connected c = Connect(server.port());
  REQUIRE(c.err == 0);  // the kernel completed the handshake; then the RST came
  const ReadResult r = ReadUntil(c.fd.get());
  CHECK(r.data.empty());
  CHECK(r.err == ECONNRESET);
  CHECK(server.RequestCount() == 0);
}

TEST_CASE("Fleet: delayed reset on accept lets a non-blocking connect complete") {
  // What curl sees: the connect completes, then the RST comes (connection_reset).
  RawHttpServer server(Behavior::ResetOnAccept(50ms));
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  socklen_t len = 0;
  const sockaddr_storage addr = LoopbackAddress(IpFamily::kV4, server.port(), &len);
  const int rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), len);
  REQUIRE((rc == 0 || errno == EINPROGRESS));
  pollfd p{fd.get(), POLLOUT, 0};
  REQUIRE(::poll(&p, 1, 5000) == 1);
  int err = -1;
  socklen_t err_len = sizeof(err);
  ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &err_len);
  CHECK(err == 0);
  REQUIRE(SendText(fd.get(), Get("/")));
  p = {fd.get(), POLLIN, 0};
  REQUIRE(::poll(&p, 1, 5000) == 1);
  char ch;
  CHECK(::recv(fd.get(), &ch, 1, 0) == -1);
  CHECK(errno == ECONNRESET);
  CHECK(server.RequestCount() == 0);  // the request was never parsed
}

TEST_CASE("Fleet: reset after request gives ECONNRESET") {
  RawHttpServer server;
  server.Route("/reset", Behavior::ResetAfterRequest());
  Connected c = Connect(server.port());
  REQUIRE(SendText(c.fd.get(), Get("/reset")));
  const ReadResult r = ReadUntil(c.fd.get());
  CHECK(r.data.empty());
  CHECK(r.err == ECONNRESET);
  CHECK(server.RequestCount() == 1);
}

TEST_CASE("Fleet: empty reply closes without a byte") {
  RawHttpServer server(Behavior::EmptyReply());
  const ReadResult r = Fetch(server.port(), "/");
  CHECK(r.eof);
  CHECK(r.data.empty());
  CHECK(server.RequestCount() == 1);
}

TEST_CASE("Fleet: oversized headers exceed 200 KB") {
  for (const bool single_line : {true, false}) {
    CAPTURE(single_line);
    RawHttpServer server(Behavior::OversizedHeaders(200 * 1024, single_line));
    const ReadResult r = Fetch(server.port(), "/");
    CHECK(r.eof);
    const size_t head_end = r.data.find("\r\n\r\n");
    REQUIRE(head_end != std::string::npos);
    CHECK(head_end >= 200 * 1024);
    CHECK(r.data.substr(head_end) == "\r\n\r\nok");
    size_t longest_line = 0;
    for (size_t pos = 0; pos < head_end;) {
      const size_t eol = r.data.find("\r\n", pos);
      longest_line = std::max(longest_line, eol - pos);
      pos = eol + 2;
    }
    CHECK((longest_line >= 200 * 1024) == single_line);
  }
}

TEST_CASE("Fleet: oversized body streams 10 MB chunked") {
  RawHttpServer server;
  server.Route("/chunked", Behavior::OversizedBody())
      .Route("/length", Behavior::OversizedBody(3 * 1024 * 1024, /*chunked=*/false));
  const ReadResult chunked = Fetch(server.port(), "/chunked");
  CHECK(chunked.eof);
  CHECK(HeaderValue(chunked.data, "Transfer-Encoding") == "chunked");
  // De-chunk and count.
  const std::string raw = Body(chunked.data);
  size_t pos = 0;
  uint64_t total = 0;
  bool last = false;
  for (int guard = 0; guard < 100000 && !last; ++guard) {
    const size_t eol = raw.find("\r\n", pos);
    REQUIRE(eol != std::string::npos);
    const uint64_t size = std::stoull(raw.substr(pos, eol - pos), nullptr, 16);
    last = size == 0;
    total += size;
    pos = eol + 2 + size + 2;
  }
  CHECK(last);
  CHECK(total == 10 * 1024 * 1024);
  CHECK(pos == raw.size());

  const ReadResult length = Fetch(server.port(), "/length");
  CHECK(HeaderValue(length.data, "Content-Length") == std::to_string(3 * 1024 * 1024));
  CHECK(Body(length.data).size() == 3 * 1024 * 1024);
}

TEST_CASE("Fleet: redirect loop points onwards or to itself") {
  RawHttpServer server;
  server.Route("/loop", Behavior::RedirectLoop()).Route("/self", Behavior::RedirectLoop(true));
  const std::string first = Fetch(server.port(), "/loop").data;
  CHECK(first.rfind("HTTP/1.1 302 Found\r\n", 0) == 0);
  CHECK(HeaderValue(first, "Location") == "/loop/1");
  CHECK(HeaderValue(Fetch(server.port(), "/loop/7").data, "Location") == "/loop/8");
  CHECK(HeaderValue(Fetch(server.port(), "/self/x").data, "Location") == "/self/x");
}

TEST_CASE("Fleet: raw server stops promptly with clients connected") {
  Connected c;
  {
    RawHttpServer server(Behavior::SlowBody(100ms));
    c = Connect(server.port());
    REQUIRE(SendText(c.fd.get(), Get("/")));
    REQUIRE(ReadUntil(c.fd.get(), 1 << 20, "\r\n\r\n").err == 0);
  }  // the destructor joins; the client sees its connection end
  const ReadResult r = ReadUntil(c.fd.get());
  CHECK((r.eof || r.err == ECONNRESET));
}

// ---- pages ----

TEST_CASE("Fleet: pages carry correct lengths and emitter tells") {
  for (const pages::Page& page : pages::AllPages()) {
    CAPTURE(page.name);
    const std::string status = std::to_string(page.status);
    CHECK(page.raw.rfind("HTTP/1.1 " + status + " ", 0) == 0);
    const std::optional<std::string> length = HeaderValue(page.raw, "Content-Length");
    REQUIRE(length.has_value());
    CHECK(*length == std::to_string(Body(page.raw).size()));
  }
  // Lengths and bytes docs/fingerprints.md states outright.
  CHECK(HeaderValue(pages::Haproxy(502), "Content-Length") == "107");
  CHECK(HeaderValue(pages::Haproxy(503), "Content-Length") == "107");
  CHECK(HeaderValue(pages::Haproxy(504), "Content-Length") == "92");
  CHECK(HeaderValue(pages::Haproxy(500), "Content-Length") == "97");
  CHECK(!HeaderValue(pages::Haproxy(503), "Server").has_value());
  CHECK(HeaderValue(pages::AwsAlb(502), "Content-Length") == "122");
  CHECK(HeaderValue(pages::AwsAlb(503), "Content-Length") == "162");
  CHECK(Body(pages::Caddy(502)).empty());
  CHECK(HeaderValue(pages::Caddy(502), "Server") == "Caddy");
  CHECK(HeaderValue(pages::Nginx(502), "Server") == "nginx/1.22.1");
  CHECK(Body(pages::Nginx(502)) ==
        "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
        "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n"
        "</body>\r\n</html>\r\n");
  CHECK(Body(pages::Envoy(pages::EnvoyReason::kNoHealthyUpstream)) == "no healthy upstream");
  CHECK(!HeaderValue(pages::Envoy(pages::EnvoyReason::kTimeout), "x-envoy-upstream-service-time"));
  CHECK(Body(pages::CloudflareEdge(502)).find("<hr><center>cloudflare</center>") !=
        std::string::npos);
  CHECK(Body(pages::CloudflareBranded(522)).find("Error code 522") != std::string::npos);
  CHECK(Body(pages::Fastly()).find("Guru Mediation") != std::string::npos);
  CHECK(Body(pages::Varnish(503)).find("Guru Meditation") != std::string::npos);
  CHECK(Body(pages::Traefik(503)) == "no available server\n");
}

// ---- DNS ----

std::string DnsQuery(uint16_t id, std::string_view name, uint16_t qtype) {
  std::string q;
  q += static_cast<char>(id >> 8);
  q += static_cast<char>(id & 0xff);
  q += '\x01';  // RD
  q += '\x00';
  q.append("\x00\x01\x00\x00\x00\x00\x00\x00", 8);  // QDCOUNT 1
  size_t start = 0;
  while (start < name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string_view::npos) dot = name.size();
    q += static_cast<char>(dot - start);
    q.append(name.substr(start, dot - start));
    start = dot + 1;
  }
  q += '\x00';
  q += static_cast<char>(qtype >> 8);
  q += static_cast<char>(qtype & 0xff);
  q.append("\x00\x01", 2);  // IN
  return q;
}

struct DnsReply {
  uint16_t id = 0;
  uint8_t flags_hi = 0;
  uint8_t rcode = 0;
  std::vector<std::string> addresses;  // inet_ntop of each answer
  std::vector<uint32_t> ttls;
};

// Sends one query to the server; nullopt when no reply came within timeout_ms.
std::optional<DnsReply> AskDns(int port, const std::string& query, int timeout_ms = 2000) {
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  socklen_t len = 0;
  const sockaddr_storage addr = LoopbackAddress(IpFamily::kV4, port, &len);
  REQUIRE(::sendto(fd.get(), query.data(), query.size(), 0,
                   reinterpret_cast<const sockaddr*>(&addr),
                   len) == static_cast<ssize_t>(query.size()));
  pollfd p{fd.get(), POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) != 1) return std::nullopt;
  uint8_t buf[1024];
  const ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
  REQUIRE(n >= 12);
  DnsReply r;
  r.id = static_cast<uint16_t>((buf[0] << 8) | buf[1]);
  r.flags_hi = buf[2];
  r.rcode = buf[3] & 0x0f;
  const int qdcount = (buf[4] << 8) | buf[5];
  const int ancount = (buf[6] << 8) | buf[7];
  size_t pos = 12;
  for (int i = 0; i < qdcount; ++i) {
    while (pos < static_cast<size_t>(n) && buf[pos] != 0) pos += buf[pos] + 1u;
    pos += 5;  // root label, type, class
  }
  for (int i = 0; i < ancount; ++i) {
    REQUIRE(pos + 12 <= static_cast<size_t>(n));
    CHECK(buf[pos] == 0xc0);  // name pointer
    const int type = (buf[pos + 2] << 8) | buf[pos + 3];
    r.ttls.push_back(static_cast<uint32_t>((buf[pos + 6] << 24) | (buf[pos + 7] << 16) |
                                           (buf[pos + 8] << 8) | buf[pos + 9]));
    const size_t rdlen = static_cast<size_t>((buf[pos + 10] << 8) | buf[pos + 11]);
    pos += 12;
    REQUIRE(pos + rdlen <= static_cast<size_t>(n));
    char text[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(type == 1 ? AF_INET : AF_INET6, buf + pos, text, sizeof(text));
    r.addresses.emplace_back(text);
    pos += rdlen;
  }
  return r;
}

TEST_CASE("Fleet: DNS answers A and AAAA") {
  DnsServer dns;
  CHECK(dns.Address() == "127.0.0.1:" + std::to_string(dns.port()));
  dns.SetAnswer("svc.test", {"10.0.0.1", "10.0.0.2", "2001:db8::1"});
  const auto a = AskDns(dns.port(), DnsQuery(0x1234, "SVC.Test", 1));
  REQUIRE(a.has_value());
  CHECK(a->id == 0x1234);
  CHECK((a->flags_hi & 0x80) != 0);  // QR
  CHECK((a->flags_hi & 0x02) == 0);  // never TC
  CHECK(a->rcode == 0);
  CHECK(a->addresses == std::vector<std::string>{"10.0.0.1", "10.0.0.2"});
  CHECK(a->ttls == std::vector<uint32_t>{0, 0});
  dns.SetTtl(5);
  const auto aaaa = AskDns(dns.port(), DnsQuery(7, "svc.test", 28));
  REQUIRE(aaaa.has_value());
  CHECK(aaaa->addresses == std::vector<std::string>{"2001:db8::1"});
  CHECK(aaaa->ttls == std::vector<uint32_t>{5});
  const auto other = AskDns(dns.port(), DnsQuery(8, "svc.test", 16));  // TXT: NODATA
  REQUIRE(other.has_value());
  CHECK(other->rcode == 0);
  CHECK(other->addresses.empty());
  CHECK(dns.QueryCount("svc.test") == 3);
  CHECK(dns.QueryCount("svc.test.", DnsServer::QueryType::kA) == 1);
  CHECK(dns.TotalQueries() == 3);
}

TEST_CASE("Fleet: DNS NXDOMAIN, SERVFAIL and silence") {
  DnsServer dns;
  dns.SetNxdomain("gone.test");
  dns.SetServfail("broken.test");
  dns.SetSilent("silent.test");
  const auto unknown = AskDns(dns.port(), DnsQuery(1, "unknown.test", 1));
  REQUIRE(unknown.has_value());
  CHECK(unknown->rcode == 3);
  const auto gone = AskDns(dns.port(), DnsQuery(2, "gone.test", 1));
  REQUIRE(gone.has_value());
  CHECK(gone->rcode == 3);
  const auto broken = AskDns(dns.port(), DnsQuery(3, "broken.test", 28));
  REQUIRE(broken.has_value());
  CHECK(broken->rcode == 2);
  CHECK(!AskDns(dns.port(), DnsQuery(4, "silent.test", 1), 300).has_value());
  CHECK(WaitFor([&] { return dns.QueryCount("silent.test") == 1; }));
}

TEST_CASE("Fleet: DNS answers rotate and switch") {
  DnsServer dns;
  dns.SetRotating("rot.test", {{"10.0.0.1"}, {"10.0.0.2", "10.0.0.3"}});
  std::vector<std::vector<std::string>> seen;
  for (uint16_t id = 0; id < 3; ++id) {
    const auto r = AskDns(dns.port(), DnsQuery(id, "rot.test", 1));
    REQUIRE(r.has_value());
    seen.push_back(r->addresses);
  }
  CHECK(seen == std::vector<std::vector<std::string>>{
                    {"10.0.0.1"}, {"10.0.0.2", "10.0.0.3"}, {"10.0.0.1"}});
  dns.SetAnswer("rot.test", {"10.9.9.9"});
  CHECK(AskDns(dns.port(), DnsQuery(9, "rot.test", 1))->addresses ==
        std::vector<std::string>{"10.9.9.9"});
  dns.Remove("rot.test");
  CHECK(AskDns(dns.port(), DnsQuery(10, "rot.test", 1))->rcode == 3);
}

// ---- TLS ----

TlsServerOptions WithMode(TlsServerOptions::Mode mode) {
  TlsServerOptions options;
  options.mode = mode;
  return options;
}

struct TlsOutcome {
  bool handshake_ok = false;
  long verify_result = X509_V_OK;
  int ssl_error = SSL_ERROR_NONE;  // SSL_get_error of a failed SSL_connect
  int sys_errno = 0;
  std::string response;
};

// Connects with OpenSSL, verifying against `ca_file` for `host` (a name or IP literal),
// then sends GET / and reads the response.
TlsOutcome TlsFetch(int port, const std::string& ca_file, const std::string& host,
                    std::chrono::milliseconds io = 5s) {
  // SSL_write uses write(): a server that already closed must not SIGPIPE the test.
  sigset_t sigpipe;
  sigemptyset(&sigpipe);
  sigaddset(&sigpipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &sigpipe, nullptr);
  TlsOutcome out;
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  REQUIRE(ctx != nullptr);
  REQUIRE(SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) == 1);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  Connected c = Connect(port, IpFamily::kV4, io);
  REQUIRE(c.err == 0);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, c.fd.get());
  in_addr ip{};
  if (::inet_pton(AF_INET, host.c_str(), &ip) == 1) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl, host.c_str());
    SSL_set1_host(ssl, host.c_str());
  }
  errno = 0;
  const int ret = SSL_connect(ssl);
  if (ret == 1) {
    out.handshake_ok = true;
    const std::string req = Get("/");
    SSL_write(ssl, req.data(), static_cast<int>(req.size()));
    char buf[4096];
    for (int i = 0; i < 100; ++i) {
      const int n = SSL_read(ssl, buf, sizeof(buf));
      if (n <= 0) break;
      out.response.append(buf, static_cast<size_t>(n));
    }
  } else {
    out.ssl_error = SSL_get_error(ssl, ret);
    out.sys_errno = errno;
  }
  out.verify_result = SSL_get_verify_result(ssl);
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ERR_clear_error();
  return out;
}

TEST_CASE("Fleet: TLS valid leaf verifies for localhost and 127.0.0.1") {
  gatewatch::testing::TempDir dir;
  TestCa ca(dir.path());
  CHECK(ca.CaFile() == dir.File("ca.pem"));
  CHECK(gatewatch::testing::ReadFile(ca.CaFile()) == ca.CertPem());
  TlsServer server(ca, {});
  CHECK(server.CaFile() == ca.CaFile());
  CHECK(server.Url("/x") == "https://127.0.0.1:" + std::to_string(server.port()) + "/x");
  CHECK(server.UrlFor("localhost") == "https://localhost:" + std::to_string(server.port()) + "/");
  for (const std::string host : {"localhost", "127.0.0.1"}) {
    CAPTURE(host);
    const TlsOutcome r = TlsFetch(server.port(), server.CaFile(), host);
    CHECK(r.handshake_ok);
    CHECK(r.verify_result == X509_V_OK);
    CHECK(r.response.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(Body(r.response) == "ok");
  }
  CHECK(server.HandshakeCount() == 2);
  CHECK(server.RequestCount() == 2);
}

TEST_CASE("Fleet: TLS leaf notAfter follows valid_for") {
  const auto now = std::chrono::system_clock::now();
  TlsServerOptions options;
  options.valid_for = std::chrono::hours(24 * 5);
  TlsServer server(options);  // with its own CA
  const auto left = server.LeafNotAfter() - now;
  CHECK(left > std::chrono::hours(24 * 5) - std::chrono::minutes(5));
  CHECK(left < std::chrono::hours(24 * 5) + std::chrono::minutes(5));
  CHECK(TlsFetch(server.port(), server.CaFile(), "localhost").handshake_ok);
}

TEST_CASE("Fleet: TLS bad leaves fail verification") {
  TestCa ca;
  struct Row {
    LeafKind kind;
    long expected;
  };
  const Row rows[] = {
      {LeafKind::kExpired, X509_V_ERR_CERT_HAS_EXPIRED},
      {LeafKind::kNotYetValid, X509_V_ERR_CERT_NOT_YET_VALID},
      {LeafKind::kWrongHost, X509_V_ERR_HOSTNAME_MISMATCH},
      {LeafKind::kSelfSigned, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT},
  };
  for (const Row& row : rows) {
    CAPTURE(static_cast<int>(row.kind));
    TlsServerOptions options;
    options.leaf = row.kind;
    TlsServer server(ca, options);
    const TlsOutcome r = TlsFetch(server.port(), server.CaFile(), "localhost");
    CHECK(!r.handshake_ok);
    CHECK(r.ssl_error == SSL_ERROR_SSL);
    CHECK(r.verify_result == row.expected);
    if (row.kind == LeafKind::kExpired) {
      CHECK(server.LeafNotAfter() < std::chrono::system_clock::now());
    }
  }
}

TEST_CASE("Fleet: TLS serves a raw response") {
  TlsServerOptions options;
  options.response = pages::Nginx(502);
  TlsServer server(options);
  const TlsOutcome r = TlsFetch(server.port(), server.CaFile(), "127.0.0.1");
  CHECK(r.handshake_ok);
  CHECK(r.response == pages::Nginx(502));
}

TEST_CASE("Fleet: TLS handshake stalls, answers garbage or resets") {
  SUBCASE("stall") {
    TlsServer server(WithMode(TlsServerOptions::Mode::kStallHandshake));
    const TlsOutcome r = TlsFetch(server.port(), server.CaFile(), "localhost", 300ms);
    CHECK(!r.handshake_ok);
    // Our 300 ms receive timeout ended the wait: want-read (or a syscall error EAGAIN).
    CHECK((r.ssl_error == SSL_ERROR_WANT_READ ||
           (r.ssl_error == SSL_ERROR_SYSCALL && r.sys_errno == EAGAIN)));
    CHECK(server.AcceptCount() == 1);
    CHECK(server.HandshakeCount() == 0);
  }
  SUBCASE("garbage") {
    TlsServer server(WithMode(TlsServerOptions::Mode::kGarbageHandshake));
    const TlsOutcome r = TlsFetch(server.port(), server.CaFile(), "localhost");
    CHECK(!r.handshake_ok);
    CHECK(r.ssl_error == SSL_ERROR_SSL);  // "wrong version number" or similar
  }
  SUBCASE("reset") {
    TlsServer server(WithMode(TlsServerOptions::Mode::kResetHandshake));
    const TlsOutcome r = TlsFetch(server.port(), server.CaFile(), "localhost");
    CHECK(!r.handshake_ok);
    CHECK(r.ssl_error == SSL_ERROR_SYSCALL);
    CHECK(r.sys_errno == ECONNRESET);
  }
}

// ---- CONNECT proxy ----

// Sends `request` to the proxy and returns its response head.
std::string ProxyAsk(Connected& c, const std::string& request) {
  REQUIRE(SendText(c.fd.get(), request));
  return ReadUntil(c.fd.get(), 1 << 16, "\r\n\r\n").data;
}

std::string ConnectRequest(const std::string& target) {
  return "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n";
}

TEST_CASE("Fleet: CONNECT proxy tunnels to a loopback server") {
  RawHttpServer target;
  ConnectProxy proxy;
  CHECK(proxy.Url() == "http://127.0.0.1:" + std::to_string(proxy.port()));
  for (const std::string host : {"127.0.0.1", "localhost"}) {
    Connected c = Connect(proxy.port());
    const std::string authority = host + ":" + std::to_string(target.port());
    CHECK(ProxyAsk(c, ConnectRequest(authority)) == "HTTP/1.1 200 Connection established\r\n\r\n");
    REQUIRE(SendText(c.fd.get(), Get("/through")));
    const ReadResult r = ReadUntil(c.fd.get());
    CHECK(r.eof);
    CHECK(Body(r.data) == "ok");
  }
  CHECK(target.RequestCount("/through") == 2);
  CHECK(proxy.ConnectCount() == 2);
  CHECK(proxy.TunnelCount() == 2);
  CHECK(proxy.Targets() ==
        std::vector<std::string>{target.HostPort(), "localhost:" + std::to_string(target.port())});
}

TEST_CASE("Fleet: CONNECT proxy refuses, fails and rejects misuse") {
  RawHttpServer target;
  const std::string authority = target.HostPort();
  SUBCASE("refusing mode answers 403") {
    ConnectProxy proxy(ConnectProxy::Mode::kRefuse);
    Connected c = Connect(proxy.port());
    CHECK(ProxyAsk(c, ConnectRequest(authority)).rfind("HTTP/1.1 403 Forbidden\r\n", 0) == 0);
    CHECK(proxy.ConnectCount() == 1);
    CHECK(proxy.TunnelCount() == 0);
  }
  SUBCASE("bad gateway mode answers 502") {
    ConnectProxy proxy;
    proxy.SetMode(ConnectProxy::Mode::kBadGateway);
    Connected c = Connect(proxy.port());
    CHECK(ProxyAsk(c, ConnectRequest(authority)).rfind("HTTP/1.1 502 Bad Gateway\r\n", 0) == 0);
  }
  SUBCASE("non-loopback targets get 403 without a connection attempt") {
    ConnectProxy proxy;
    Connected c = Connect(proxy.port());
    CHECK(ProxyAsk(c, ConnectRequest("example.com:443")).rfind("HTTP/1.1 403 ", 0) == 0);
    CHECK(proxy.TunnelCount() == 0);
  }
  SUBCASE("a dead target gets 502") {
    ConnectProxy proxy;
    Connected c = Connect(proxy.port());
    const std::string dead = "127.0.0.1:" + std::to_string(RefusedPort());
    CHECK(ProxyAsk(c, ConnectRequest(dead)).rfind("HTTP/1.1 502 ", 0) == 0);
  }
  SUBCASE("an absolute-URI GET gets 400") {
    ConnectProxy proxy;
    Connected c = Connect(proxy.port());
    const std::string get =
        "GET " + target.Url("/x") + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n";
    CHECK(ProxyAsk(c, get).rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0);
    CHECK(proxy.OtherRequestCount() == 1);
    CHECK(proxy.ConnectCount() == 0);
    CHECK(target.RequestCount() == 0);
  }
}

TEST_CASE("Fleet: CONNECT proxy stops with an open tunnel") {
  RawHttpServer target(Behavior::SlowHeaders(30s));
  Connected c;
  {
    ConnectProxy proxy;
    c = Connect(proxy.port());
    CHECK(ProxyAsk(c, ConnectRequest(target.HostPort())).rfind("HTTP/1.1 200 ", 0) == 0);
    REQUIRE(SendText(c.fd.get(), Get("/")));
    REQUIRE(WaitFor([&] { return target.RequestCount() == 1; }));
  }  // joins the tunnel thread
  const ReadResult r = ReadUntil(c.fd.get());
  CHECK(r.data.empty());
  CHECK((r.eof || r.err == ECONNRESET));
}

// ---- network unreachable ----

TEST_CASE("Fleet: isolated network namespace makes addresses unreachable") {
  if (!CanCreateNetworkNamespace()) {
    MESSAGE("SKIPPED: cannot create a network namespace here (needs CAP_SYS_ADMIN)");
    CHECK(!RunInIsolatedNetwork([] {}).has_value());
    return;
  }
  std::vector<std::string> interfaces;
  int unreachable_errno = 0;
  std::string loopback_body;
  const Result<void> ran = RunInIsolatedNetwork([&] {
    struct if_nameindex* names = ::if_nameindex();
    for (struct if_nameindex* n = names; n != nullptr && n->if_index != 0; ++n) {
      interfaces.emplace_back(n->if_name);
    }
    ::if_freenameindex(names);
    // Only connect outwards when nothing but lo exists: no packet can leave.
    if (interfaces != std::vector<std::string>{"lo"}) return;
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(80);
    ::inet_pton(AF_INET, std::string(kUnroutableIpv4).c_str(), &addr.sin_addr);
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
      unreachable_errno = errno;
    }
    // Loopback still works inside.
    RawHttpServer inside;
    loopback_body = Body(Fetch(inside.port(), "/").data);
  });
  REQUIRE(ran.has_value());
  CHECK(interfaces == std::vector<std::string>{"lo"});
  CHECK(unreachable_errno == ENETUNREACH);
  CHECK(loopback_body == "ok");
}

}  // namespace
}  // namespace gatewatch::fleet
