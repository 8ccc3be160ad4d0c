#include "fleet/gateway.h"

#include <poll.h>
#include <strings.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <ctime>
#include <list>
#include <utility>

#include "fleet/http_text.h"
#include "fleet/pages.h"
#include "probes/text.h"

namespace gatewatch::fleet {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kServer = "nginx/1.22.1";
constexpr const char* kUpstreamHost = "backend";  // nginx sends $proxy_host: the pool's name
constexpr size_t kMaxRequestHead = 64 * 1024;
constexpr size_t kMaxRequestBody = 1024 * 1024;  // client_max_body_size 1m
constexpr size_t kMaxUpstreamHead = 64 * 1024;
constexpr uint64_t kMaxRelayBody = 8 * 1024 * 1024;
constexpr size_t kMaxAcceptsPerWake = 64;
constexpr auto kClientTimeout = std::chrono::seconds(10);  // reading the request, writing
constexpr auto kLingerTimeout = std::chrono::seconds(1);
constexpr auto kOverloadWait = std::chrono::milliseconds(200);
constexpr size_t kMaxLingerBytes = 1024 * 1024;

enum class Wait { kReady, kTimeout, kStopped };

// Waits for `events` on fd until `deadline`; the waker (stop) wins.
Wait WaitFd(int fd, short events, int waker, Clock::time_point deadline) {
  for (;;) {  // ends by the deadline: PollTimeoutMs rounds up, so time always passes
    pollfd p[2] = {{fd, events, 0}, {waker, POLLIN, 0}};
    const int n = ::poll(p, 2, PollTimeoutMs(deadline));
    if (n < 0 && errno != EINTR) return Wait::kStopped;
    if (p[1].revents != 0) return Wait::kStopped;
    if (n > 0 && p[0].revents != 0) return Wait::kReady;
    if (Clock::now() >= deadline) return Wait::kTimeout;
  }
}

enum class Read { kData, kEof, kError, kTimeout, kStopped };

// Appends up to `max` (> 0) bytes to *out once some are there.
Read ReadSome(int fd, std::string* out, size_t max, int waker, Clock::time_point deadline) {
  char buf[16 * 1024];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, std::min(sizeof(buf), max), MSG_DONTWAIT);
    if (n > 0) {
      out->append(buf, static_cast<size_t>(n));
      return Read::kData;
    }
    if (n == 0) return Read::kEof;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return Read::kError;
    switch (WaitFd(fd, POLLIN, waker, deadline)) {
      case Wait::kReady:
        break;
      case Wait::kTimeout:
        return Read::kTimeout;
      case Wait::kStopped:
        return Read::kStopped;
    }
  }
}

bool SendAll(int fd, std::string_view data, int waker, Clock::time_point deadline) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return false;
    if (WaitFd(fd, POLLOUT, waker, deadline) != Wait::kReady) return false;
  }
  return true;
}

// Half-closes and drains, so the client reads everything before it sees our FIN and
// unread request bytes never turn the response into an RST.
void LingeringClose(UniqueFd& fd, int waker) {
  ::shutdown(fd.get(), SHUT_WR);
  const auto deadline = Clock::now() + kLingerTimeout;
  std::string sink;
  for (size_t drained = 0; drained < kMaxLingerBytes;) {
    sink.clear();
    if (ReadSome(fd.get(), &sink, 16 * 1024, waker, deadline) != Read::kData) break;
    drained += sink.size();
  }
  fd.Reset();
}

struct Head {
  std::string first_line;
  std::vector<std::pair<std::string, std::string>> headers;  // names as sent, values trimmed

  const std::string* Find(std::string_view lower_name) const {
    for (const auto& [name, value] : headers) {
      if (AsciiLower(name) == lower_name) return &value;
    }
    return nullptr;
  }
};

// `head` is everything up to and including the blank line.
Head ParseHead(std::string_view head) {
  Head h;
  bool first = true;
  while (!head.empty()) {
    size_t eol = head.find('\n');
    if (eol == std::string_view::npos) eol = head.size();
    std::string_view line = head.substr(0, eol);
    head.remove_prefix(std::min(head.size(), eol + 1));
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (first) {
      h.first_line = std::string(line);
      first = false;
      continue;
    }
    if (line.empty()) break;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    h.headers.emplace_back(std::string(TrimHttpSpace(line.substr(0, colon))),
                           std::string(TrimHttpSpace(line.substr(colon + 1))));
  }
  return h;
}

// Content-Length as a number; nullopt when absent or not a plain decimal.
std::optional<uint64_t> ContentLength(const Head& h) {
  const std::string* v = h.Find("content-length");
  if (v == nullptr || v->empty() || v->size() > 18) return std::nullopt;
  uint64_t n = 0;
  for (const char c : *v) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  return n;
}

std::string HttpDate() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  char buf[64];
  const size_t n = std::strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return std::string(buf, n);
}

// nginx's own page layout for a 4xx it generates itself (413 here).
std::string NginxClientError(int status) {
  const std::string line = std::to_string(status) + " " + std::string(ReasonPhrase(status));
  const std::string body =
      "<html>\r\n<head><title>" + line + "</title></head>\r\n<body>\r\n<center><h1>" + line +
      "</h1></center>\r\n<hr><center>" + kServer + "</center>\r\n</body>\r\n</html>\r\n";
  return BuildResponse(line,
                       {{"Server", kServer},
                        {"Date", HttpDate()},
                        {"Content-Type", "text/html"},
                        {"Content-Length", std::string(kBodyLength)},
                        {"Connection", "close"}},
                       body);
}

// What one try of one upstream server gave.
struct Attempt {
  enum class Kind {
    kResponse,  // a response head (or HTTP/0.9 bytes) arrived: relay it
    kError,     // refused, reset, closed without a (complete) head: next server
    kTimeout,   // connect or read timeout: next server, 504 when last
    kInvalid,   // invalid status line or oversized head: 502 at once
    kStopped,   // the gateway is shutting down
  };
  Kind kind = Kind::kError;
  bool sent = false;  // the whole request went out (matters for non-idempotent methods)
  UniqueFd fd;
  std::string data;  // response bytes read so far (head and the start of the body)
  size_t head_end = 0;
  bool http09 = false;  // no status line: relay the bytes raw
};

Attempt TryUpstream(int port, std::string_view request, const GatewayOptions& opts, int waker) {
  Attempt a;
  a.fd.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!a.fd.valid()) return a;
  socklen_t len = 0;
  const sockaddr_storage addr = LoopbackAddress(IpFamily::kV4, port, &len);
  if (::connect(a.fd.get(), reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
    if (errno != EINPROGRESS) return a;  // ECONNREFUSED on loopback, mostly
    switch (WaitFd(a.fd.get(), POLLOUT, waker, Clock::now() + opts.connect_timeout)) {
      case Wait::kReady:
        break;
      case Wait::kTimeout:
        a.kind = Attempt::Kind::kTimeout;
        return a;
      case Wait::kStopped:
        a.kind = Attempt::Kind::kStopped;
        return a;
    }
    int err = 0;
    socklen_t err_len = sizeof(err);
    if (::getsockopt(a.fd.get(), SOL_SOCKET, SO_ERROR, &err, &err_len) != 0 || err != 0) {
      return a;
    }
  }
  // proxy_send_timeout defaults to proxy_read_timeout's 60 s; one limit keeps it simple.
  if (!SendAll(a.fd.get(), request, waker, Clock::now() + opts.read_timeout)) return a;
  a.sent = true;

  constexpr std::string_view kHttp = "HTTP/";
  auto deadline = Clock::now() + opts.read_timeout;
  for (;;) {  // each pass reads bytes or returns; the head is capped at kMaxUpstreamHead
    const size_t n = std::min(a.data.size(), kHttp.size());
    if (n > 0 && a.data.compare(0, n, kHttp, 0, n) != 0) {
      a.http09 = true;
      a.kind = Attempt::Kind::kResponse;
      return a;
    }
    if (const size_t end = FindHeadEnd(a.data); end != std::string::npos) {
      const Head head = ParseHead(std::string_view(a.data).substr(0, end));
      const std::string& line = head.first_line;
      const bool valid = line.size() >= 12 && line.compare(0, 7, "HTTP/1.") == 0 &&
                         line[8] == ' ' && std::isdigit(static_cast<unsigned char>(line[9])) &&
                         std::isdigit(static_cast<unsigned char>(line[10])) &&
                         std::isdigit(static_cast<unsigned char>(line[11])) &&
                         (line.size() == 12 || line[12] == ' ');
      a.kind = valid ? Attempt::Kind::kResponse : Attempt::Kind::kInvalid;
      a.head_end = end;
      return a;
    }
    if (a.data.size() > kMaxUpstreamHead) {  // "upstream sent too big header"
      a.kind = Attempt::Kind::kInvalid;
      return a;
    }
    switch (ReadSome(a.fd.get(), &a.data, kMaxUpstreamHead + 1 - a.data.size(), waker, deadline)) {
      case Read::kData:
        deadline = Clock::now() + opts.read_timeout;  // a timeout between two reads
        break;
      case Read::kEof:  // "upstream prematurely closed connection"
      case Read::kError:
        a.kind = Attempt::Kind::kError;
        return a;
      case Read::kTimeout:
        a.kind = Attempt::Kind::kTimeout;
        return a;
      case Read::kStopped:
        a.kind = Attempt::Kind::kStopped;
        return a;
    }
  }
}

// The client's response head: nginx's Server, Date, the upstream's Content-Type,
// Content-Length, Transfer-Encoding, then Connection, then the upstream's other headers.
std::string ClientHead(const Head& upstream) {
  std::string out = "HTTP/1.1" + upstream.first_line.substr(8) + "\r\n";
  out += "Server: " + std::string(kServer) + "\r\nDate: " + HttpDate() + "\r\n";
  for (const char* name : {"content-type", "content-length", "transfer-encoding"}) {
    for (const auto& [n, v] : upstream.headers) {
      if (AsciiLower(n) == name) out += n + ": " + v + "\r\n";
    }
  }
  out += "Connection: close\r\n";
  for (const auto& [n, v] : upstream.headers) {
    const std::string lower = AsciiLower(n);
    if (lower == "server" || lower == "date" || lower == "connection" || lower == "keep-alive" ||
        lower == "content-type" || lower == "content-length" || lower == "transfer-encoding" ||
        lower == "x-pad" || lower.rfind("x-accel-", 0) == 0) {
      continue;
    }
    out += n + ": " + v + "\r\n";
  }
  return out + "\r\n";
}

// Relays a response whose head arrived; the client connection closes afterwards.
void Relay(Attempt& a, std::string_view method, const GatewayOptions& opts, UniqueFd& client,
           int waker) {
  std::string out;
  std::optional<uint64_t> body_left;  // nullopt: until the upstream closes
  if (a.http09) {
    out = std::move(a.data);
  } else {
    const Head head = ParseHead(std::string_view(a.data).substr(0, a.head_end));
    const int status = std::stoi(head.first_line.substr(9, 3));
    body_left = ContentLength(head);
    if (method == "HEAD" || status / 100 == 1 || status == 204 || status == 304) body_left = 0;
    out = ClientHead(head);
    std::string_view body = std::string_view(a.data).substr(a.head_end);
    if (body_left && body.size() > *body_left) body = body.substr(0, *body_left);
    if (body_left) *body_left -= body.size();
    out.append(body);
  }
  uint64_t relayed = out.size();
  if (!SendAll(client.get(), out, waker, Clock::now() + kClientTimeout)) {
    client.Reset();
    return;
  }
  while (relayed < kMaxRelayBody && (!body_left || *body_left > 0)) {
    out.clear();
    const size_t want =
        static_cast<size_t>(std::min<uint64_t>(body_left.value_or(kMaxRelayBody), 64 * 1024));
    const Read r = ReadSome(a.fd.get(), &out, want, waker, Clock::now() + opts.read_timeout);
    if (r == Read::kEof) break;
    if (r != Read::kData) {  // timeout or reset mid-body: nginx closes the client, too
      client.Reset();
      return;
    }
    if (body_left) *body_left -= out.size();
    relayed += out.size();
    if (!SendAll(client.get(), out, waker, Clock::now() + kClientTimeout)) {
      client.Reset();
      return;
    }
  }
  LingeringClose(client, waker);
}

bool Idempotent(std::string_view method) {
  return method != "POST" && method != "PATCH" && method != "LOCK";
}

}  // namespace

struct Gateway::Worker {
  std::thread thread;
  std::atomic<bool> done{false};
};

Gateway::Gateway(GatewayOptions options)
    : listener_(BindLoopback(IpFamily::kV4, SOCK_STREAM, SOMAXCONN, /*non_blocking=*/true)),
      port_(LocalPort(listener_.get())),
      options_(std::move(options)),
      thread_([this] { Run(); }) {}

Gateway::~Gateway() {
  stop_ = true;
  waker_.Notify();
  thread_.join();  // the acceptor joins the workers
}

std::string Gateway::Url(std::string_view path) const {
  std::string url = "http://127.0.0.1:" + std::to_string(port_);
  if (path.empty() || path.front() != '/') url += '/';
  url.append(path);
  return url;
}

void Gateway::SetUpstreams(std::vector<int> ports) {
  std::lock_guard lock(mu_);
  options_.upstreams = std::move(ports);
}

void Gateway::SetMisroute(std::optional<int> port) {
  std::lock_guard lock(mu_);
  options_.misroute_port = port;
}

void Gateway::SetNextUpstream(bool enabled) {
  std::lock_guard lock(mu_);
  options_.next_upstream = enabled;
}

void Gateway::SetReadTimeout(std::chrono::milliseconds timeout) {
  std::lock_guard lock(mu_);
  options_.read_timeout = timeout;
}

GatewayOptions Gateway::options() const {
  std::lock_guard lock(mu_);
  return options_;
}

void Gateway::Run() {
  std::list<Worker> workers;  // a list: a worker's address stays valid for its thread
  while (!stop_.load()) {
    pollfd fds[2] = {{waker_.fd(), POLLIN, 0}, {listener_.get(), POLLIN, 0}};
    const int ready = ::poll(fds, 2, 1000);
    if (ready < 0 && errno != EINTR) Die("poll() in Gateway");
    if (fds[0].revents != 0) break;
    for (auto it = workers.begin(); it != workers.end();) {
      if (it->done.load()) {
        it->thread.join();
        it = workers.erase(it);
      } else {
        ++it;
      }
    }
    if ((fds[1].revents & POLLIN) == 0) continue;
    for (size_t i = 0; i < kMaxAcceptsPerWake; ++i) {
      UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (!fd.valid()) break;
      if (active_.load() >= kMaxConnections) {
        RejectOverload(std::move(fd));
        continue;
      }
      Worker& w = workers.emplace_back();
      ++active_;
      w.thread = std::thread([this, &w, client = std::move(fd)]() mutable {
        Serve(std::move(client));
        --active_;
        w.done = true;
      });
    }
  }
  for (Worker& w : workers) w.thread.join();
}

void Gateway::RejectOverload(UniqueFd client) {
  ++status503_;
  // Read the request first when it comes soon: closing with unread bytes would send an RST
  // that can overtake the page.
  std::string in;
  const auto deadline = Clock::now() + kOverloadWait;
  while (FindHeadEnd(in) == std::string::npos && in.size() < kMaxRequestHead) {
    if (ReadSome(client.get(), &in, kMaxRequestHead - in.size(), waker_.fd(), deadline) !=
        Read::kData) {
      break;
    }
  }
  const std::string page = pages::Nginx(503);
  [[maybe_unused]] const ssize_t n =
      ::send(client.get(), page.data(), page.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  ::shutdown(client.get(), SHUT_WR);
}

void Gateway::Serve(UniqueFd client) {
  const int waker = waker_.fd();
  // The request head, then a body by Content-Length.
  std::string in;
  const auto deadline = Clock::now() + kClientTimeout;
  size_t head_end = std::string::npos;
  while ((head_end = FindHeadEnd(in)) == std::string::npos) {
    if (in.size() > kMaxRequestHead) return;
    if (ReadSome(client.get(), &in, kMaxRequestHead + 1 - in.size(), waker, deadline) !=
        Read::kData) {
      return;
    }
  }
  ++requests_;
  const Head head = ParseHead(std::string_view(in).substr(0, head_end));
  const std::string& line = head.first_line;
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string::npos) return;  // not HTTP/1.x: close, as nginx does for HTTP/0.9
  const std::string method = line.substr(0, sp1);
  const std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const uint64_t body_length = ContentLength(head).value_or(0);
  if (body_length > kMaxRequestBody) {
    SendAll(client.get(), NginxClientError(413), waker, Clock::now() + kClientTimeout);
    LingeringClose(client, waker);
    return;
  }
  while (in.size() - head_end < body_length) {
    if (ReadSome(client.get(), &in, head_end + body_length - in.size(), waker, deadline) !=
        Read::kData) {
      return;
    }
  }

  // As nginx's proxy module sends it: HTTP/1.0, its Host and Connection, then the rest.
  std::string request =
      method + " " + target + " HTTP/1.0\r\nHost: " + kUpstreamHost + "\r\nConnection: close\r\n";
  for (const auto& [name, value] : head.headers) {
    const std::string lower = AsciiLower(name);
    if (lower == "host" || lower == "connection" || lower == "keep-alive") continue;
    request += name + ": " + value + "\r\n";
  }
  request += "\r\n";
  request.append(in, head_end, body_length);

  const GatewayOptions opts = options();
  std::vector<int> servers;
  size_t tries = 1;
  if (opts.misroute_port) {
    servers = {*opts.misroute_port};
  } else if (!opts.upstreams.empty()) {
    const size_t n = opts.upstreams.size();
    const size_t start = next_server_.fetch_add(1) % n;
    for (size_t i = 0; i < n; ++i) servers.push_back(opts.upstreams[(start + i) % n]);
    tries = opts.next_upstream ? n : 1;
  }

  Attempt::Kind last = Attempt::Kind::kError;  // an empty pool: "no live upstreams", 502
  for (size_t i = 0; i < tries && i < servers.size(); ++i) {
    ++attempts_;
    Attempt a = TryUpstream(servers[i], request, opts, waker);
    if (a.kind == Attempt::Kind::kStopped) return;
    if (a.kind == Attempt::Kind::kResponse) {
      Relay(a, method, opts, client, waker);
      return;
    }
    last = a.kind;
    if (last == Attempt::Kind::kInvalid) break;
    if (a.sent && !Idempotent(method)) break;  // never replay a POST that went out
  }
  const int status = last == Attempt::Kind::kTimeout ? 504 : 502;
  ++(status == 504 ? status504_ : status502_);
  SendAll(client.get(), pages::Nginx(status), waker, Clock::now() + kClientTimeout);
  LingeringClose(client, waker);
}

}  // namespace gatewatch::fleet
