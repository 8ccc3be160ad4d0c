#pragma once
// RawHttpServer: a loopback HTTP/1.x server on raw sockets that misbehaves on purpose.
// Each request gets a Behavior chosen by the longest matching path prefix (Route) or
// the default; behaviours are plain data, e.g.
//   RawHttpServer server;                           // default: 200 "ok"
//   server.Route("/slow", Behavior::SlowHeaders(std::chrono::seconds(30)))
//         .Route("/502", Behavior::Raw(pages::Nginx(502)));
//   curl(server.Url("/slow/x"));
//
// Threads: one server thread runs a poll() loop over the listener and every connection.
// Route/SetDefault and the counters are thread-safe. The server listens when the
// constructor returns and the destructor stops and joins the thread within ~one poll
// interval, closing every client socket. After a response the server half-closes and
// drains the client (lingering close), so unread request bytes never turn the response
// into an RST. Requests are not kept alive: one request per connection.
// SetRefusing(true) closes the listener so that connects are refused (connect_refused)
// while the port stays this server's: SetRefusing(false) listens on the same port again.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "fleet/socket_util.h"

namespace gatewatch::fleet {

struct Behavior {
  enum class Kind {
    kRespond,            // write `bytes` (after `delay`), then `drip_bytes`, then close
    kResetOnAccept,      // RST right after accept(), before reading anything
    kResetAfterRequest,  // RST after the request head was read
    kEmptyReply,         // read the request head, close (FIN) without writing
    kOversizedBody,      // 200 with a `body_bytes` body, generated lazily while sending
    kRedirectLoop,       // 302 whose Location increments the last path segment
  };
  Kind kind = Kind::kRespond;
  std::string bytes;                   // kRespond: written exactly as given
  std::chrono::milliseconds delay{0};  // before the first byte of the response
  size_t drip_bytes = 0;               // kRespond: then one byte per drip_interval
  std::chrono::milliseconds drip_interval{0};
  uint64_t body_bytes = 0;        // kOversizedBody
  bool chunked = true;            // kOversizedBody: chunked or Content-Length
  bool redirect_to_self = false;  // kRedirectLoop: Location = the same path

  // 200 "ok" (text/plain, Content-Length 2).
  static Behavior Ok();
  // `raw` exactly as given: status line, headers and body (e.g. pages::Nginx(502)).
  static Behavior Raw(std::string raw);
  // `code` with a small canned HTML page (correct Content-Length).
  static Behavior Status(int code);
  // 200 "ok", but only after `delay` (timeout_ttfb). The connection stays open meanwhile.
  static Behavior SlowHeaders(std::chrono::milliseconds delay);
  // Headers at once announcing `total_bytes`, then one byte per `interval` (timeout_body).
  static Behavior SlowBody(std::chrono::milliseconds interval, size_t total_bytes = 100000);
  // Non-HTTP bytes, an SSH banner by default (malformed_response).
  static Behavior Garbage(std::string bytes = "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
  // RST `after` the connection was accepted, without reading anything (connection_reset).
  // Only meaningful as the default behaviour: a Route() match happens after the request,
  // so there it acts like ResetAfterRequest(). With after = 0 the RST follows accept()
  // at once; on loopback it then often lands before a non-blocking client (curl) has
  // seen its connect complete, and curl reports a connect failure (rc 7, like a refused
  // port). For a reset *after connect* as a remote client sees it, pass e.g. 50 ms.
  static Behavior ResetOnAccept(std::chrono::milliseconds after = std::chrono::milliseconds(0));
  static Behavior ResetAfterRequest();
  // Close without writing anything (empty_reply).
  static Behavior EmptyReply();
  // 200 with `header_bytes` of headers, then body "ok" (malformed_response). By default
  // one X-Filler header line carries them all: curl 7.88 caps a single header line at
  // 100 KB (CURLE_OUT_OF_MEMORY, rc 27) but accepts 200 KB spread over many lines
  // (`single_line` false: X-Filler-NNNNN lines of 100 bytes).
  static Behavior OversizedHeaders(size_t header_bytes = 200 * 1024, bool single_line = true);
  // 200 with a `body_bytes` body ('x'), chunked by default; generated while sending.
  static Behavior OversizedBody(uint64_t body_bytes = 10 * 1024 * 1024, bool chunked = true);
  // 302 to the request path with its trailing number incremented ("/loop" -> "/loop/1",
  // "/loop/7" -> "/loop/8"), or to itself when `to_self` (redirect_loop).
  static Behavior RedirectLoop(bool to_self = false);

  // The same behaviour, starting only after `d` (e.g. Raw(page).After(2s)).
  Behavior After(std::chrono::milliseconds d) const;
};

class RawHttpServer {
 public:
  // Listens on `port` of loopback (0: a port the kernel chooses; dies when it is taken).
  explicit RawHttpServer(Behavior default_behavior = Behavior::Ok(),
                         IpFamily family = IpFamily::kV4, int port = 0);
  ~RawHttpServer();
  RawHttpServer(const RawHttpServer&) = delete;
  RawHttpServer& operator=(const RawHttpServer&) = delete;

  int port() const { return port_; }
  // "http://127.0.0.1:PORT/path" (or "http://[::1]:PORT/path").
  std::string Url(std::string_view path = "/") const;
  // "127.0.0.1:PORT", for proxies and CONNECT_TO.
  std::string HostPort() const;

  // Requests whose path starts with `prefix` get `behavior` (longest prefix wins). A
  // request for an absolute URI ("GET http://h/p") is matched by its path.
  RawHttpServer& Route(std::string prefix, Behavior behavior);
  RawHttpServer& SetDefault(Behavior behavior);

  // refusing = true closes the listening socket (connects get RST: ECONNREFUSED; pending,
  // unaccepted connections are reset; accepted ones carry on); false listens again on the
  // same port. The listener has SO_REUSEADDR, so TIME_WAIT connections do not block the
  // re-bind. Blocks until the server thread applied the change, at most ~2 s; returns
  // false if it was not applied by then (the port was taken by another socket meanwhile;
  // the server keeps retrying every 100 ms).
  bool SetRefusing(bool refusing);
  bool Refusing() const;  // the state applied last

  int AcceptCount() const { return accepts_.load(); }    // connections accepted
  int RequestCount() const { return requests_.load(); }  // complete request heads read
  // Requests whose path starts with `prefix`.
  int RequestCount(std::string_view prefix) const;
  std::string LastRequestHead() const;  // the last complete request head, verbatim

 private:
  struct Conn;
  void Run();
  Behavior Pick(std::string_view path) const;
  void ApplyRefusing();  // server thread

  IpFamily family_;
  UniqueFd listener_;
  int port_ = 0;
  Waker waker_;
  UniqueFd kick_;  // eventfd: SetRefusing() wakes the server thread (read resets it)
  std::atomic<bool> stop_{false};
  std::atomic<int> accepts_{0};
  std::atomic<int> requests_{0};

  mutable std::mutex mu_;  // guards routes_, default_, paths_, last_head_
  std::map<std::string, Behavior> routes_;
  Behavior default_;
  std::map<std::string, int> paths_;  // request count per path (bounded, see .cc)
  std::string last_head_;

  mutable std::mutex refuse_mu_;  // guards want_refusing_ and refusing_
  std::condition_variable refuse_cv_;
  bool want_refusing_ = false;
  bool refusing_ = false;

  std::thread thread_;  // last: starts after every member above exists
};

}  // namespace gatewatch::fleet
