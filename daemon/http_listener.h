#pragma once
// The HTTP/1.1 listener: one event-loop thread owns every socket (accept, TLS handshake,
// reading requests, writing responses) and a few worker threads run handlers. A client
// therefore holds a socket, never a thread: slow or stalled clients cannot starve
// /healthz, /readyz or /metrics, however many there are.
//
// Bounds (ListenerLimits): a request's head and body must arrive within request_timeout
// of its first byte (of the accept, for a connection's first request, TLS handshake
// included); a keep-alive connection waits idle_timeout for its next request; a response
// must drain within write_timeout; connections are bounded in total and per peer address.
// At the total bound a new connection replaces the oldest one still waiting for or reading
// a request, if that one has held its slot for a second; otherwise the new one is closed.
// Over the per-peer bound a new connection is closed at once.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "daemon/http_message.h"
#include "daemon/http_parser.h"
#include "probes/result.h"
#include "probes/url.h"

namespace gatewatch::daemon {

struct ListenerLimits {
  size_t max_connections = 1024;
  size_t max_connections_per_peer = 128;
  std::chrono::milliseconds request_timeout{10'000};
  std::chrono::milliseconds idle_timeout{5'000};
  std::chrono::milliseconds write_timeout{10'000};
  RequestLimits request;
  int workers = 4;
};

// What a head-of-request callback decides, on the event-loop thread, before any body byte
// is read: answer now (`response`: the body, if any, is never read and the connection
// closes when one was announced), or read the body and run `handler` — on a worker, or on
// the event loop itself when `on_event_loop` (only for handlers that never block).
struct HeadDecision {
  std::optional<HttpResponse> response;
  std::function<HttpResponse(std::string body)> handler;
  bool on_event_loop = false;
};
using HeadCallback = std::function<HeadDecision(const RequestHead&)>;

struct ListenerStats {
  uint64_t accepted = 0;
  uint64_t open = 0;                 // connections open now
  uint64_t refused_peer_limit = 0;   // closed at accept: the peer had its maximum
  uint64_t refused_total_limit = 0;  // closed at accept: the listener was full
  uint64_t evicted = 0;              // closed to make room for a new connection
  uint64_t timed_out = 0;            // closed at a request, idle or write deadline
  uint64_t bad_requests = 0;         // refused by the parser (4xx/5xx, connection closed)
  uint64_t requests = 0;             // requests answered
};

class HttpListener {
 public:
  struct Options {
    HostPort listen;
    std::string tls_cert;  // both set: HTTPS
    std::string tls_key;
    ListenerLimits limits;
    HeadCallback on_head;
  };

  explicit HttpListener(Options options);
  ~HttpListener();  // stops
  HttpListener(const HttpListener&) = delete;
  HttpListener& operator=(const HttpListener&) = delete;

  // Loads the TLS pair (if any), binds, and starts the threads; returns the bound port.
  Result<int> Start();
  // Closes the listening socket and idle connections, gives requests in progress up to
  // `drain` to finish (a handler still running then is waited for, not abandoned: handlers
  // are bounded by their own timeouts), joins the threads. Idempotent.
  void Stop(std::chrono::milliseconds drain = std::chrono::seconds(1));

  ListenerStats Stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gatewatch::daemon
