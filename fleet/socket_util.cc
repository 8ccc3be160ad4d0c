#include "fleet/socket_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace gatewatch::fleet {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) Reset(other.Release());
  return *this;
}

int UniqueFd::Release() {
  const int fd = fd_;
  fd_ = -1;
  return fd;
}

void UniqueFd::Reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

void Die(std::string_view what) {
  const int err = errno;
  std::fprintf(stderr, "gatewatch fleet: fatal: %.*s (errno %d: %s)\n",
               static_cast<int>(what.size()), what.data(), err, std::strerror(err));
  std::abort();
}

sockaddr_storage LoopbackAddress(IpFamily family, int port, socklen_t* len) {
  sockaddr_storage storage{};
  if (family == IpFamily::kV4) {
    auto* in = reinterpret_cast<sockaddr_in*>(&storage);
    in->sin_family = AF_INET;
    in->sin_port = htons(static_cast<uint16_t>(port));
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *len = sizeof(sockaddr_in);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(port));
    in6->sin6_addr = in6addr_loopback;
    *len = sizeof(sockaddr_in6);
  }
  return storage;
}

std::string_view LoopbackHost(IpFamily family) {
  return family == IpFamily::kV4 ? "127.0.0.1" : "::1";
}

std::string LoopbackHostPort(IpFamily family, int port) {
  if (family == IpFamily::kV4) return "127.0.0.1:" + std::to_string(port);
  return "[::1]:" + std::to_string(port);
}

UniqueFd BindLoopback(IpFamily family, int type, int backlog, bool non_blocking) {
  const int domain = family == IpFamily::kV4 ? AF_INET : AF_INET6;
  int flags = type | SOCK_CLOEXEC;
  if (non_blocking) flags |= SOCK_NONBLOCK;
  UniqueFd fd(::socket(domain, flags, 0));
  if (!fd.valid()) Die("socket()");
  socklen_t len = 0;
  const sockaddr_storage addr = LoopbackAddress(family, 0, &len);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
    Die("bind() to loopback port 0");
  }
  if (backlog >= 0 && ::listen(fd.get(), backlog) != 0) Die("listen()");
  return fd;
}

int LocalPort(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) Die("getsockname()");
  if (addr.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&addr)->sin_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port);
}

void SetNonBlocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL, 0);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) Die("fcntl(O_NONBLOCK)");
}

void SetLingerZero(int fd) {
  const linger lg{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

void ResetAndClose(UniqueFd& fd) {
  if (!fd.valid()) return;
  SetLingerZero(fd.get());
  fd.Reset();
}

Waker::Waker() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (!fd_.valid()) Die("eventfd()");
}

void Waker::Notify() {
  const uint64_t one = 1;
  // A full counter (impossible here) would still leave the fd readable.
  [[maybe_unused]] const ssize_t n = ::write(fd_.get(), &one, sizeof(one));
}

int PollTimeoutMs(std::chrono::steady_clock::time_point deadline, std::chrono::milliseconds cap) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  // Round up so a deadline 0.4 ms away does not spin with timeout 0.
  const auto ms =
      std::clamp(left + std::chrono::milliseconds(1), std::chrono::milliseconds(0), cap);
  return static_cast<int>(ms.count());
}

size_t FindHeadEnd(std::string_view data) {
  const size_t crlf = data.find("\r\n\r\n");
  const size_t lf = data.find("\n\n");
  if (crlf == std::string_view::npos && lf == std::string_view::npos) return std::string::npos;
  if (lf == std::string_view::npos || (crlf != std::string_view::npos && crlf < lf)) {
    return crlf + 4;
  }
  return lf + 2;
}

}  // namespace gatewatch::fleet
