#include "fleet/tcp_faults.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

namespace gatewatch::fleet {
namespace {

constexpr int kMaxFillers = 16;

enum class ConnectState { kConnected, kInProgress, kFailed };

// Starts a non-blocking connect to loopback:port and waits up to wait_ms for it.
ConnectState TryConnect(int port, int wait_ms, UniqueFd* out) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) Die("socket()");
  socklen_t len = 0;
  const sockaddr_storage addr = LoopbackAddress(IpFamily::kV4, port, &len);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), len) != 0 &&
      errno != EINPROGRESS) {
    return ConnectState::kFailed;
  }
  pollfd p{fd.get(), POLLOUT, 0};
  const int ready = ::poll(&p, 1, wait_ms);
  ConnectState state = ConnectState::kInProgress;
  if (ready > 0) {
    int err = 0;
    socklen_t err_len = sizeof(err);
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &err_len);
    state = err == 0 ? ConnectState::kConnected : ConnectState::kFailed;
  }
  *out = std::move(fd);
  return state;
}

}  // namespace

int RefusedPort(IpFamily family) {
  UniqueFd fd = BindLoopback(family, SOCK_STREAM, /*backlog=*/-1, /*non_blocking=*/false);
  return LocalPort(fd.get());
}

BlackholeServer::BlackholeServer(int verify_ms)
    : listener_(BindLoopback(IpFamily::kV4, SOCK_STREAM, /*backlog=*/0, /*non_blocking=*/true)),
      port_(LocalPort(listener_.get())) {
  // With backlog 0 the first connection completes into the queue and fills it; later
  // SYNs are dropped. A probe that is still in progress after one established filler
  // proves it. Probes are kept open too: should a slow one complete after all, it only
  // fills the queue further (and a dropped one merely retransmits its SYN to us).
  bool verified = false;
  int established = 0;
  for (int i = 0; i < kMaxFillers && !verified; ++i) {
    UniqueFd fd;
    const ConnectState state = TryConnect(port_, verify_ms, &fd);
    if (state == ConnectState::kFailed) break;
    if (state == ConnectState::kConnected) ++established;
    verified = state == ConnectState::kInProgress && established > 0;
    fillers_.push_back(std::move(fd));
  }
  if (!verified) Die("BlackholeServer: the accept queue never filled; SYNs are not dropped");
}

std::string BlackholeServer::Url(std::string_view path) const {
  std::string url = "http://127.0.0.1:" + std::to_string(port_);
  if (path.empty() || path.front() != '/') url += '/';
  url.append(path);
  return url;
}

}  // namespace gatewatch::fleet
