// The responder fingerprint against REAL gateways: nginx and HAProxy from the Debian packages
// (scripts/test-packages.txt), started on free loopback ports with their own config files in a
// temp dir, in front of upstreams that are dead, silent or close without replying. Missing
// binaries fail the test (CI installs them); nothing is skipped. 127.0.0.1 only.

#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "probes/fingerprint.h"
#include "tests/support/process.h"
#include "tests/support/raw_http.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace gatewatch::probes {
namespace {

using namespace std::chrono_literals;

constexpr const char* kNginx = "/usr/sbin/nginx";
constexpr const char* kHaproxy = "/usr/sbin/haproxy";

// nginx as a reverse proxy, foreground, single process, every path inside the temp dir.
constexpr const char* kNginxConf = R"(
daemon off;
master_process off;
worker_processes 1;
pid @DIR@/nginx.pid;
error_log @DIR@/error.log info;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path @DIR@/client_body;
  proxy_temp_path @DIR@/proxy;
  fastcgi_temp_path @DIR@/fastcgi;
  uwsgi_temp_path @DIR@/uwsgi;
  scgi_temp_path @DIR@/scgi;
  server {
    listen 127.0.0.1:@PORT@;
    location /dead { proxy_pass http://127.0.0.1:@DEAD@; }
    location /slow { proxy_pass http://127.0.0.1:@SILENT@; proxy_read_timeout 1s; }
  }
}
)";

// HAProxy: be_down's only server is a dead port (health-checked down), be_close's closes
// without replying, be_slow's never answers.
constexpr const char* kHaproxyConf = R"(
global
  maxconn 64
defaults
  mode http
  timeout connect 1s
  timeout client 10s
  timeout server 1s
frontend fe
  bind 127.0.0.1:@PORT@
  use_backend be_close if { path_beg /close }
  use_backend be_slow if { path_beg /slow }
  default_backend be_down
backend be_down
  server only 127.0.0.1:@DEAD@ check inter 100ms fall 1 rise 1
backend be_close
  server only 127.0.0.1:@CLOSER@
backend be_slow
  server only 127.0.0.1:@SILENT@
)";

void RequireBinary(const char* path) {
  REQUIRE_MESSAGE(access(path, X_OK) == 0,
                  path << " is missing: install the Debian packages listed in "
                          "scripts/test-packages.txt (apt-get install -y nginx haproxy)");
}

int ListenLoopback(uint16_t* port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(listen(fd, 16) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  *port = ntohs(addr.sin_port);
  return fd;
}

// A loopback port on which nothing listens (bound once by us, then released).
uint16_t FreePort() {
  uint16_t port = 0;
  close(ListenLoopback(&port));
  return port;
}

bool Accepts(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

// An upstream that misbehaves on 127.0.0.1: kSilent accepts and never answers (held until the
// upstream is destroyed); kClose reads the request and closes without a reply.
class BadUpstream {
 public:
  enum class Mode { kSilent, kClose };

  explicit BadUpstream(Mode mode) : mode_(mode) {
    fd_ = ListenLoopback(&port_);
    thread_ = std::jthread([this](std::stop_token stop) { Run(stop); });
  }
  ~BadUpstream() {
    thread_.request_stop();
    thread_.join();
    for (int fd : held_) close(fd);
    close(fd_);
  }
  BadUpstream(const BadUpstream&) = delete;
  BadUpstream& operator=(const BadUpstream&) = delete;

  uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }

 private:
  void Run(std::stop_token stop) {
    // Bounded: polls every 50 ms, and gives up after two minutes whatever happens.
    const auto give_up = std::chrono::steady_clock::now() + 120s;
    while (!stop.stop_requested() && std::chrono::steady_clock::now() < give_up) {
      pollfd pfd{fd_, POLLIN, 0};
      if (poll(&pfd, 1, 50) != 1) continue;
      const int conn = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn < 0) continue;
      accepted_.fetch_add(1);
      if (mode_ == Mode::kSilent) {
        held_.push_back(conn);  // only this thread touches held_ until the join
        continue;
      }
      pollfd in{conn, POLLIN, 0};
      char buf[4096];
      if (poll(&in, 1, 1000) == 1) (void)!recv(conn, buf, sizeof buf, 0);
      close(conn);
    }
  }

  Mode mode_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<int> accepted_{0};
  std::vector<int> held_;
  std::jthread thread_;
};

// A gateway process; SIGTERM then reap on destruction (Process SIGKILLs if that is too slow).
struct Gateway {
  std::unique_ptr<testing::Process> process;
  std::string log_path;

  ~Gateway() {
    if (process) {
      process->Signal(SIGTERM);
      (void)process->Wait(5s);
    }
  }
};

void RequireListening(Gateway& gw, uint16_t port) {
  const bool up = testing::WaitFor([&] { return !gw.process->Running() || Accepts(port); }, 10s);
  REQUIRE_MESSAGE((up && gw.process->Running()),
                  "gateway did not listen on 127.0.0.1:" << port << "; its log:\n"
                                                         << testing::ReadFile(gw.log_path));
}

// Replaces every occurrence of each key in `text` (config templates).
std::string Fill(std::string text,
                 std::initializer_list<std::pair<std::string_view, std::string>> values) {
  for (const auto& [key, value] : values) {
    for (size_t at = text.find(key); at != std::string::npos; at = text.find(key, at)) {
      text.replace(at, key.size(), value);
      at += value.size();
    }
  }
  return text;
}

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
  RequireBinary(kNginx);
  testing::TempDir dir;
  BadUpstream silent(BadUpstream::Mode::kSilent);
  const uint16_t dead = FreePort();
  const uint16_t port = FreePort();
  const std::string d = dir.path();
  const std::string conf =
      dir.Write("nginx.conf", Fill(kNginxConf, {{"@DIR@", d},
                                                {"@PORT@", std::to_string(port)},
                                                {"@DEAD@", std::to_string(dead)},
                                                {"@SILENT@", std::to_string(silent.port())}}));
  Gateway nginx;
  nginx.log_path = dir.File("error.log");
  nginx.process = std::make_unique<testing::Process>(
      std::vector<std::string>{kNginx, "-p", d, "-e", nginx.log_path, "-c", conf},
      dir.File("stdout"), nginx.log_path);
  RequireListening(nginx, port);

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
  RequireBinary(kHaproxy);
  testing::TempDir dir;
  BadUpstream closer(BadUpstream::Mode::kClose);
  BadUpstream silent(BadUpstream::Mode::kSilent);
  const uint16_t dead = FreePort();
  const uint16_t port = FreePort();
  const std::string conf =
      dir.Write("haproxy.cfg", Fill(kHaproxyConf, {{"@PORT@", std::to_string(port)},
                                                   {"@DEAD@", std::to_string(dead)},
                                                   {"@CLOSER@", std::to_string(closer.port())},
                                                   {"@SILENT@", std::to_string(silent.port())}}));
  Gateway haproxy;
  haproxy.log_path = dir.File("haproxy.log");
  haproxy.process = std::make_unique<testing::Process>(
      std::vector<std::string>{kHaproxy, "-f", conf, "-db"}, haproxy.log_path, haproxy.log_path);
  RequireListening(haproxy, port);

  SUBCASE("only server down: 503 no_healthy_upstream, no Server header") {
    const Observed o = Get(port, "/");
    INFO("matched rule " << o.fp.rule);
    CHECK(o.response.status == 503);
    CHECK_FALSE(o.response.Header("server").has_value());
    CHECK(o.fp.emitter == Emitter::kHaproxy);
    CHECK(o.fp.reason == Reason::kNoHealthyUpstream);
    CHECK(IsGatewayError(o.response.status, o.fp.emitter));
  }
  SUBCASE("upstream closes without a reply: 502 invalid_upstream_response") {
    const Observed o = Get(port, "/close");
    INFO("matched rule " << o.fp.rule);
    CHECK(o.response.status == 502);
    CHECK(closer.accepted() >= 1);
    CHECK(o.fp.emitter == Emitter::kHaproxy);
    CHECK(o.fp.reason == Reason::kInvalidUpstreamResponse);
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
