#pragma once
// "Network unreachable" without touching the real network: run code in a fresh network
// namespace that has only `lo` (brought up) and no routes, so connect() to any
// non-loopback address fails at once with ENETUNREACH. No packet can leave the
// namespace: it has no interface but lo. Needs CAP_SYS_ADMIN (root; `unshare -n` works
// on the development machine); in an unprivileged container it is refused, and tests
// must then skip visibly:
//
//   if (!fleet::CanCreateNetworkNamespace()) {
//     MESSAGE("SKIPPED: network namespaces are not allowed here");
//     return;
//   }
//   int err = 0;
//   auto r = fleet::RunInIsolatedNetwork([&] { err = ConnectErrno(fleet::kUnroutableIpv4); });
//   REQUIRE(r.has_value());
//   CHECK(err == ENETUNREACH);
//
// Namespaces belong to threads (tasks), so the callback runs on a new thread that
// unshare()s; threads it creates (curl's resolver, a probe engine) inherit the namespace.
// Loopback servers started inside the callback are reachable only from inside it.

#include <functional>
#include <string_view>

#include "probes/result.h"

namespace gatewatch::fleet {

// An address that no route reaches inside RunInIsolatedNetwork. NEVER connect to it
// outside the isolated namespace: there it would leave the machine.
inline constexpr std::string_view kUnroutableIpv4 = "10.255.255.1";

// Whether unshare(CLONE_NEWNET) works here (tried once on a throwaway thread, cached).
bool CanCreateNetworkNamespace();

// Runs `fn` on a new thread inside a fresh network namespace (lo up, no routes) and
// joins it. Returns an error (and does not run fn) when the namespace cannot be made.
// Blocks for as long as fn runs.
Result<void> RunInIsolatedNetwork(const std::function<void()>& fn);

}  // namespace gatewatch::fleet
