// The HTTP listener against hostile and unlucky clients, over real loopback sockets:
// slow clients, deadlines, connection bounds, bodies over the limit in every encoding,
// the token before the body, busy handlers, and plain HTTP/1.1 semantics.

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/ssl.h>
#include <zlib.h>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "daemon/http_server.h"
#include "fleet/tls_server.h"
#include "tests/support/temp_dir.h"

namespace gatewatch::daemon {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

// A raw client socket to 127.0.0.1:port from the loopback address `from` (each address
// in 127.0.0.0/8 is a distinct peer to the listener). -1 when the connect fails.
int Connect(int port, const char* from = "127.0.0.1") {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in src{};
  src.sin_family = AF_INET;
  inet_pton(AF_INET, from, &src.sin_addr);
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0 ||
      connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Whether fd has bytes (or EOF) within `wait`.
bool Readable(int fd, std::chrono::milliseconds wait) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, static_cast<int>(wait.count())) > 0;
}

// Reads one response: head, then Content-Length bytes (a 1xx has none). Stops at EOF or
// when `timeout` passes; returns what arrived.
std::string ReadResponse(int fd, std::chrono::milliseconds timeout = 5s) {
  const auto until = SteadyClock::now() + timeout;
  std::string in;
  char buf[65536];
  while (SteadyClock::now() < until) {
    const size_t head_end = in.find("\r\n\r\n");
    if (head_end != std::string::npos) {
      if (in.compare(9, 1, "1") == 0) return in.substr(0, head_end + 4);
      size_t length = 0;
      const size_t cl = in.find("Content-Length: ");
      if (cl != std::string::npos && cl < head_end) length = std::stoul(in.substr(cl + 16));
      if (in.size() >= head_end + 4 + length) return in;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - SteadyClock::now());
    if (!Readable(fd, std::max(left, 1ms))) break;
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    in.append(buf, static_cast<size_t>(n));
  }
  return in;
}

int StatusOf(const std::string& response) {
  if (response.size() < 12 || response.rfind("HTTP/1.1 ", 0) != 0) return 0;
  return std::stoi(response.substr(9, 3));
}

// Whether the server closed fd (EOF or reset) within `wait`.
bool ClosedByServer(int fd, std::chrono::milliseconds wait) {
  const auto until = SteadyClock::now() + wait;
  char buf[4096];
  while (SteadyClock::now() < until) {
    if (!Readable(fd, 50ms)) continue;
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return true;
  }
  return false;
}

struct TimedGet {
  int status = 0;
  std::chrono::milliseconds took{0};
};

// GET path on a new connection from 127.0.0.1, timed from connect to the last byte.
TimedGet Get(int port, const std::string& path) {
  const auto start = SteadyClock::now();
  TimedGet r;
  const int fd = Connect(port);
  if (fd < 0) return r;
  SendAll(fd, "GET " + path + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  r.status = StatusOf(ReadResponse(fd, 5s));
  r.took = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start);
  close(fd);
  return r;
}

// A listener on 127.0.0.1 with /metrics, a slow route, and a token-protected POST route.
struct Fixture {
  explicit Fixture(ListenerLimits limits, size_t max_body = 64 * 1024) {
    HttpServer::Options o;
    o.listen = HostPort{"127.0.0.1", 0};
    o.ready = [](std::string*) { return true; };
    o.max_body_bytes = max_body;
    o.limits = limits;
    server = std::make_unique<HttpServer>(o);
    server->Get("/metrics", [](const HttpRequest&) { return HttpResponse::Text(200, "up 1\n"); });
    server->Get("/slow", [](const HttpRequest&) {
      std::this_thread::sleep_for(2s);
      return HttpResponse::Text(200, "slow\n");
    });
    server->Get("/big", [](const HttpRequest&) {
      std::string body;
      for (int i = 0; i < 5000; ++i) body += "line " + std::to_string(i) + " of a compressible page\n";
      return HttpResponse::Text(200, body);
    });
    server->Post("/in", [this](const HttpRequest& req) {
      posted.fetch_add(1);
      return HttpResponse::Text(200, "got " + std::to_string(req.body.size()) + "\n");
    }, [] { return std::string("secret"); });
    auto p = server->Start();
    REQUIRE(p);
    port = *p;
  }

  std::unique_ptr<HttpServer> server;
  int port = 0;
  std::atomic<int> posted{0};
};

// Room for `n` client sockets in this process (the listener's own fit themselves).
void NeedDescriptors(rlim_t n) {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < n && rl.rlim_max >= n) {
    rl.rlim_cur = n;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  getrlimit(RLIMIT_NOFILE, &rl);
  REQUIRE_MESSAGE(rl.rlim_cur >= n, "the open-file limit is below " << n);
}

}  // namespace

TEST_CASE("http listener: health, readiness and /metrics answer within a second while 1,000 slow clients drip") {
  NeedDescriptors(3000);
  ListenerLimits limits;
  limits.request_timeout = 30s;  // the drip lasts the whole test
  limits.max_connections = 1100;
  Fixture f(limits);

  // 1,000 connections from ten peer addresses (100 each, under the per-peer bound), each
  // inside an unfinished header line.
  std::vector<int> slow;
  for (int i = 0; i < 1000; ++i) {
    const std::string from = "127.0.0." + std::to_string(11 + i / 100);
    const int fd = Connect(f.port, from.c_str());
    REQUIRE(fd >= 0);
    REQUIRE(SendAll(fd, "GET /metrics HTTP/1.1\r\nX-Drip: "));
    slow.push_back(fd);
  }
  for (int round = 0; round < 3; ++round) {
    for (int fd : slow) CHECK(SendAll(fd, "a"));  // one more byte each: they stay alive
    for (const char* path : {"/healthz", "/readyz", "/metrics"}) {
      const TimedGet g = Get(f.port, path);
      CAPTURE(path);
      CHECK(g.status == 200);
      CHECK(g.took < 1s);
    }
    std::this_thread::sleep_for(300ms);
  }
  const ListenerStats s = f.server->Stats();
  CHECK(s.open >= 1000);  // none was dropped: the bound is deadlines, not starvation
  CHECK(s.refused_peer_limit == 0);
  CHECK(s.refused_total_limit == 0);
  for (int fd : slow) close(fd);
}

TEST_CASE("http listener: a request's head and body must arrive within the request deadline") {
  ListenerLimits limits;
  limits.request_timeout = 1s;
  Fixture f(limits);

  SUBCASE("a header line a byte at a time") {
    const int fd = Connect(f.port);
    REQUIRE(SendAll(fd, "GET /metrics HTTP/1.1\r\n"));
    const auto start = SteadyClock::now();
    bool closed = false;
    std::string response;
    for (int i = 0; i < 50 && !closed; ++i) {  // at most 50 drips of 100 ms
      if (!SendAll(fd, "X-Drip: a\r\n")) break;
      if (Readable(fd, 100ms)) {
        response = ReadResponse(fd, 1s);
        closed = ClosedByServer(fd, 1s);
      }
    }
    const auto took = SteadyClock::now() - start;
    CHECK(StatusOf(response) == 408);
    CHECK(took >= 900ms);
    CHECK(took < 3s);
    close(fd);
  }
  SUBCASE("a body a byte at a time") {
    const int fd = Connect(f.port);
    REQUIRE(SendAll(fd, "POST /in HTTP/1.1\r\nAuthorization: Bearer secret\r\nContent-Length: 100\r\n\r\n"));
    const auto start = SteadyClock::now();
    for (int i = 0; i < 50 && !Readable(fd, 100ms); ++i) SendAll(fd, "x");
    CHECK(StatusOf(ReadResponse(fd, 1s)) == 408);
    CHECK(SteadyClock::now() - start < 3s);
    CHECK(f.posted.load() == 0);
    close(fd);
  }
  SUBCASE("a connection that sends nothing") {
    const int fd = Connect(f.port);
    CHECK(ClosedByServer(fd, 3s));
    close(fd);
  }
  CHECK(f.server->Stats().timed_out >= 1);
  CHECK(Get(f.port, "/healthz").status == 200);
}

TEST_CASE("http listener: connections are bounded per peer address and in total") {
  SUBCASE("per peer: one more is refused with a 503; other peers are served") {
    ListenerLimits limits;
    limits.max_connections_per_peer = 4;
    Fixture f(limits);
    std::vector<int> held;
    for (int i = 0; i < 4; ++i) held.push_back(Connect(f.port, "127.0.0.31"));
    const int extra = Connect(f.port, "127.0.0.31");
    REQUIRE(extra >= 0);
    const std::string refused = ReadResponse(extra, 2s);
    CHECK(StatusOf(refused) == 503);
    CHECK(refused.find("too many connections from this address") != std::string::npos);
    CHECK(ClosedByServer(extra, 2s));
    close(extra);
    CHECK(Get(f.port, "/healthz").status == 200);  // from 127.0.0.1
    CHECK(f.server->Stats().refused_peer_limit == 1);
    for (int fd : held) close(fd);
  }
  SUBCASE("in total: the oldest waiting connection makes room, once it has held a slot for a second") {
    ListenerLimits limits;
    limits.max_connections = 6;
    Fixture f(limits);
    std::vector<int> held;
    for (int i = 0; i < 6; ++i) held.push_back(Connect(f.port, "127.0.0.41"));
    std::this_thread::sleep_for(200ms);
    const int early = Connect(f.port, "127.0.0.42");
    CHECK(StatusOf(ReadResponse(early, 2s)) == 503);  // all six are younger than a second
    close(early);
    std::this_thread::sleep_for(1200ms);
    CHECK(Get(f.port, "/healthz").status == 200);
    const ListenerStats s = f.server->Stats();
    CHECK(s.refused_total_limit == 1);
    CHECK(s.evicted == 1);
    int closed = 0;
    for (int fd : held) closed += ClosedByServer(fd, 100ms) ? 1 : 0;
    CHECK(closed == 1);
    for (int fd : held) close(fd);
  }
}

TEST_CASE("http listener: the token is checked before the body, and the body limit holds in every encoding") {
  Fixture f(ListenerLimits{}, 64 * 1024);

  SUBCASE("no token: 401 before any body byte is sent") {
    const int fd = Connect(f.port);
    REQUIRE(SendAll(fd, "POST /in HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"));
    const std::string r = ReadResponse(fd, 2s);
    CHECK(StatusOf(r) == 401);
    CHECK(r.find("Connection: close") != std::string::npos);
    close(fd);
  }
  SUBCASE("a wrong token with a 400 MiB Content-Length: 401 at once") {
    const int fd = Connect(f.port);
    REQUIRE(SendAll(fd, "POST /in HTTP/1.1\r\nAuthorization: Bearer nope\r\nContent-Length: 419430400\r\n\r\n"));
    CHECK(StatusOf(ReadResponse(fd, 2s)) == 401);
    close(fd);
  }
  SUBCASE("with the token, a Content-Length over the limit: 413 before the body") {
    const int fd = Connect(f.port);
    REQUIRE(SendAll(fd, "POST /in HTTP/1.1\r\nAuthorization: Bearer secret\r\nContent-Length: 65537\r\n\r\n"));
    CHECK(StatusOf(ReadResponse(fd, 2s)) == 413);
    close(fd);
  }
  SUBCASE("with the token, an endless chunked body: 413 once the chunks pass the limit") {
    const int fd = Connect(f.port);
    REQUIRE(SendAll(fd, "POST /in HTTP/1.1\r\nAuthorization: Bearer secret\r\nTransfer-Encoding: chunked\r\n\r\n"));
    const std::string chunk = "1000\r\n" + std::string(4096, 'x') + "\r\n";
    size_t sent = 0;
    // Bounded: 4,096 chunks (16 MiB) at most, and a response ends it sooner.
    for (int i = 0; i < 4096 && !Readable(fd, 0ms); ++i) {
      if (!SendAll(fd, chunk)) break;
      sent += chunk.size();
    }
    CHECK(StatusOf(ReadResponse(fd, 2s)) == 413);
    CHECK(sent < 12u * 1024 * 1024);  // the limit, plus what socket buffers hold
    close(fd);
  }
  SUBCASE("Expect: 100-continue gets 100 only with the token") {
    const int ok = Connect(f.port);
    REQUIRE(SendAll(ok, "POST /in HTTP/1.1\r\nAuthorization: Bearer secret\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"));
    CHECK(StatusOf(ReadResponse(ok, 2s)) == 100);
    REQUIRE(SendAll(ok, "hello"));
    const std::string r = ReadResponse(ok, 2s);
    CHECK(StatusOf(r) == 200);
    CHECK(r.find("got 5\n") != std::string::npos);
    close(ok);
    const int no = Connect(f.port);
    REQUIRE(SendAll(no, "POST /in HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"));
    CHECK(StatusOf(ReadResponse(no, 2s)) == 401);
    close(no);
  }
  SUBCASE("a chunked body within the limit reaches the handler decoded") {
    const int fd = Connect(f.port);
    REQUIRE(SendAll(fd, "POST /in HTTP/1.1\r\nAuthorization: Bearer secret\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"));
    const std::string r = ReadResponse(fd, 2s);
    CHECK(StatusOf(r) == 200);
    CHECK(r.find("got 5\n") != std::string::npos);
    close(fd);
    CHECK(f.posted.load() == 1);
  }
}

TEST_CASE("http listener: handlers that take their time do not delay health answers") {
  Fixture f(ListenerLimits{});
  std::vector<std::thread> callers;
  for (int i = 0; i < 8; ++i) {  // twice the workers
    callers.emplace_back([&f] { CHECK(Get(f.port, "/slow").status == 200); });
  }
  std::this_thread::sleep_for(300ms);
  for (const char* path : {"/healthz", "/readyz"}) {
    const TimedGet g = Get(f.port, path);
    CAPTURE(path);
    CHECK(g.status == 200);
    CHECK(g.took < 1s);
  }
  for (std::thread& t : callers) t.join();
}

TEST_CASE("http listener: HTTP/1.1 semantics") {
  Fixture f(ListenerLimits{});
  SUBCASE("keep-alive and pipelining answer in order on one connection") {
    const int fd = Connect(f.port);
    REQUIRE(SendAll(fd, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /metrics HTTP/1.1\r\nHost: t\r\n\r\n"));
    const std::string first = ReadResponse(fd, 2s);
    CHECK(first.find("\r\n\r\nok\n") != std::string::npos);
    std::string second = first.substr(first.find("ok\n") + 3);
    if (second.empty()) second = ReadResponse(fd, 2s);
    CHECK(second.find("\r\n\r\nup 1\n") != std::string::npos);
    REQUIRE(SendAll(fd, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"));
    CHECK(StatusOf(ReadResponse(fd, 2s)) == 200);
    close(fd);
  }
  SUBCASE("HEAD has the GET headers and no body") {
    const int fd = Connect(f.port);
    REQUIRE(SendAll(fd, "HEAD /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
    std::string all;
    char buf[1024];
    while (Readable(fd, 2s)) {
      const ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      all.append(buf, static_cast<size_t>(n));
    }
    CHECK(StatusOf(all) == 200);
    CHECK(all.find("Content-Length: 3\r\n") != std::string::npos);
    CHECK(all.substr(all.find("\r\n\r\n") + 4).empty());
    close(fd);
  }
  SUBCASE("405 with Allow for a path served for another method, 404 for none") {
    const int fd = Connect(f.port);
    REQUIRE(SendAll(fd, "POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n"));
    const std::string r = ReadResponse(fd, 2s);
    CHECK(StatusOf(r) == 405);
    CHECK(r.find("Allow: GET, HEAD\r\n") != std::string::npos);
    close(fd);
    CHECK(Get(f.port, "/nope").status == 404);
  }
  SUBCASE("a malformed request gets its status and a JSON error, then the connection closes") {
    const int fd = Connect(f.port);
    REQUIRE(SendAll(fd, "GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"));
    const std::string r = ReadResponse(fd, 2s);
    CHECK(StatusOf(r) == 400);
    CHECK(r.find("{\"error\":\"both Content-Length and Transfer-Encoding\"}") != std::string::npos);
    CHECK(ClosedByServer(fd, 2s));
    close(fd);
    CHECK(f.server->Stats().bad_requests == 1);
  }
  SUBCASE("a path longer than any route is 414, not a regex run") {
    CHECK(Get(f.port, "/" + std::string(5000, 'a')).status == 414);
  }
  SUBCASE("gzip when accepted") {
    httplib::Client client("127.0.0.1", f.port);
    auto plain = client.Get("/big");
    REQUIRE(plain);
    CHECK(plain->get_header_value("Content-Encoding").empty());
    const int fd = Connect(f.port);
    REQUIRE(SendAll(fd, "GET /big HTTP/1.1\r\nAccept-Encoding: br, gzip;q=0.5\r\nConnection: close\r\n\r\n"));
    const std::string r = ReadResponse(fd, 5s);
    close(fd);
    REQUIRE(r.find("Content-Encoding: gzip\r\n") != std::string::npos);
    const std::string compressed = r.substr(r.find("\r\n\r\n") + 4);
    CHECK(compressed.size() < plain->body.size() / 4);
    std::string inflated(plain->body.size() + 16, '\0');
    z_stream z{};
    REQUIRE(inflateInit2(&z, 15 + 16) == Z_OK);
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
    z.avail_in = static_cast<uInt>(compressed.size());
    z.next_out = reinterpret_cast<Bytef*>(inflated.data());
    z.avail_out = static_cast<uInt>(inflated.size());
    CHECK(inflate(&z, Z_FINISH) == Z_STREAM_END);
    inflated.resize(inflated.size() - z.avail_out);
    inflateEnd(&z);
    CHECK(inflated == plain->body);
    const int q0 = Connect(f.port);
    REQUIRE(SendAll(q0, "GET /big HTTP/1.1\r\nAccept-Encoding: gzip;q=0\r\nConnection: close\r\n\r\n"));
    CHECK(ReadResponse(q0, 5s).find("Content-Encoding") == std::string::npos);
    close(q0);
  }
}

namespace {

// A listener on 127.0.0.1 with a certificate from a throw-away CA.
struct TlsFiles {
  fleet::TestCa ca;
  fleet::IssuedCert leaf = ca.Issue(fleet::LeafKind::kValid);
  testing::TempDir dir;
  HttpServer::Options Options() {
    HttpServer::Options o;
    o.listen = HostPort{"127.0.0.1", 0};
    o.tls_cert = dir.Write("tls.crt", leaf.cert_pem);
    o.tls_key = dir.Write("tls.key", leaf.key_pem);
    return o;
  }
};

}  // namespace

TEST_CASE("http listener: over TLS, clients stuck in the handshake do not block others") {
  TlsFiles tls;
  HttpServer::Options o = tls.Options();
  o.limits.request_timeout = 1s;
  HttpServer server(o);
  auto port = server.Start();
  REQUIRE(port);
  std::vector<int> stuck;
  for (int i = 0; i < 50; ++i) {
    stuck.push_back(Connect(*port, "127.0.0.51"));
    SendAll(stuck.back(), std::string("\x16\x03\x01", 3));  // the start of a ClientHello, then nothing
  }
  httplib::SSLClient client("127.0.0.1", *port);
  client.enable_server_certificate_verification(false);
  client.set_connection_timeout(2s);
  const auto start = SteadyClock::now();
  auto res = client.Get("/healthz");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body == "ok\n");
  CHECK(SteadyClock::now() - start < 1s);
  // The handshake counts against the request deadline.
  int closed = 0;
  for (int fd : stuck) closed += ClosedByServer(fd, 3s) ? 1 : 0;
  CHECK(closed == 50);
  for (int fd : stuck) close(fd);
  const int plain = Connect(*port);  // plain HTTP to the TLS port: closed, no crash
  SendAll(plain, "GET /healthz HTTP/1.1\r\n\r\n");
  CHECK(ClosedByServer(plain, 3s));
  close(plain);
}

TEST_CASE("http listener: a TLS client that goes away mid-response does not take the process down") {
  // OpenSSL writes with plain write(2): without SIGPIPE ignored, a peer gone before the
  // response (or the close_notify) would kill the whole daemon.
  TlsFiles tls;
  HttpServer::Options o = tls.Options();
  HttpServer server(o);
  server.Get("/slow-big", [](const HttpRequest&) {
    std::this_thread::sleep_for(300ms);
    return HttpResponse::Text(200, std::string(4 << 20, 'x'));
  });
  auto port = server.Start();
  REQUIRE(port);
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  REQUIRE(ctx != nullptr);
  for (int i = 0; i < 5; ++i) {
    const int fd = Connect(*port);
    REQUIRE(fd >= 0);
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    REQUIRE(SSL_connect(ssl) == 1);
    const std::string req = "GET /slow-big HTTP/1.1\r\nHost: t\r\n\r\n";
    REQUIRE(SSL_write(ssl, req.data(), static_cast<int>(req.size())) > 0);
    SSL_free(ssl);
    close(fd);  // gone before the answer: the server's writes meet a closed socket
  }
  SSL_CTX_free(ctx);
  std::this_thread::sleep_for(1s);
  httplib::SSLClient client("127.0.0.1", *port);
  client.enable_server_certificate_verification(false);
  auto res = client.Get("/healthz");
  REQUIRE(res);
  CHECK(res->status == 200);
}

}  // namespace gatewatch::daemon
