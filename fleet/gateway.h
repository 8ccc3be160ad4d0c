#pragma once
// Gateway: a tiny loopback reverse proxy that behaves like nginx 1.22 as a gateway in front
// of a pool of upstream ports (upstream { server 127.0.0.1:A; server 127.0.0.1:B; } with
// proxy_pass, default proxy_next_upstream "error timeout"), so tests and the demo get real
// gateway-class failures from a real hop:
//   RawHttpServer api1, api2;
//   Gateway gw({.upstreams = {api1.port(), api2.port()}});
//   curl(gw.Url("/healthz"));   // 200 relayed with "Server: nginx/1.22.1"
//
// Per request (HTTP/1.x, one request per connection) it picks the next server round-robin,
// connects to 127.0.0.1:<port> within connect_timeout, sends the request as nginx does
// (HTTP/1.0, "Host: backend", "Connection: close", the client's other headers, a body of
// up to 1 MiB by Content-Length) and relays the status line, headers and body (up to
// 8 MiB) with nginx's Server, Date and Connection headers in front of the upstream's other
// headers. Like nginx (docs/fingerprints.md):
//   - connect refused / reset / closed without a reply -> error; connect or read timeout
//     (read_timeout between two reads of the response head) -> timeout. Either tries the
//     next server of the pool (each server at most once; after the request was sent only
//     for idempotent methods) unless next_upstream is false. When no try is left the
//     client gets pages::Nginx(502) byte for byte (pages::Nginx(504) after a timeout).
//   - an upstream that answers with a 5xx is relayed as is (proxy_next_upstream has no
//     http_502 by default); non-HTTP bytes are relayed raw (nginx's HTTP/0.9 pass-through);
//     a response head over 64 KiB or an invalid status line gives 502 without a retry.
//   - a read timeout or reset while relaying the body closes the client connection
//     (truncated response), as nginx does once the header has gone out.
// Not modelled: fail_timeout/max_fails (nginx keeps avoiding a failed server for 10 s),
// keep-alive, chunked request bodies, TLS.
//
// Threads: one acceptor thread (poll over the listener and a stop waker) plus one worker
// thread per connection, at most kMaxConnections at once; a connection beyond that gets
// pages::Nginx(503) from the acceptor (which waits up to 200 ms for its request first).
// Every blocking step polls the stop waker and has a deadline. The gateway listens when
// the constructor returns; the destructor stops and joins every thread (promptly, also
// with clients or upstreams hanging) and closes every socket. Setters and counters are
// thread-safe; a setter applies to requests that arrive after it returns.

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "fleet/socket_util.h"

namespace gatewatch::fleet {

struct GatewayOptions {
  std::vector<int> upstreams{};  // 127.0.0.1 ports, tried round-robin
  // proxy_next_upstream "error timeout" (true) or "off" (false: the first failure answers).
  bool next_upstream = true;
  // When set, every request goes to this port only (one try) instead of the pool: the
  // "gateway misrouted" scenario (a RefusedPort() gives 502 while the pool is healthy).
  std::optional<int> misroute_port{};
  std::chrono::milliseconds connect_timeout{1000};  // proxy_connect_timeout -> 504
  std::chrono::milliseconds read_timeout{2000};     // proxy_read_timeout -> 504
};

class Gateway {
 public:
  static constexpr int kMaxConnections = 64;  // worker threads at once

  explicit Gateway(GatewayOptions options = {});
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  int port() const { return port_; }
  // "http://127.0.0.1:PORT/path".
  std::string Url(std::string_view path = "/") const;

  void SetUpstreams(std::vector<int> ports);
  void SetMisroute(std::optional<int> port);  // nullopt: back to the pool
  void SetNextUpstream(bool enabled);
  void SetReadTimeout(std::chrono::milliseconds timeout);
  GatewayOptions options() const;  // a snapshot

  int RequestCount() const { return requests_.load(); }          // complete request heads read
  int UpstreamAttemptCount() const { return attempts_.load(); }  // connects tried
  int BadGatewayCount() const { return status502_.load(); }      // nginx 502 pages sent
  int GatewayTimeoutCount() const { return status504_.load(); }  // nginx 504 pages sent
  int OverloadCount() const { return status503_.load(); }        // nginx 503 pages sent
  int ActiveConnections() const { return active_.load(); }       // worker threads alive

 private:
  struct Worker;
  void Run();
  void Serve(UniqueFd client);
  void RejectOverload(UniqueFd client);

  UniqueFd listener_;
  int port_ = 0;
  Waker waker_;
  std::atomic<bool> stop_{false};
  std::atomic<unsigned> next_server_{0};  // round-robin position
  std::atomic<int> requests_{0};
  std::atomic<int> attempts_{0};
  std::atomic<int> status502_{0};
  std::atomic<int> status503_{0};
  std::atomic<int> status504_{0};
  std::atomic<int> active_{0};

  mutable std::mutex mu_;  // guards options_
  GatewayOptions options_;

  std::thread thread_;  // last: starts after every member above exists
};

}  // namespace gatewatch::fleet
