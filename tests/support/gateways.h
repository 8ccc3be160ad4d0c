#pragma once
// Real gateways for integration tests: nginx and HAProxy from the Debian packages
// (scripts/test-packages.txt), each started in the foreground on a free 127.0.0.1 port with
// its own config file in its own TempDir, in front of upstreams the caller names by port;
// plus upstreams that misbehave (BadUpstream) and small loopback helpers. Missing binaries
// fail the test (CI installs them); nothing is skipped. 127.0.0.1 only.
//
//   BadUpstream silent(BadUpstream::Mode::kSilent);
//   NginxGateway nginx({{.location = "/dead", .servers = {FreePort()}},
//                       {.location = "/slow", .servers = {silent.port()},
//                        .directives = "proxy_read_timeout 1s;"}});
//   FetchRaw(nginx.port(), GetRequest("/dead"), 15s);  // or curl nginx.Url("/dead")
//
// The constructors REQUIRE (doctest) that the binary exists and that the gateway accepts
// connections within 10 s (WaitFor, no sleeps); on failure the message carries its log.
// The destructors send SIGTERM and reap the process (SIGKILL if it takes over 5 s), then
// remove the temp dir. Not thread-safe; use a gateway from the test's thread.

#include <atomic>
#include <cstdint>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace gatewatch::testing {

inline constexpr const char* kNginxBinary = "/usr/sbin/nginx";
inline constexpr const char* kHaproxyBinary = "/usr/sbin/haproxy";

// REQUIREs that `path` is executable, naming the packages to install when it is not.
void RequireBinary(const char* path);

// A listening TCP socket on 127.0.0.1 with a kernel-chosen port (stored in *port); the caller
// closes the returned fd. REQUIREs success.
int ListenLoopback(uint16_t* port);

// A TCP socket bound to 127.0.0.1 on a kernel-chosen port (stored in *port), not listening:
// connects to it are refused, and no other socket gets the port while it is open. The caller
// closes the returned fd. REQUIREs success.
int BindLoopback(uint16_t* port);

// A loopback port on which nothing listens (bound once by us, then released): a dead upstream.
uint16_t FreePort();

// Whether a TCP connect to 127.0.0.1:port succeeds now.
bool Accepts(uint16_t port);

// An upstream that misbehaves on 127.0.0.1: kSilent accepts and never answers (connections
// held until the upstream is destroyed); kClose reads the request and closes without a reply.
// Threads: one jthread accepts; port() and accepted() may be read from any thread. The thread
// gives up after two minutes whatever happens.
class BadUpstream {
 public:
  enum class Mode { kSilent, kClose };

  explicit BadUpstream(Mode mode);
  ~BadUpstream();
  BadUpstream(const BadUpstream&) = delete;
  BadUpstream& operator=(const BadUpstream&) = delete;

  uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }  // connections accepted so far

 private:
  void Run(std::stop_token stop);

  Mode mode_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<int> accepted_{0};
  std::vector<int> held_;  // only the thread touches it until the join
  std::jthread thread_;    // last: starts after every member above exists
};

// nginx as a reverse proxy: daemon off, master_process off, one worker, access log off, every
// path (pid, temp dirs, error log at level info) inside its TempDir.
class NginxGateway {
 public:
  // One `location` proxying to 127.0.0.1 upstream ports. One server: `proxy_pass
  // http://127.0.0.1:P;`. Several: an `upstream` block (round robin, nginx's default
  // max_fails/fail_timeout unless server_options says otherwise) and `proxy_pass` to it.
  // Every member has an initialiser so that designated initialisers may leave some out
  // (g++ 12's -Wmissing-field-initializers flags the omission otherwise).
  struct Route {
    std::string location{};           // prefix, e.g. "/dead"
    std::vector<uint16_t> servers{};  // REQUIRES: not empty
    bool next_upstream = true;        // false adds "proxy_next_upstream off;"
    std::string directives{};         // more inside the location, e.g. "proxy_read_timeout 1s;"
    std::string server_options{};     // after each upstream-block server, e.g. "max_fails=0"
  };
  // Raw text may use @DIR@ (the temp dir) and @PORT@ (the gateway's port).
  struct Options {
    std::vector<Route> routes{};
    std::string http_extra{};    // raw lines inside http { } (before the server)
    std::string server_extra{};  // raw lines inside server { } (after the routes)
  };

  explicit NginxGateway(std::vector<Route> routes);
  explicit NginxGateway(Options options);
  ~NginxGateway();
  NginxGateway(const NginxGateway&) = delete;
  NginxGateway& operator=(const NginxGateway&) = delete;

  uint16_t port() const { return port_; }
  // "http://127.0.0.1:PORT" + path (path starts with '/').
  std::string Url(std::string_view path = "/") const;
  std::string Log() const;     // its error log so far
  std::string Config() const;  // the nginx.conf it runs with

 private:
  TempDir dir_;
  uint16_t port_ = 0;
  std::string config_path_;
  std::string log_path_;
  std::unique_ptr<Process> process_;  // last: stopped before the dir is removed
};

// HAProxy in mode http, foreground (-db), maxconn 64, timeouts connect 1s / client 10s /
// server 1s; one frontend on the gateway's port routing by path prefix to its backends.
class HaproxyGateway {
 public:
  // One backend of 127.0.0.1 upstream ports (servers "s1".."sN", HAProxy's default round
  // robin and retries unless `directives` say otherwise).
  struct Backend {
    std::string path_prefix{};        // "" = the default_backend (give at most one)
    std::vector<uint16_t> servers{};  // REQUIRES: not empty
    bool health_check = false;        // "check inter 100ms fall 1 rise 1" on every server
    std::string directives{};         // raw lines in the backend, e.g. "retries 0"
    std::string server_options{};     // after each server line, e.g. "maxconn 1"
  };

  explicit HaproxyGateway(std::vector<Backend> backends);
  ~HaproxyGateway();
  HaproxyGateway(const HaproxyGateway&) = delete;
  HaproxyGateway& operator=(const HaproxyGateway&) = delete;

  uint16_t port() const { return port_; }
  std::string Url(std::string_view path = "/") const;
  std::string Log() const;     // its stdout and stderr so far
  std::string Config() const;  // the haproxy.cfg it runs with

 private:
  TempDir dir_;
  uint16_t port_ = 0;
  std::string config_path_;
  std::string log_path_;
  std::unique_ptr<Process> process_;  // last: stopped before the dir is removed
};

}  // namespace gatewatch::testing
