#include "fleet/netns.h"

#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

#include "fleet/socket_util.h"

namespace gatewatch::fleet {
namespace {

// Enters a new network namespace on the calling thread and brings lo up. Returns an
// empty string on success, else what failed.
std::string EnterIsolatedNetwork() {
  if (::unshare(CLONE_NEWNET) != 0) {
    return std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno);
  }
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return std::string("socket(): ") + std::strerror(errno);
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (::ioctl(fd.get(), SIOCGIFFLAGS, &ifr) != 0) {
    return std::string("SIOCGIFFLAGS lo: ") + std::strerror(errno);
  }
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  if (::ioctl(fd.get(), SIOCSIFFLAGS, &ifr) != 0) {
    return std::string("SIOCSIFFLAGS lo up: ") + std::strerror(errno);
  }
  return "";
}

}  // namespace

bool CanCreateNetworkNamespace() {
  static const bool can = [] {
    std::string error = "not run";
    std::thread([&] { error = EnterIsolatedNetwork(); }).join();
    return error.empty();
  }();
  return can;
}

Result<void> RunInIsolatedNetwork(const std::function<void()>& fn) {
  std::string error;
  std::thread([&] {
    error = EnterIsolatedNetwork();
    if (error.empty()) fn();
  }).join();
  if (!error.empty()) return Error("isolated network namespace: " + error);
  return {};
}

}  // namespace gatewatch::fleet
