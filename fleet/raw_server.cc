#include "fleet/raw_server.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <optional>
#include <vector>

#include "fleet/http_text.h"

namespace gatewatch::fleet {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxHeadBytes = 64 * 1024;
constexpr size_t kMaxConnections = 512;
constexpr size_t kMaxAcceptsPerWake = 64;
constexpr size_t kMaxWritePerWake = 1024 * 1024;
constexpr size_t kBodyChunk = 16 * 1024;
constexpr size_t kMaxTrackedPaths = 10000;
constexpr auto kHeadTimeout = std::chrono::seconds(30);
constexpr auto kDrainTimeout = std::chrono::seconds(2);
constexpr auto kRefuseApplyWait = std::chrono::seconds(2);
constexpr auto kRebindRetry = std::chrono::milliseconds(100);

// A non-blocking listener on loopback:port with SO_REUSEADDR, which accepted sockets and
// their TIME_WAIT remains inherit: SetRefusing(false) can then bind the same port again
// while earlier connections linger in TIME_WAIT. Invalid if bind() fails.
UniqueFd ListenReusable(IpFamily family, int port) {
  UniqueFd fd(::socket(family == IpFamily::kV4 ? AF_INET : AF_INET6,
                       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) Die("socket()");
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  socklen_t len = 0;
  const sockaddr_storage addr = LoopbackAddress(family, port, &len);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), len) != 0) return UniqueFd();
  if (::listen(fd.get(), SOMAXCONN) != 0) Die("listen()");
  return fd;
}

UniqueFd ListenOrDie(IpFamily family, int port) {
  UniqueFd fd = ListenReusable(family, port);
  if (!fd.valid()) Die("bind() to loopback port " + std::to_string(port));
  return fd;
}

std::string OkResponse() {
  return BuildResponse("200 OK",
                       {{"Content-Type", "text/plain"},
                        {"Content-Length", std::string(kBodyLength)},
                        {"Connection", "close"}},
                       "ok");
}

// The path of a request target without query: "/a?b" -> "/a", "http://h:1/a" -> "/a".
std::string TargetPath(std::string_view target) {
  if (const size_t scheme = target.find("://"); scheme != std::string_view::npos) {
    const size_t slash = target.find('/', scheme + 3);
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  if (const size_t q = target.find_first_of("?#"); q != std::string_view::npos) {
    target = target.substr(0, q);
  }
  return std::string(target);
}

std::string NextRedirect(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string_view last = std::string_view(path).substr(slash + 1);
  const bool numeric =
      !last.empty() && last.size() < 9 &&
      std::all_of(last.begin(), last.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (numeric) return path.substr(0, slash + 1) + std::to_string(std::stoi(std::string(last)) + 1);
  if (!path.empty() && path.back() == '/') return path + "1";
  return path + "/1";
}

}  // namespace

// ---- Behavior ----

Behavior Behavior::Ok() { return Raw(OkResponse()); }

Behavior Behavior::Raw(std::string raw) {
  Behavior b;
  b.kind = Kind::kRespond;
  b.bytes = std::move(raw);
  return b;
}

Behavior Behavior::Status(int code) {
  const std::string title = std::to_string(code) + " " + std::string(ReasonPhrase(code));
  const std::string body = "<html><head><title>" + title + "</title></head><body><h1>" + title +
                           "</h1><p>canned by gatewatch fleet</p></body></html>\n";
  return Raw(BuildResponse(title,
                           {{"Content-Type", "text/html"},
                            {"Content-Length", std::string(kBodyLength)},
                            {"Connection", "close"}},
                           body));
}

Behavior Behavior::SlowHeaders(std::chrono::milliseconds delay) { return Ok().After(delay); }

Behavior Behavior::SlowBody(std::chrono::milliseconds interval, size_t total_bytes) {
  Behavior b = Raw(BuildResponse("200 OK",
                                 {{"Content-Type", "text/plain"},
                                  {"Content-Length", std::to_string(total_bytes)},
                                  {"Connection", "close"}},
                                 ""));
  b.drip_bytes = total_bytes;
  b.drip_interval = std::max(interval, std::chrono::milliseconds(1));
  return b;
}

Behavior Behavior::Garbage(std::string bytes) { return Raw(std::move(bytes)); }

Behavior Behavior::ResetOnAccept(std::chrono::milliseconds after) {
  Behavior b;
  b.kind = Kind::kResetOnAccept;
  b.delay = after;
  return b;
}

Behavior Behavior::ResetAfterRequest() {
  Behavior b;
  b.kind = Kind::kResetAfterRequest;
  return b;
}

Behavior Behavior::EmptyReply() {
  Behavior b;
  b.kind = Kind::kEmptyReply;
  return b;
}

Behavior Behavior::OversizedHeaders(size_t header_bytes, bool single_line) {
  std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n";
  if (single_line) {
    head += "X-Filler: ";
    head.append(header_bytes, 'a');
    head += "\r\n";
  } else {
    const std::string filler(100, 'a');
    char name[32];
    for (int i = 0; head.size() < header_bytes; ++i) {
      std::snprintf(name, sizeof(name), "X-Filler-%05d: ", i);
      head.append(name).append(filler).append("\r\n");
    }
  }
  head += "Content-Length: 2\r\nConnection: close\r\n\r\nok";
  return Raw(std::move(head));
}

Behavior Behavior::OversizedBody(uint64_t body_bytes, bool chunked) {
  Behavior b;
  b.kind = Kind::kOversizedBody;
  b.body_bytes = body_bytes;
  b.chunked = chunked;
  return b;
}

Behavior Behavior::RedirectLoop(bool to_self) {
  Behavior b;
  b.kind = Kind::kRedirectLoop;
  b.redirect_to_self = to_self;
  return b;
}

Behavior Behavior::After(std::chrono::milliseconds d) const {
  Behavior b = *this;
  b.delay = d;
  return b;
}

// ---- RawHttpServer ----

struct RawHttpServer::Conn {
  enum class Phase { kReadHead, kDelay, kWrite, kDrip, kDrain };
  UniqueFd fd;
  Phase phase = Phase::kReadHead;
  Clock::time_point deadline;  // head timeout, end of delay, next drip or end of drain
  std::string in;
  Behavior behavior;
  std::string out;
  size_t out_pos = 0;
  uint64_t body_left = 0;  // kOversizedBody bytes not yet generated
  size_t drip_left = 0;
};

RawHttpServer::RawHttpServer(Behavior default_behavior, IpFamily family, int port)
    : family_(family),
      listener_(ListenOrDie(family, port)),
      port_(LocalPort(listener_.get())),
      kick_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      default_(std::move(default_behavior)),
      thread_([this] { Run(); }) {}

bool RawHttpServer::SetRefusing(bool refusing) {
  if (!kick_.valid()) Die("eventfd() in RawHttpServer");
  std::unique_lock lock(refuse_mu_);
  want_refusing_ = refusing;
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(kick_.get(), &one, sizeof(one));
  return refuse_cv_.wait_for(lock, kRefuseApplyWait, [&] { return refusing_ == refusing; });
}

bool RawHttpServer::Refusing() const {
  std::lock_guard lock(refuse_mu_);
  return refusing_;
}

void RawHttpServer::ApplyRefusing() {
  bool want = false;
  {
    std::lock_guard lock(refuse_mu_);
    if (want_refusing_ == refusing_) return;
    want = want_refusing_;
  }
  if (want) {
    listener_.Reset();  // the kernel resets connections still in the accept queue
  } else {
    UniqueFd fd = ListenReusable(family_, port_);
    if (!fd.valid()) return;  // port taken meanwhile: retried on the next pass
    listener_ = std::move(fd);
  }
  {
    std::lock_guard lock(refuse_mu_);
    refusing_ = want;
  }
  refuse_cv_.notify_all();
}

RawHttpServer::~RawHttpServer() {
  stop_ = true;
  waker_.Notify();
  thread_.join();
}

std::string RawHttpServer::Url(std::string_view path) const {
  std::string url = "http://" + HostPort();
  if (path.empty() || path.front() != '/') url += '/';
  url.append(path);
  return url;
}

std::string RawHttpServer::HostPort() const { return LoopbackHostPort(family_, port_); }

RawHttpServer& RawHttpServer::Route(std::string prefix, Behavior behavior) {
  std::lock_guard lock(mu_);
  routes_[std::move(prefix)] = std::move(behavior);
  return *this;
}

RawHttpServer& RawHttpServer::SetDefault(Behavior behavior) {
  std::lock_guard lock(mu_);
  default_ = std::move(behavior);
  return *this;
}

int RawHttpServer::RequestCount(std::string_view prefix) const {
  std::lock_guard lock(mu_);
  int n = 0;
  for (const auto& [path, count] : paths_) {
    if (std::string_view(path).substr(0, prefix.size()) == prefix) n += count;
  }
  return n;
}

std::string RawHttpServer::LastRequestHead() const {
  std::lock_guard lock(mu_);
  return last_head_;
}

Behavior RawHttpServer::Pick(std::string_view path) const {
  std::lock_guard lock(mu_);
  const Behavior* best = &default_;
  size_t best_len = 0;
  for (const auto& [prefix, behavior] : routes_) {
    if (prefix.size() >= best_len && path.substr(0, prefix.size()) == prefix) {
      best = &behavior;
      best_len = prefix.size();
    }
  }
  return *best;
}

void RawHttpServer::Run() {
  std::vector<std::unique_ptr<Conn>> conns;
  std::vector<pollfd> fds;
  char buf[16 * 1024];

  // Half-close and drain: the client reads everything before it sees our FIN.
  const auto finish = [](Conn& c) {
    ::shutdown(c.fd.get(), SHUT_WR);
    c.phase = Conn::Phase::kDrain;
    c.deadline = Clock::now() + kDrainTimeout;
  };
  const auto begin_output = [&](Conn& c) {
    using Kind = Behavior::Kind;
    if (c.behavior.kind == Kind::kResetOnAccept || c.behavior.kind == Kind::kResetAfterRequest) {
      ResetAndClose(c.fd);
    } else if (c.behavior.kind == Kind::kEmptyReply) {
      finish(c);
    } else {
      c.phase = Conn::Phase::kWrite;
    }
  };
  const auto start_response = [&](Conn& c, const std::string& path) {
    using Kind = Behavior::Kind;
    const Behavior& b = c.behavior;
    if (b.kind == Kind::kRespond) {
      c.out = b.bytes;
      c.drip_left = b.drip_bytes;
    } else if (b.kind == Kind::kOversizedBody) {
      std::vector<std::pair<std::string, std::string>> headers = {{"Content-Type", "text/plain"}};
      if (b.chunked) {
        headers.emplace_back("Transfer-Encoding", "chunked");
      } else {
        headers.emplace_back("Content-Length", std::to_string(b.body_bytes));
      }
      headers.emplace_back("Connection", "close");
      c.out = BuildResponse("200 OK", headers, "");
      c.body_left = b.body_bytes;
    } else if (b.kind == Kind::kRedirectLoop) {
      c.out = BuildResponse("302 Found",
                            {{"Location", b.redirect_to_self ? path : NextRedirect(path)},
                             {"Content-Length", "0"},
                             {"Connection", "close"}},
                            "");
    }
    if (b.delay.count() > 0) {
      c.phase = Conn::Phase::kDelay;
      c.deadline = Clock::now() + b.delay;
    } else {
      begin_output(c);
    }
  };
  const auto on_head = [&](Conn& c) {
    const size_t end = FindHeadEnd(c.in);
    if (end == std::string::npos) {
      if (c.in.size() > kMaxHeadBytes) {
        c.behavior = Behavior::Status(431);
        start_response(c, "/");
      }
      return;
    }
    const std::string_view head = std::string_view(c.in).substr(0, end);
    const size_t sp1 = head.find(' ');
    const size_t sp2 = sp1 == std::string_view::npos ? sp1 : head.find(' ', sp1 + 1);
    const std::string path = sp2 == std::string_view::npos
                                 ? std::string("/")
                                 : TargetPath(head.substr(sp1 + 1, sp2 - sp1 - 1));
    ++requests_;
    {
      std::lock_guard lock(mu_);
      last_head_ = std::string(head);
      if (paths_.size() < kMaxTrackedPaths || paths_.count(path) > 0) ++paths_[path];
    }
    c.behavior = Pick(path);
    start_response(c, path);
  };
  // Writes what is due; returns when the socket is full or the response is done.
  const auto write_some = [&](Conn& c) {
    size_t written = 0;
    while (c.fd.valid() && c.phase == Conn::Phase::kWrite && written < kMaxWritePerWake) {
      if (c.out_pos == c.out.size() && c.body_left > 0) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(kBodyChunk, c.body_left));
        c.body_left -= n;
        c.out.clear();
        c.out_pos = 0;
        if (c.behavior.chunked) {
          char size_line[32];
          std::snprintf(size_line, sizeof(size_line), "%zx\r\n", n);
          c.out += size_line;
        }
        c.out.append(n, 'x');
        if (c.behavior.chunked) c.out += c.body_left == 0 ? "\r\n0\r\n\r\n" : "\r\n";
      }
      if (c.out_pos == c.out.size()) {
        if (c.drip_left > 0) {
          c.phase = Conn::Phase::kDrip;
          c.deadline = Clock::now() + c.behavior.drip_interval;
        } else {
          finish(c);
        }
        return;
      }
      const ssize_t n = ::send(c.fd.get(), c.out.data() + c.out_pos, c.out.size() - c.out_pos,
                               MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) c.fd.Reset();
        return;
      }
      c.out_pos += static_cast<size_t>(n);
      written += static_cast<size_t>(n);
    }
  };

  while (!stop_.load()) {
    fds.clear();
    fds.push_back({waker_.fd(), POLLIN, 0});
    fds.push_back(
        {listener_.get(), static_cast<short>(conns.size() < kMaxConnections ? POLLIN : 0), 0});
    fds.push_back({kick_.get(), POLLIN, 0});
    Clock::time_point next = Clock::now() + std::chrono::seconds(1);
    {
      std::lock_guard lock(refuse_mu_);
      if (want_refusing_ != refusing_) next = Clock::now() + kRebindRetry;
    }
    for (const auto& c : conns) {
      short events = POLLIN;
      if (c->phase == Conn::Phase::kWrite) events |= POLLOUT;
      fds.push_back({c->fd.get(), events, 0});
      if (c->phase != Conn::Phase::kWrite) next = std::min(next, c->deadline);
    }
    const int ready = ::poll(fds.data(), fds.size(), PollTimeoutMs(next));
    if (ready < 0 && errno != EINTR) Die("poll() in RawHttpServer");
    if (fds[0].revents != 0) break;
    if (fds[2].revents != 0) {
      uint64_t count = 0;
      [[maybe_unused]] const ssize_t n = ::read(kick_.get(), &count, sizeof(count));
    }
    ApplyRefusing();  // also retries a re-bind that failed

    const auto now = Clock::now();
    for (size_t i = 0; i < conns.size(); ++i) {
      Conn& c = *conns[i];
      const short rev = fds[i + 3].revents;
      if (rev & POLLIN) {
        const ssize_t n = ::recv(c.fd.get(), buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
          c.fd.Reset();  // the client went away (or finished, when draining)
          continue;
        }
        if (n > 0 && c.phase == Conn::Phase::kReadHead) {
          c.in.append(buf, static_cast<size_t>(n));
          on_head(c);
        }
      } else if (rev & (POLLERR | POLLHUP | POLLNVAL)) {
        c.fd.Reset();
        continue;
      }
      if (!c.fd.valid()) continue;
      if (c.phase == Conn::Phase::kWrite) write_some(c);
      if (!c.fd.valid() || c.phase == Conn::Phase::kWrite || now < c.deadline) continue;
      switch (c.phase) {
        case Conn::Phase::kReadHead:
        case Conn::Phase::kDrain:
          c.fd.Reset();
          break;
        case Conn::Phase::kDelay:
          begin_output(c);
          if (c.fd.valid() && c.phase == Conn::Phase::kWrite) write_some(c);
          break;
        case Conn::Phase::kDrip: {
          const char byte = 'x';
          const ssize_t n = ::send(c.fd.get(), &byte, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
          if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            c.fd.Reset();
            break;
          }
          if (n == 1 && --c.drip_left == 0) {
            finish(c);
          } else {
            c.deadline = now + c.behavior.drip_interval;
          }
          break;
        }
        case Conn::Phase::kWrite:
          break;
      }
    }
    std::erase_if(conns, [](const std::unique_ptr<Conn>& c) { return !c->fd.valid(); });

    if ((fds[1].revents & POLLIN) && listener_.valid()) {
      for (size_t i = 0; i < kMaxAcceptsPerWake && conns.size() < kMaxConnections; ++i) {
        UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!fd.valid()) break;
        ++accepts_;
        std::optional<Behavior> on_accept;
        {
          std::lock_guard lock(mu_);
          if (default_.kind == Behavior::Kind::kResetOnAccept) on_accept = default_;
        }
        if (on_accept && on_accept->delay.count() == 0) {
          ResetAndClose(fd);
          continue;
        }
        auto c = std::make_unique<Conn>();
        c->fd = std::move(fd);
        c->deadline = Clock::now() + kHeadTimeout;
        if (on_accept) {  // wait, discarding any request, then RST
          c->behavior = std::move(*on_accept);
          c->phase = Conn::Phase::kDelay;
          c->deadline = Clock::now() + c->behavior.delay;
        }
        conns.push_back(std::move(c));
      }
    }
  }
  // Leaving scope closes every client socket.
}

}  // namespace gatewatch::fleet
