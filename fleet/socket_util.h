#pragma once
// Small POSIX socket helpers shared by the fleet servers (loopback only). Everything
// here is for test fixtures: a failure to bind or listen on loopback is an environment
// invariant, so Die() reports it on stderr and aborts instead of returning an error.

#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <string>
#include <string_view>

namespace gatewatch::fleet {

enum class IpFamily { kV4, kV6 };  // 127.0.0.1 or ::1

// Owns one file descriptor; move-only. Closing is idempotent.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release();
  void Reset(int fd = -1);

 private:
  int fd_ = -1;
};

[[noreturn]] void Die(std::string_view what);  // message + errno on stderr, then abort()

// The loopback address of `family` with `port` (host order).
sockaddr_storage LoopbackAddress(IpFamily family, int port, socklen_t* len);
// "127.0.0.1" or "::1".
std::string_view LoopbackHost(IpFamily family);
// "127.0.0.1:PORT" or "[::1]:PORT".
std::string LoopbackHostPort(IpFamily family, int port);

// A socket bound to loopback port 0 (kernel-chosen), type SOCK_STREAM or SOCK_DGRAM,
// close-on-exec; when `backlog` >= 0 (stream only) it is also listening. Dies on failure.
UniqueFd BindLoopback(IpFamily family, int type, int backlog, bool non_blocking);
int LocalPort(int fd);  // getsockname's port

void SetNonBlocking(int fd);
// SO_LINGER {1, 0}: close() then sends RST instead of FIN.
void SetLingerZero(int fd);
// Closes with RST (SO_LINGER 0).
void ResetAndClose(UniqueFd& fd);

// A level-triggered stop signal for poll loops: once Notify() ran, fd() stays readable
// for ever, so every thread polling it wakes (the counter is never read).
class Waker {
 public:
  Waker();
  void Notify();
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
};

// Milliseconds until `deadline` for poll(), clamped to [0, cap].
int PollTimeoutMs(std::chrono::steady_clock::time_point deadline,
                  std::chrono::milliseconds cap = std::chrono::milliseconds(1000));

// Position just past the end of an HTTP head ("\r\n\r\n", or "\n\n" from sloppy
// clients) in `data`, or std::string::npos.
size_t FindHeadEnd(std::string_view data);

}  // namespace gatewatch::fleet
