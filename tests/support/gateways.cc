#include "tests/support/gateways.h"

#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <initializer_list>
#include <utility>

#include "tests/support/wait.h"

namespace gatewatch::testing {
namespace {

using namespace std::chrono_literals;

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

// Every non-empty line of `text`, each prefixed with `indent` and ended with a newline.
std::string Indent(std::string_view text, std::string_view indent) {
  std::string out;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    const std::string_view line = text.substr(0, end);
    if (!line.empty()) out += std::string(indent) + std::string(line) + "\n";
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return out;
}

std::string Loopback(uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

// Stops a gateway: SIGTERM, then reap (Process's destructor SIGKILLs if that is too slow).
void Stop(std::unique_ptr<Process>& process) {
  if (!process) return;
  process->Signal(SIGTERM);
  (void)process->Wait(5s);
  process.reset();
}

void RequireListening(Process& process, uint16_t port, const std::string& log_path) {
  const bool up = WaitFor([&] { return !process.Running() || Accepts(port); }, 10s);
  REQUIRE_MESSAGE((up && process.Running()),
                  "gateway did not listen on 127.0.0.1:" << port << "; its log:\n"
                                                         << ReadFile(log_path));
}

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
@HTTP@  server {
    listen 127.0.0.1:@PORT@;
@LOCATIONS@  }
}
)";

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
@FRONTEND@@BACKENDS@)";

}  // namespace

void RequireBinary(const char* path) {
  REQUIRE_MESSAGE(access(path, X_OK) == 0,
                  path << " is missing: install the Debian packages listed in "
                          "scripts/test-packages.txt (apt-get install -y nginx haproxy)");
}

int BindLoopback(uint16_t* port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  *port = ntohs(addr.sin_port);
  return fd;
}

int ListenLoopback(uint16_t* port) {
  const int fd = BindLoopback(port);
  REQUIRE(listen(fd, 16) == 0);
  return fd;
}

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

// ---- BadUpstream ----

BadUpstream::BadUpstream(Mode mode) : mode_(mode) {
  fd_ = ListenLoopback(&port_);
  thread_ = std::jthread([this](std::stop_token stop) { Run(stop); });
}

BadUpstream::~BadUpstream() {
  thread_.request_stop();
  thread_.join();
  for (int fd : held_) close(fd);
  close(fd_);
}

void BadUpstream::Run(std::stop_token stop) {
  // Bounded: polls every 50 ms, and gives up after two minutes whatever happens.
  const auto give_up = std::chrono::steady_clock::now() + 120s;
  while (!stop.stop_requested() && std::chrono::steady_clock::now() < give_up) {
    pollfd pfd{fd_, POLLIN, 0};
    if (poll(&pfd, 1, 50) != 1) continue;
    const int conn = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) continue;
    accepted_.fetch_add(1);
    if (mode_ == Mode::kSilent) {
      held_.push_back(conn);
      continue;
    }
    pollfd in{conn, POLLIN, 0};
    char buf[4096];
    if (poll(&in, 1, 1000) == 1) (void)!recv(conn, buf, sizeof buf, 0);
    close(conn);
  }
}

// ---- NginxGateway ----

NginxGateway::NginxGateway(std::vector<Route> routes)
    : NginxGateway(Options{.routes = std::move(routes)}) {}

NginxGateway::NginxGateway(Options options) {
  RequireBinary(kNginxBinary);
  std::string upstreams;
  std::string locations;
  for (size_t i = 0; i < options.routes.size(); ++i) {
    const Route& r = options.routes[i];
    REQUIRE_MESSAGE(!r.servers.empty(), "nginx route " << r.location << " has no servers");
    std::string target = Loopback(r.servers.front());
    if (r.servers.size() > 1) {
      target = "up" + std::to_string(i);
      upstreams += "  upstream " + target + " {\n";
      for (uint16_t s : r.servers) {
        upstreams += "    server " + Loopback(s) +
                     (r.server_options.empty() ? "" : " " + r.server_options) + ";\n";
      }
      upstreams += "  }\n";
    }
    locations += "    location " + r.location + " { proxy_pass http://" + target + ";";
    if (!r.next_upstream) locations += " proxy_next_upstream off;";
    if (!r.directives.empty()) locations += " " + r.directives;
    locations += " }\n";
  }
  port_ = FreePort();
  const std::string& d = dir_.path();
  const std::string conf =
      Fill(kNginxConf, {{"@HTTP@", upstreams + Indent(options.http_extra, "  ")},
                        {"@LOCATIONS@", locations + Indent(options.server_extra, "    ")},
                        {"@DIR@", d},
                        {"@PORT@", std::to_string(port_)}});
  config_path_ = dir_.Write("nginx.conf", conf);
  log_path_ = dir_.File("error.log");
  process_ = std::make_unique<Process>(
      std::vector<std::string>{kNginxBinary, "-p", d, "-e", log_path_, "-c", config_path_},
      dir_.File("stdout"), log_path_);
  RequireListening(*process_, port_, log_path_);
}

NginxGateway::~NginxGateway() { Stop(process_); }

std::string NginxGateway::Url(std::string_view path) const {
  return "http://" + Loopback(port_) + std::string(path);
}

std::string NginxGateway::Log() const { return ReadFile(log_path_); }

std::string NginxGateway::Config() const { return ReadFile(config_path_); }

// ---- HaproxyGateway ----

HaproxyGateway::HaproxyGateway(std::vector<Backend> backends) {
  RequireBinary(kHaproxyBinary);
  std::string frontend;
  std::string sections;
  for (size_t i = 0; i < backends.size(); ++i) {
    const Backend& b = backends[i];
    REQUIRE_MESSAGE(!b.servers.empty(), "haproxy backend " << i << " has no servers");
    const std::string name = "be" + std::to_string(i);
    frontend += b.path_prefix.empty()
                    ? "  default_backend " + name + "\n"
                    : "  use_backend " + name + " if { path_beg " + b.path_prefix + " }\n";
    sections += "backend " + name + "\n" + Indent(b.directives, "  ");
    for (size_t s = 0; s < b.servers.size(); ++s) {
      sections += "  server s" + std::to_string(s + 1) + " " + Loopback(b.servers[s]);
      if (b.health_check) sections += " check inter 100ms fall 1 rise 1";
      if (!b.server_options.empty()) sections += " " + b.server_options;
      sections += "\n";
    }
  }
  port_ = FreePort();
  config_path_ = dir_.Write("haproxy.cfg", Fill(kHaproxyConf, {{"@FRONTEND@", frontend},
                                                               {"@BACKENDS@", sections},
                                                               {"@PORT@", std::to_string(port_)}}));
  log_path_ = dir_.File("haproxy.log");
  process_ = std::make_unique<Process>(
      std::vector<std::string>{kHaproxyBinary, "-f", config_path_, "-db"}, log_path_, log_path_);
  RequireListening(*process_, port_, log_path_);
}

HaproxyGateway::~HaproxyGateway() { Stop(process_); }

std::string HaproxyGateway::Url(std::string_view path) const {
  return "http://" + Loopback(port_) + std::string(path);
}

std::string HaproxyGateway::Log() const { return ReadFile(log_path_); }

std::string HaproxyGateway::Config() const { return ReadFile(config_path_); }

}  // namespace gatewatch::testing
