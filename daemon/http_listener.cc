#include "daemon/http_listener.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <vector>

#include "probes/log.h"

namespace gatewatch::daemon {

namespace {

using SteadyClock = std::chrono::steady_clock;
using TimePoint = SteadyClock::time_point;

// epoll keys: connections are keyed by a never-reused id (file descriptors are reused).
constexpr uint64_t kListenKey = 0;
constexpr uint64_t kWakeKey = 1;
constexpr uint64_t kFirstConnKey = 2;

constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kReadBudgetPerEvent = 256 * 1024;  // then other connections get a turn
constexpr auto kLingerTime = std::chrono::seconds(1);
constexpr size_t kLingerMaxBytes = 1 << 20;
constexpr auto kEvictableAfter = std::chrono::seconds(1);
constexpr auto kAcceptPause = std::chrono::milliseconds(100);
constexpr int kMaxEvents = 256;

enum class Phase {
  kHandshake,  // TLS handshake (part of the first request's deadline)
  kIdle,       // keep-alive: no byte of the next request yet
  kReading,    // head or body of a request
  kBusy,       // a handler runs
  kWriting,    // the response drains
  kLinger,     // after the last response: discarding what the client still sends
};

struct Conn {
  explicit Conn(const RequestLimits& limits) : parser(limits) {}

  uint64_t id = 0;
  int fd = -1;
  SSL* ssl = nullptr;
  std::string peer;
  Phase phase = Phase::kReading;
  TimePoint since;  // when it began waiting for its current request (eviction order)
  TimePoint deadline = TimePoint::max();
  RequestParser parser;
  HeadDecision decision;
  std::string out;
  size_t out_pos = 0;
  bool close_after_write = false;
  bool want_read = false;   // the last I/O call needs the socket readable
  bool want_write = false;  // ... or writable (TLS can want either for either call)
  uint32_t events = 0;      // registered with epoll
  size_t lingered = 0;
  bool dead = false;
};

struct Job {
  uint64_t id;
  RequestHead head;
  std::string body;
  std::function<HttpResponse(std::string)> handler;
  bool keep_alive;
};

struct Done {
  uint64_t id;
  std::string bytes;
  bool keep_alive;
};

std::string PeerAddress(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
  } else if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
      inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], buf, sizeof buf);  // one peer, one key
    } else {
      inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
    }
  }
  return buf;
}

std::string OpenSslError() {
  const unsigned long e = ERR_get_error();
  if (e == 0) return "unknown error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

bool Readable(const std::string& path) {
  std::ifstream in(path);
  return static_cast<bool>(in);
}

HttpResponse RunHandler(const std::function<HttpResponse(std::string)>& handler, std::string body, const RequestHead& head) {
  try {
    return handler(std::move(body));
  } catch (const std::exception& e) {
    log::Error("http handler failed").Kv("path", head.path).Kv("error", e.what());
  } catch (...) {
    log::Error("http handler failed").Kv("path", head.path);
  }
  return HttpResponse::JsonError(500, "internal error");
}

}  // namespace

struct HttpListener::Impl {
  Options options;
  size_t max_connections = 0;  // the limit, after fitting it to the descriptor limit
  SSL_CTX* ssl_ctx = nullptr;
  int listen_fd = -1;
  int epoll_fd = -1;
  int wake_fd = -1;
  std::thread loop_thread;
  std::vector<std::thread> workers;
  std::atomic<bool> stopping{false};
  std::chrono::milliseconds drain_time{1000};

  std::mutex jobs_mu;
  std::condition_variable jobs_cv;
  std::deque<Job> jobs;
  bool workers_stop = false;

  std::mutex done_mu;
  std::vector<Done> done;

  // Event-loop thread only.
  std::unordered_map<uint64_t, std::unique_ptr<Conn>> conns;
  std::vector<uint64_t> dead;
  size_t open = 0;
  std::unordered_map<std::string, size_t> per_peer;
  std::set<std::pair<TimePoint, uint64_t>> timers;
  uint64_t next_id = kFirstConnKey;
  bool accept_paused = false;
  TimePoint accept_resume;
  TimePoint last_accept_warning;

  struct Counters {
    std::atomic<uint64_t> accepted{0}, open{0}, refused_peer_limit{0}, refused_total_limit{0}, evicted{0},
        timed_out{0}, bad_requests{0}, requests{0};
  } counters;

  ~Impl() {
    if (listen_fd >= 0) close(listen_fd);
    if (epoll_fd >= 0) close(epoll_fd);
    if (wake_fd >= 0) close(wake_fd);
    if (ssl_ctx) SSL_CTX_free(ssl_ctx);
  }

  // --- setup -------------------------------------------------------------------------

  Result<void> LoadTls() {
    for (const std::string* file : {&options.tls_cert, &options.tls_key}) {
      if (!Readable(*file)) return Error("cannot read " + *file + ": " + std::strerror(errno));
    }
    ssl_ctx = SSL_CTX_new(TLS_server_method());
    if (!ssl_ctx) return Error("cannot create a TLS context: " + OpenSslError());
    SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ssl_ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate_chain_file(ssl_ctx, options.tls_cert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ssl_ctx, options.tls_key.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ssl_ctx) != 1) {
      ERR_clear_error();
      return Error("server.tls_cert / server.tls_key are not a valid certificate and key pair");
    }
    return {};
  }

  Result<int> Bind() {
    const HostPort& listen = options.listen;
    const std::string where = listen.host + ":" + std::to_string(listen.port);
    addrinfo hints{};  // ai_family 0: IPv4 or IPv6, as the host is written
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* found = nullptr;
    const std::string port = std::to_string(listen.port);
    if (const int rc = getaddrinfo(listen.host.empty() ? nullptr : listen.host.c_str(), port.c_str(), &hints, &found);
        rc != 0) {
      return Error("cannot listen on " + where + ": " + gai_strerror(rc));
    }
    int err = 0;
    for (addrinfo* ai = found; ai && listen_fd < 0; ai = ai->ai_next) {
      const int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
      if (fd < 0) {
        err = errno;
        continue;
      }
      // SO_REUSEADDR only: SO_REUSEPORT would let a second gatewatch share the port
      // silently; a port in use must be a start-up error.
      int yes = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
      if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd, SOMAXCONN) != 0) {
        err = errno;
        close(fd);
        continue;
      }
      listen_fd = fd;
    }
    freeaddrinfo(found);
    if (listen_fd < 0) return Error("cannot listen on " + where + ": " + std::strerror(err));
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    getsockname(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len);
    return ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                          : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  }

  // The connection bound, lowered when the descriptor limit cannot hold it (each
  // connection is one descriptor; the rest of the daemon keeps a reserve).
  void FitConnectionLimit() {
    constexpr size_t kReserve = 256;
    max_connections = options.limits.max_connections;
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return;
    const size_t fit = rl.rlim_cur > kReserve * 2 ? rl.rlim_cur - kReserve : rl.rlim_cur / 2;
    if (fit < max_connections) {
      log::Warn("the open-file limit lowers the connection bound")
          .Kv("open_file_limit", static_cast<uint64_t>(rl.rlim_cur))
          .Kv("max_connections", static_cast<uint64_t>(fit));
      max_connections = fit;
    }
  }

  // --- timers and bookkeeping ----------------------------------------------------------

  void SetDeadline(Conn& c, TimePoint at) {
    if (c.deadline != TimePoint::max()) timers.erase({c.deadline, c.id});
    c.deadline = at;
    if (at != TimePoint::max()) timers.insert({at, c.id});
  }

  void Close(Conn& c) {
    if (c.dead) return;
    c.dead = true;
    SetDeadline(c, TimePoint::max());
    if (c.ssl) {
      SSL_shutdown(c.ssl);  // a close_notify if it can go now; never waited for
      SSL_free(c.ssl);
      c.ssl = nullptr;
    }
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c.fd, nullptr);
    close(c.fd);
    if (auto it = per_peer.find(c.peer); it != per_peer.end() && --it->second == 0) per_peer.erase(it);
    --open;
    counters.open.store(open);
    dead.push_back(c.id);
  }

  void UpdateInterest(Conn& c) {
    if (c.dead) return;
    uint32_t ev = 0;
    switch (c.phase) {
      case Phase::kIdle:
      case Phase::kReading:
      case Phase::kLinger: ev = EPOLLIN; break;
      case Phase::kWriting: ev = EPOLLOUT; break;
      case Phase::kHandshake:
      case Phase::kBusy: break;
    }
    if (c.want_read) ev |= EPOLLIN;
    if (c.want_write || c.out_pos < c.out.size()) ev |= EPOLLOUT;
    if (ev == c.events) return;
    epoll_event e{};
    e.events = ev;
    e.data.u64 = c.id;
    epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c.fd, &e);
    c.events = ev;
  }

  void Wake() {
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = write(wake_fd, &one, sizeof one);
  }

  // --- raw I/O -----------------------------------------------------------------------

  enum class Io { kOk, kAgain, kClosed };

  Io RawRead(Conn& c, char* buf, size_t n, size_t* got) {
    *got = 0;
    if (c.ssl) {
      ERR_clear_error();
      const int r = SSL_read(c.ssl, buf, static_cast<int>(n));
      if (r > 0) {
        *got = static_cast<size_t>(r);
        return Io::kOk;
      }
      const int e = SSL_get_error(c.ssl, r);
      if (e == SSL_ERROR_WANT_READ) return c.want_read = true, Io::kAgain;
      if (e == SSL_ERROR_WANT_WRITE) return c.want_write = true, Io::kAgain;
      return Io::kClosed;
    }
    const ssize_t r = recv(c.fd, buf, n, 0);
    if (r > 0) {
      *got = static_cast<size_t>(r);
      return Io::kOk;
    }
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return c.want_read = true, Io::kAgain;
    return Io::kClosed;
  }

  Io RawWrite(Conn& c, const char* buf, size_t n, size_t* put) {
    *put = 0;
    if (c.ssl) {
      ERR_clear_error();
      const int r = SSL_write(c.ssl, buf, static_cast<int>(std::min<size_t>(n, 1 << 30)));
      if (r > 0) {
        *put = static_cast<size_t>(r);
        return Io::kOk;
      }
      const int e = SSL_get_error(c.ssl, r);
      if (e == SSL_ERROR_WANT_WRITE) return c.want_write = true, Io::kAgain;
      if (e == SSL_ERROR_WANT_READ) return c.want_read = true, Io::kAgain;
      return Io::kClosed;
    }
    const ssize_t r = send(c.fd, buf, n, MSG_NOSIGNAL);
    if (r >= 0) {
      *put = static_cast<size_t>(r);
      return Io::kOk;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return c.want_write = true, Io::kAgain;
    return Io::kClosed;
  }

  // --- connection state machine --------------------------------------------------------

  void Drive(Conn& c) {
    c.want_read = c.want_write = false;
    if (c.phase == Phase::kHandshake) Handshake(c);
    if (!c.dead && c.out_pos < c.out.size()) Flush(c);
    if (!c.dead && (c.phase == Phase::kIdle || c.phase == Phase::kReading)) ReadRequest(c);
    if (!c.dead && c.phase == Phase::kLinger) Discard(c);
    UpdateInterest(c);
  }

  void Handshake(Conn& c) {
    ERR_clear_error();
    const int r = SSL_do_handshake(c.ssl);
    if (r == 1) {
      c.phase = Phase::kReading;  // the request deadline set at accept still runs
      return;
    }
    const int e = SSL_get_error(c.ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
      c.want_read = true;
    } else if (e == SSL_ERROR_WANT_WRITE) {
      c.want_write = true;
    } else {
      log::Debug("tls handshake failed").Kv("peer", c.peer).Kv("error", OpenSslError());
      Close(c);
    }
  }

  void ReadRequest(Conn& c) {
    char buf[kReadChunk];
    size_t budget = kReadBudgetPerEvent;
    while (budget > 0 && !c.dead && (c.phase == Phase::kIdle || c.phase == Phase::kReading)) {
      const RequestParser::State st = c.parser.state();
      if (st != RequestParser::State::kHead && st != RequestParser::State::kBody) {
        AfterParse(c);  // a request already buffered (pipelined behind the last one)
        continue;
      }
      size_t got = 0;
      const Io io = RawRead(c, buf, sizeof buf, &got);
      if (io == Io::kAgain) return;
      if (io == Io::kClosed) {
        Close(c);  // the client went away (or broke TLS) mid-request or between requests
        return;
      }
      if (c.phase == Phase::kIdle) {
        c.phase = Phase::kReading;
        SetDeadline(c, SteadyClock::now() + options.limits.request_timeout);
      }
      budget -= std::min(budget, got);
      c.parser.Feed(std::string_view(buf, got));
      AfterParse(c);
    }
    // TLS may hold decrypted bytes that epoll cannot see: the loop comes back for them.
    if (!c.dead && c.ssl && SSL_pending(c.ssl) > 0 && (c.phase == Phase::kIdle || c.phase == Phase::kReading)) {
      c.want_write = true;  // any readiness will do: the socket is writable
    }
  }

  // Acts on the parser's state after new bytes (or after a response, for pipelined ones).
  void AfterParse(Conn& c) {
    RequestParser::State st = c.parser.state();
    if (st == RequestParser::State::kHeadReady) {
      const RequestHead& head = c.parser.head();
      try {
        c.decision = options.on_head(head);
      } catch (const std::exception& e) {
        log::Error("http head handler failed").Kv("path", head.path).Kv("error", e.what());
        c.decision = HeadDecision{HttpResponse::JsonError(500, "internal error"), nullptr, false};
      }
      if (c.decision.response || !c.decision.handler) {
        // Answered before the body: a body that was announced is never read.
        const HttpResponse response = c.decision.response.value_or(HttpResponse::JsonError(500, "internal error"));
        const bool keep_alive = head.keep_alive && !head.HasBody() && !stopping.load();
        Respond(c, SerializeResponse(response, head, keep_alive), keep_alive);
        return;
      }
      if (head.expect_continue && head.HasBody() && c.parser.buffered() == 0) {
        c.out += "HTTP/1.1 100 Continue\r\n\r\n";
        Flush(c);
        if (c.dead) return;
      }
      st = c.parser.AcceptBody();
    }
    if (st == RequestParser::State::kComplete) {
      Dispatch(c);
    } else if (st == RequestParser::State::kError) {
      counters.bad_requests.fetch_add(1);
      RequestHead head;  // the failed request's head may be partial: answer plainly
      head.method = c.parser.head().method;
      Respond(c, SerializeResponse(HttpResponse::JsonError(c.parser.error_status(), c.parser.error_message()), head, false),
              false);
    }
  }

  void Dispatch(Conn& c) {
    c.phase = Phase::kBusy;
    SetDeadline(c, TimePoint::max());  // the handler's time is the handler's own bound
    const bool on_loop = c.decision.on_event_loop;
    Job job{c.id, c.parser.head(), c.parser.TakeBody(), std::move(c.decision.handler),
            c.parser.head().keep_alive && !stopping.load()};
    c.decision = HeadDecision{};
    if (on_loop) {
      const HttpResponse r = RunHandler(job.handler, std::move(job.body), job.head);
      Respond(c, SerializeResponse(r, job.head, job.keep_alive), job.keep_alive);
      return;
    }
    {
      std::lock_guard lock(jobs_mu);
      jobs.push_back(std::move(job));
    }
    jobs_cv.notify_one();
  }

  void Respond(Conn& c, std::string bytes, bool keep_alive) {
    counters.requests.fetch_add(1);
    c.out += bytes;
    c.close_after_write = !keep_alive;
    c.phase = Phase::kWriting;
    SetDeadline(c, SteadyClock::now() + options.limits.write_timeout);
    Flush(c);
  }

  void Flush(Conn& c) {
    while (c.out_pos < c.out.size()) {
      size_t put = 0;
      const Io io = RawWrite(c, c.out.data() + c.out_pos, c.out.size() - c.out_pos, &put);
      if (io == Io::kAgain) return;
      if (io == Io::kClosed) {
        Close(c);
        return;
      }
      c.out_pos += put;
    }
    c.out.clear();
    c.out_pos = 0;
    if (c.phase == Phase::kWriting) WriteDone(c);
  }

  void WriteDone(Conn& c) {
    const TimePoint now = SteadyClock::now();
    if (c.close_after_write || stopping.load()) {
      const bool unread = c.parser.state() != RequestParser::State::kComplete || c.parser.buffered() > 0;
      if (unread && !c.ssl) {
        // Closing with unread bytes would reset the connection and could destroy the
        // response before the client reads it: half-close, then discard for a while.
        shutdown(c.fd, SHUT_WR);
        c.phase = Phase::kLinger;
        c.lingered = 0;
        SetDeadline(c, now + kLingerTime);
        return;
      }
      Close(c);
      return;
    }
    // The next request: ReadRequest goes on from bytes already buffered, if any.
    c.parser.Next();
    c.since = now;
    if (c.parser.buffered() > 0) {
      c.phase = Phase::kReading;
      SetDeadline(c, now + options.limits.request_timeout);
    } else {
      c.phase = Phase::kIdle;
      SetDeadline(c, now + options.limits.idle_timeout);
    }
  }

  void Discard(Conn& c) {
    char buf[kReadChunk];
    while (!c.dead) {
      size_t got = 0;
      const Io io = RawRead(c, buf, sizeof buf, &got);
      if (io == Io::kAgain) return;
      c.lingered += got;
      if (io == Io::kClosed || c.lingered > kLingerMaxBytes) Close(c);
    }
  }

  void OnTimeout(Conn& c) {
    switch (c.phase) {
      case Phase::kIdle:
      case Phase::kLinger: break;  // an ordinary end
      case Phase::kReading:
      case Phase::kHandshake:
      case Phase::kWriting:
        counters.timed_out.fetch_add(1);
        if (c.phase == Phase::kReading && !c.ssl && c.out.empty()) {
          constexpr std::string_view k408 =
              "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
          [[maybe_unused]] const ssize_t n = send(c.fd, k408.data(), k408.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        break;
      case Phase::kBusy: return;  // no deadline is set while busy
    }
    Close(c);
  }

  // --- accepting -----------------------------------------------------------------------

  void RefuseAtAccept(int fd, std::string_view why) {
    if (!ssl_ctx) {
      const std::string body = std::string(why) + "\n";
      const std::string reply = "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain; "
                                "charset=utf-8\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
      [[maybe_unused]] const ssize_t n = send(fd, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    close(fd);
  }

  bool EvictOne(TimePoint now) {
    Conn* oldest = nullptr;
    for (auto& [id, conn] : conns) {
      Conn& c = *conn;
      if (c.dead || (c.phase != Phase::kIdle && c.phase != Phase::kReading && c.phase != Phase::kHandshake)) continue;
      if (now - c.since < kEvictableAfter) continue;
      if (!oldest || c.since < oldest->since) oldest = &c;
    }
    if (!oldest) return false;
    counters.evicted.fetch_add(1);
    Close(*oldest);
    return true;
  }

  void SetAcceptPaused(bool paused) {
    if (paused == accept_paused) return;
    accept_paused = paused;
    if (paused) {
      epoll_ctl(epoll_fd, EPOLL_CTL_DEL, listen_fd, nullptr);
      accept_resume = SteadyClock::now() + kAcceptPause;
    } else {
      epoll_event e{};
      e.events = EPOLLIN;
      e.data.u64 = kListenKey;
      epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &e);
    }
  }

  void AcceptAll() {
    while (!accept_paused) {
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      const int fd = accept4(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        // Out of descriptors or memory: a level-triggered listener would spin; pause.
        const TimePoint now = SteadyClock::now();
        if (now - last_accept_warning > std::chrono::seconds(10)) {
          log::Warn("cannot accept connections").Kv("error", std::strerror(errno));
          last_accept_warning = now;
        }
        SetAcceptPaused(true);
        return;
      }
      counters.accepted.fetch_add(1);
      const TimePoint now = SteadyClock::now();
      std::string peer = PeerAddress(ss);
      if (auto it = per_peer.find(peer); it != per_peer.end() && it->second >= options.limits.max_connections_per_peer) {
        counters.refused_peer_limit.fetch_add(1);
        RefuseAtAccept(fd, "too many connections from this address");
        continue;
      }
      if (open >= max_connections && !EvictOne(now)) {
        counters.refused_total_limit.fetch_add(1);
        RefuseAtAccept(fd, "too many connections");
        continue;
      }
      int yes = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
      auto conn = std::make_unique<Conn>(options.limits.request);
      Conn& c = *conn;
      c.id = next_id++;
      c.fd = fd;
      c.peer = std::move(peer);
      c.since = now;
      if (ssl_ctx) {
        c.ssl = SSL_new(ssl_ctx);
        if (!c.ssl || SSL_set_fd(c.ssl, fd) != 1) {
          if (c.ssl) SSL_free(c.ssl);
          close(fd);
          continue;
        }
        SSL_set_accept_state(c.ssl);
        c.phase = Phase::kHandshake;
      }
      epoll_event e{};
      e.events = EPOLLIN;
      e.data.u64 = c.id;
      if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &e) != 0) {
        if (c.ssl) SSL_free(c.ssl);
        close(fd);
        continue;
      }
      c.events = EPOLLIN;
      ++per_peer[c.peer];
      ++open;
      counters.open.store(open);
      SetDeadline(c, now + options.limits.request_timeout);
      conns.emplace(c.id, std::move(conn));
    }
  }

  // --- the loop ------------------------------------------------------------------------

  void ProcessDone() {
    std::vector<Done> batch;
    {
      std::lock_guard lock(done_mu);
      batch.swap(done);
    }
    for (Done& d : batch) {
      auto it = conns.find(d.id);
      if (it == conns.end() || it->second->dead) continue;  // closed while the handler ran
      Conn& c = *it->second;
      c.want_read = c.want_write = false;
      Respond(c, std::move(d.bytes), d.keep_alive);
      if (!c.dead && c.phase != Phase::kWriting) Drive(c);  // keep-alive: read what follows
      UpdateInterest(c);
    }
  }

  void ExpireTimers() {
    const TimePoint now = SteadyClock::now();
    while (!timers.empty() && timers.begin()->first <= now) {
      const uint64_t id = timers.begin()->second;
      timers.erase(timers.begin());
      auto it = conns.find(id);
      if (it == conns.end()) continue;
      it->second->deadline = TimePoint::max();
      OnTimeout(*it->second);
    }
  }

  void Reap() {
    for (uint64_t id : dead) conns.erase(id);
    dead.clear();
  }

  int WaitMillis(TimePoint now) const {
    TimePoint next = now + std::chrono::seconds(1);
    if (!timers.empty()) next = std::min(next, timers.begin()->first);
    if (accept_paused) next = std::min(next, accept_resume);
    if (next <= now) return 0;
    return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(next - now).count());
  }

  void Loop() {
    epoll_event events[kMaxEvents];
    bool draining = false;
    TimePoint drain_until;
    while (true) {
      const int n = epoll_wait(epoll_fd, events, kMaxEvents, WaitMillis(SteadyClock::now()));
      if (n < 0 && errno != EINTR) {
        log::Error("http listener stopped").Kv("error", std::strerror(errno));
        break;
      }
      for (int i = 0; i < n; ++i) {
        const uint64_t key = events[i].data.u64;
        if (key == kWakeKey) {
          uint64_t v = 0;
          [[maybe_unused]] const ssize_t r = read(wake_fd, &v, sizeof v);
        } else if (key == kListenKey) {
          if (!draining) AcceptAll();
        } else if (auto it = conns.find(key); it != conns.end() && !it->second->dead) {
          Drive(*it->second);
        }
      }
      ProcessDone();
      ExpireTimers();
      if (accept_paused && !draining && SteadyClock::now() >= accept_resume) SetAcceptPaused(false);
      if (stopping.load() && !draining) {
        draining = true;
        drain_until = SteadyClock::now() + drain_time;
        SetAcceptPaused(true);
        for (auto& [id, conn] : conns) {
          if (conn->phase != Phase::kBusy && conn->phase != Phase::kWriting) Close(*conn);
        }
      }
      Reap();
      if (draining && (conns.empty() || SteadyClock::now() >= drain_until)) break;
    }
    for (auto& [id, conn] : conns) Close(*conn);
    Reap();
  }

  void Work() {
    while (true) {
      Job job;
      {
        std::unique_lock lock(jobs_mu);
        jobs_cv.wait(lock, [this] { return workers_stop || !jobs.empty(); });
        if (jobs.empty()) return;
        job = std::move(jobs.front());
        jobs.pop_front();
      }
      HttpResponse r = RunHandler(job.handler, std::move(job.body), job.head);
      std::string bytes = SerializeResponse(r, job.head, job.keep_alive);
      {
        std::lock_guard lock(done_mu);
        done.push_back(Done{job.id, std::move(bytes), job.keep_alive});
      }
      Wake();
    }
  }
};

HttpListener::HttpListener(Options options) : impl_(std::make_unique<Impl>()) { impl_->options = std::move(options); }

HttpListener::~HttpListener() { Stop(); }

Result<int> HttpListener::Start() {
  Impl& d = *impl_;
  // OpenSSL writes with write(2), which cannot take MSG_NOSIGNAL: a TLS peer that went away
  // would raise SIGPIPE and kill the process. Ignored, unless the program set a handler.
  struct sigaction current {};
  if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) signal(SIGPIPE, SIG_IGN);
  if (!d.options.tls_cert.empty() || !d.options.tls_key.empty()) {
    if (auto tls = d.LoadTls(); !tls) return Error(tls.error());
  }
  auto port = d.Bind();
  if (!port) return Error(port.error());
  d.FitConnectionLimit();
  d.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  d.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (d.epoll_fd < 0 || d.wake_fd < 0) return Error(std::string("cannot start the http listener: ") + std::strerror(errno));
  epoll_event e{};
  e.events = EPOLLIN;
  e.data.u64 = kListenKey;
  epoll_ctl(d.epoll_fd, EPOLL_CTL_ADD, d.listen_fd, &e);
  e.data.u64 = kWakeKey;
  epoll_ctl(d.epoll_fd, EPOLL_CTL_ADD, d.wake_fd, &e);
  for (int i = 0; i < std::max(1, d.options.limits.workers); ++i) d.workers.emplace_back([&d] { d.Work(); });
  d.loop_thread = std::thread([&d] { d.Loop(); });
  return *port;
}

void HttpListener::Stop(std::chrono::milliseconds drain) {
  Impl& d = *impl_;
  if (!d.loop_thread.joinable()) return;
  d.drain_time = drain;
  d.stopping.store(true);
  d.Wake();
  d.loop_thread.join();
  {
    std::lock_guard lock(d.jobs_mu);
    d.workers_stop = true;
    d.jobs.clear();  // their connections are closed
  }
  d.jobs_cv.notify_all();
  for (std::thread& t : d.workers) t.join();
  d.workers.clear();
  if (d.listen_fd >= 0) {
    close(d.listen_fd);
    d.listen_fd = -1;
  }
}

ListenerStats HttpListener::Stats() const {
  const Impl::Counters& c = impl_->counters;
  ListenerStats s;
  s.accepted = c.accepted.load();
  s.open = c.open.load();
  s.refused_peer_limit = c.refused_peer_limit.load();
  s.refused_total_limit = c.refused_total_limit.load();
  s.evicted = c.evicted.load();
  s.timed_out = c.timed_out.load();
  s.bad_requests = c.bad_requests.load();
  s.requests = c.requests.load();
  return s;
}

}  // namespace gatewatch::daemon
