#include "fleet/connect_proxy.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>

#include "fleet/http_text.h"

namespace gatewatch::fleet {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxHeadBytes = 16 * 1024;
constexpr size_t kMaxTargets = 1000;
constexpr auto kHeadTimeout = std::chrono::seconds(10);
constexpr auto kConnectTimeout = std::chrono::seconds(5);

std::string SimpleResponse(int code) {
  return BuildResponse(std::to_string(code) + " " + std::string(ReasonPhrase(code)),
                       {{"Content-Length", "0"}, {"Connection", "close"}}, "");
}

bool SendAll(int fd, std::string_view data, int wake_fd) {
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return false;
    pollfd p[2] = {{fd, POLLOUT, 0}, {wake_fd, POLLIN, 0}};
    if (::poll(p, 2, PollTimeoutMs(deadline)) <= 0 || p[1].revents != 0) return false;
  }
  return true;
}

// Parses "host:port" / "[v6]:port" of a CONNECT target; only loopback hosts resolve.
bool LoopbackTarget(std::string_view target, IpFamily* family, int* port) {
  const size_t colon = target.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string_view host = target.substr(0, colon);
  const std::string_view port_text = target.substr(colon + 1);
  const auto [end, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), *port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || *port <= 0 ||
      *port > 65535) {
    return false;
  }
  if (host == "127.0.0.1" || host == "localhost") {
    *family = IpFamily::kV4;
    return true;
  }
  if (host == "[::1]") {
    *family = IpFamily::kV6;
    return true;
  }
  return false;
}

// Non-blocking connect to loopback with a deadline; an invalid fd on failure.
UniqueFd ConnectLoopback(IpFamily family, int port, int wake_fd) {
  UniqueFd fd(::socket(family == IpFamily::kV4 ? AF_INET : AF_INET6,
                       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return fd;
  socklen_t len = 0;
  const sockaddr_storage addr = LoopbackAddress(family, port, &len);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), len) == 0) return fd;
  if (errno != EINPROGRESS) return UniqueFd();
  pollfd p[2] = {{fd.get(), POLLOUT, 0}, {wake_fd, POLLIN, 0}};
  if (::poll(p, 2, PollTimeoutMs(Clock::now() + kConnectTimeout, kConnectTimeout)) <= 0 ||
      p[1].revents != 0) {
    return UniqueFd();
  }
  int err = 0;
  socklen_t err_len = sizeof(err);
  ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &err_len);
  return err == 0 ? std::move(fd) : UniqueFd();
}

}  // namespace

ConnectProxy::ConnectProxy(Mode mode)
    : listener_(BindLoopback(IpFamily::kV4, SOCK_STREAM, 128, /*non_blocking=*/true)),
      port_(LocalPort(listener_.get())),
      mode_(mode),
      accept_thread_([this] { AcceptLoop(); }) {}

ConnectProxy::~ConnectProxy() {
  waker_.Notify();
  accept_thread_.join();
}

std::string ConnectProxy::Url() const { return "http://127.0.0.1:" + std::to_string(port_); }

std::vector<std::string> ConnectProxy::Targets() const {
  std::lock_guard lock(mu_);
  return targets_;
}

void ConnectProxy::AcceptLoop() {
  while (true) {
    pollfd p[2] = {{waker_.fd(), POLLIN, 0}, {listener_.get(), POLLIN, 0}};
    if (::poll(p, 2, 1000) < 0 && errno != EINTR) Die("poll() in ConnectProxy");
    if (p[0].revents != 0) break;
    // Reap finished workers so the count stays bounded.
    std::erase_if(workers_, [](Worker& w) {
      if (!w.done->load()) return false;
      w.thread.join();
      return true;
    });
    if ((p[1].revents & POLLIN) == 0) continue;
    UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!client.valid()) continue;
    if (workers_.size() >= static_cast<size_t>(kMaxClients)) {
      SendAll(client.get(), SimpleResponse(503), waker_.fd());
      continue;
    }
    auto done = std::make_shared<std::atomic<bool>>(false);
    std::thread t([this, done, fd = std::move(client)]() mutable {
      Serve(std::move(fd));
      done->store(true);
    });
    workers_.push_back({std::move(t), std::move(done)});
  }
  // Every worker polls the waker too, so they all return promptly.
  for (Worker& w : workers_) w.thread.join();
  workers_.clear();
}

void ConnectProxy::Serve(UniqueFd client) {
  std::string in;
  size_t head_end = std::string::npos;
  const auto deadline = Clock::now() + kHeadTimeout;
  char buf[16 * 1024];
  while (head_end == std::string::npos) {
    if (in.size() > kMaxHeadBytes) {
      SendAll(client.get(), SimpleResponse(431), waker_.fd());
      return;
    }
    pollfd p[2] = {{client.get(), POLLIN, 0}, {waker_.fd(), POLLIN, 0}};
    if (::poll(p, 2, PollTimeoutMs(deadline)) <= 0 || p[1].revents != 0) return;
    const ssize_t n = ::recv(client.get(), buf, sizeof(buf), MSG_DONTWAIT);
    if (n == 0) return;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return;
    }
    in.append(buf, static_cast<size_t>(n));
    head_end = FindHeadEnd(in);
  }
  const std::string_view head = std::string_view(in).substr(0, head_end);
  const size_t sp1 = head.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : head.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || head.substr(0, sp1) != "CONNECT") {
    ++others_;
    SendAll(client.get(), SimpleResponse(400), waker_.fd());
    return;
  }
  ++connects_;
  const std::string target(head.substr(sp1 + 1, sp2 - sp1 - 1));
  {
    std::lock_guard lock(mu_);
    if (targets_.size() < kMaxTargets) targets_.push_back(target);
  }
  const Mode mode = mode_.load();
  if (mode == Mode::kRefuse) {
    SendAll(client.get(), SimpleResponse(403), waker_.fd());
    return;
  }
  if (mode == Mode::kBadGateway) {
    SendAll(client.get(), SimpleResponse(502), waker_.fd());
    return;
  }
  IpFamily family = IpFamily::kV4;
  int port = 0;
  if (!LoopbackTarget(target, &family, &port)) {
    SendAll(client.get(), SimpleResponse(403), waker_.fd());  // loopback targets only
    return;
  }
  UniqueFd upstream = ConnectLoopback(family, port, waker_.fd());
  if (!upstream.valid()) {
    SendAll(client.get(), SimpleResponse(502), waker_.fd());
    return;
  }
  if (!SendAll(client.get(), "HTTP/1.1 200 Connection established\r\n\r\n", waker_.fd())) return;
  ++tunnels_;
  Tunnel(client.get(), upstream.get(), in.substr(head_end));
}

void ConnectProxy::Tunnel(int client, int target, std::string pending) {
  if (!pending.empty() && !SendAll(target, pending, waker_.fd())) return;
  // Copies both ways until both directions saw EOF (half-closes are forwarded), an error,
  // or shutdown. Blocking sends are bounded by SendAll's deadline.
  bool client_open = true;
  bool target_open = true;
  char buf[16 * 1024];
  while (client_open || target_open) {
    pollfd p[3] = {{client, static_cast<short>(client_open ? POLLIN : 0), 0},
                   {target, static_cast<short>(target_open ? POLLIN : 0), 0},
                   {waker_.fd(), POLLIN, 0}};
    if (::poll(p, 3, 1000) < 0 && errno != EINTR) return;
    if (p[2].revents != 0) return;
    for (int side = 0; side < 2; ++side) {
      if (p[side].revents == 0) continue;
      const int from = side == 0 ? client : target;
      const int to = side == 0 ? target : client;
      bool& open = side == 0 ? client_open : target_open;
      const ssize_t n = ::recv(from, buf, sizeof(buf), MSG_DONTWAIT);
      if (n > 0) {
        if (!SendAll(to, std::string_view(buf, static_cast<size_t>(n)), waker_.fd())) return;
      } else if (n == 0) {
        open = false;
        ::shutdown(to, SHUT_WR);
      } else if (errno != EAGAIN && errno != EINTR) {
        SetLingerZero(to);  // pass a reset on as a reset
        return;
      }
    }
  }
}

}  // namespace gatewatch::fleet
