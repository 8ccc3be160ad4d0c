// Name resolution with c-ares on the engine loop: one channel per region with its own
// resolvers or source address (else the system's), timed as the probe's `resolve` phase.

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include "probes/http_prober_impl.h"
#include "probes/log.h"

namespace gatewatch::probes {
namespace {

using std::chrono::duration_cast;
using std::chrono::microseconds;

std::string DnsErrorDetail(int status) {
  switch (status) {
    case ARES_ENOTFOUND:
      return "NXDOMAIN: the name does not exist";
    case ARES_ENODATA:
      return "the name has no A or AAAA records";
    case ARES_ESERVFAIL:
      return "SERVFAIL: the resolver failed";
    case ARES_EREFUSED:
      return "the resolver refused the query";
    case ARES_ETIMEOUT:
      return "the resolver did not answer in time";
    case ARES_ECONNREFUSED:
      return "the resolver refused the connection";
    default:
      return std::string("resolution failed: ") + ares_strerror(status);
  }
}

}  // namespace

// ARES_OPT_SOCK_STATE_CB: c-ares opened, changed or (0, 0) is about to close a socket.
void HttpProber::Impl::AresSocketCallback(void* data, ares_socket_t fd, int readable,
                                          int writable) {
  auto* channel = static_cast<Channel*>(data);
  Impl& impl = *channel->impl;
  if (!readable && !writable) {
    impl.EpollRemove(fd);
    impl.ares_fds.erase(fd);
    return;
  }
  const bool add = impl.ares_fds.emplace(fd, channel).second;
  impl.EpollSet(fd, FdKind::kAres, (readable ? EPOLLIN : 0u) | (writable ? EPOLLOUT : 0u), add);
}

HttpProber::Impl::Channel* HttpProber::Impl::ChannelFor(const RegionConfig& region) {
  const std::string key =
      region.dns_servers.empty() && region.source_address.empty() ? "" : region.name;
  if (auto it = channels.find(key); it != channels.end()) return it->second.get();
  auto owned = std::make_unique<Channel>();
  owned->impl = this;
  ares_options opts{};
  opts.timeout = 2000;  // per try; the probe's own resolve deadline cuts earlier
  opts.tries = 2;
  // Hand SERVFAIL/REFUSED to us instead of trying further: that *is* the finding.
  opts.flags = ARES_FLAG_NOCHECKRESP;
  // Its sockets join the engine's epoll set.
  opts.sock_state_cb = &Impl::AresSocketCallback;
  opts.sock_state_cb_data = owned.get();
  int rc = ares_init_options(
      &owned->channel, &opts,
      ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS | ARES_OPT_SOCK_STATE_CB);
  if (rc != ARES_SUCCESS) {
    log::Error("c-ares init failed").Kv("error", ares_strerror(rc));
    return nullptr;
  }
  ares_channel channel = owned->channel;
  if (!region.dns_servers.empty()) {
    std::string csv;
    for (const std::string& s : region.dns_servers) csv += (csv.empty() ? "" : ",") + s;
    rc = ares_set_servers_ports_csv(channel, csv.c_str());
    if (rc != ARES_SUCCESS) {
      log::Error("c-ares servers rejected")
          .Kv("region", region.name)
          .Kv("error", ares_strerror(rc));
    }
  }
  if (!region.source_address.empty()) {
    in_addr a4{};
    in6_addr a6{};
    if (inet_pton(AF_INET, region.source_address.c_str(), &a4) == 1) {
      ares_set_local_ip4(channel, ntohl(a4.s_addr));
    } else if (inet_pton(AF_INET6, region.source_address.c_str(), &a6) == 1) {
      ares_set_local_ip6(channel, a6.s6_addr);
    }
  }
  Channel* out = owned.get();
  channels[key] = std::move(owned);
  return out;
}

void HttpProber::Impl::Resolve(Attempt& ref) {
  const uint64_t id = ref.id;
  Channel* channel = ChannelFor(*ref.job->region);
  if (channel == nullptr) {
    Abort(id, Outcome::kDnsError, "resolver unavailable");
    return;
  }
  const ProbeSettings& p = ref.job->monitor->probe;
  const Duration resolve_limit = p.resolve_timeout.value_or(p.timeout);
  timers.emplace(ref.started + resolve_limit, [this, id, resolve_limit] {
    auto it = attempts.find(id);
    if (it != attempts.end() && it->second->state == Attempt::State::kResolving) {
      Abort(id, Outcome::kDnsError,
            "the resolver did not answer within " + FormatDuration(resolve_limit));
    }
  });
  ares_addrinfo_hints hints{};  // ai_family 0: A and AAAA
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = ARES_AI_NOSORT;
  struct Ctx {
    Channel* channel;
    uint64_t id;
  };
  ++channel->pending;
  // c-ares calls back exactly once (ARES_EDESTRUCTION on shutdown), possibly right here.
  ares_getaddrinfo(
      channel->channel, ref.url().host.c_str(), nullptr, &hints,
      [](void* arg, int status, int, ares_addrinfo* res) {
        auto* ctx = static_cast<Ctx*>(arg);
        --ctx->channel->pending;
        ctx->channel->impl->OnResolved(ctx->id, status, res);
        delete ctx;
      },
      new Ctx{channel, id});
}

void HttpProber::Impl::OnResolved(uint64_t id, int status, ares_addrinfo* res) {
  auto it = attempts.find(id);
  if (it == attempts.end() || it->second->state != Attempt::State::kResolving) {
    if (res != nullptr) ares_freeaddrinfo(res);
    return;  // timed out or shut down meanwhile
  }
  Attempt& a = *it->second;
  a.resolve = duration_cast<microseconds>(std::chrono::steady_clock::now() - a.started);
  if (status != ARES_SUCCESS) {
    if (res != nullptr) ares_freeaddrinfo(res);
    Abort(id, Outcome::kDnsError, DnsErrorDetail(status));
    return;
  }
  std::string first_v4, first_v6;
  for (const ares_addrinfo_node* n = res != nullptr ? res->nodes : nullptr; n != nullptr;
       n = n->ai_next) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (n->ai_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(n->ai_addr)->sin_addr, buf,
                sizeof buf);
      if (first_v4.empty()) first_v4 = buf;
    } else if (n->ai_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(n->ai_addr)->sin6_addr, buf,
                sizeof buf);
      if (first_v6.empty()) first_v6 = buf;
    } else {
      continue;
    }
    if (std::find(a.resolved.begin(), a.resolved.end(), buf) == a.resolved.end())
      a.resolved.emplace_back(buf);
  }
  if (res != nullptr) ares_freeaddrinfo(res);
  std::sort(a.resolved.begin(), a.resolved.end());
  if (a.resolved.empty()) {
    Abort(id, Outcome::kDnsError, DnsErrorDetail(ARES_ENODATA));
    return;
  }
  // IPv4 first: predictable, and what most monitored sites serve.
  StartTransfer(a, !first_v4.empty() ? first_v4 : first_v6);
}

}  // namespace gatewatch::probes
