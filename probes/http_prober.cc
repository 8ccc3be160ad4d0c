#include "probes/http_prober.h"

#include <ares.h>
#include <curl/curl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <utility>

#include "probes/http_prober_impl.h"
#include "probes/log.h"

namespace gatewatch::probes {
namespace {

using std::chrono::duration_cast;
using std::chrono::microseconds;
using std::chrono::milliseconds;

// curl and c-ares need one global init per process; both are idempotent behind this.
void GlobalInitOnce() {
  static const bool done = [] {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    ares_library_init(ARES_LIB_INIT_ALL);
    return true;
  }();
  (void)done;
}

// Every probe holds a socket (two through a proxy), plus c-ares and curl internals.
void RaiseFileLimit(int max_in_flight) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  const rlim_t want = static_cast<rlim_t>(max_in_flight) * 3 + 256;
  if (lim.rlim_cur >= want) return;
  lim.rlim_cur = std::min(want, lim.rlim_max);
  setrlimit(RLIMIT_NOFILE, &lim);
}

uint64_t EpollTag(FdKind kind, int fd) {
  return static_cast<uint64_t>(kind) << 32 | static_cast<uint32_t>(fd);
}

constexpr auto kHeartbeat = std::chrono::seconds(1);   // on_tick at least this often
constexpr auto kMaxWait = std::chrono::seconds(1);     // a clock that jumps, a FakeClock
constexpr int kMaxEvents = 256;

// The engine thread's Impl, so Submit() can tell it is called from the loop itself.
thread_local const void* tls_engine = nullptr;

}  // namespace

// CURLMOPT_SOCKETFUNCTION: curl says which of its sockets to watch for what.
int HttpProber::Impl::CurlSocketCallback(CURL*, curl_socket_t fd, int what, void* user,
                                         void* socketp) {
  auto* impl = static_cast<Impl*>(user);
  if (what == CURL_POLL_REMOVE) {  // called before curl closes the socket
    impl->EpollRemove(fd);
    return 0;
  }
  const uint32_t events =
      ((what & CURL_POLL_IN) != 0 ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) != 0 ? EPOLLOUT : 0u);
  // socketp is null until assigned: the first call for a socket adds it to the set.
  impl->EpollSet(fd, FdKind::kCurl, events, socketp == nullptr);
  if (socketp == nullptr) curl_multi_assign(impl->multi, fd, impl);
  return 0;
}

// CURLMOPT_TIMERFUNCTION: when curl wants curl_multi_socket_action(CURL_SOCKET_TIMEOUT).
int HttpProber::Impl::CurlTimerCallback(CURLM*, long timeout_ms, void* user) {
  auto* impl = static_cast<Impl*>(user);
  impl->curl_deadline = timeout_ms < 0
                            ? SteadyTime::max()
                            : std::chrono::steady_clock::now() + milliseconds(timeout_ms);
  return 0;
}

HttpProber::HttpProber(Options options, const Clock& clock)
    : impl_(std::make_unique<Impl>(std::move(options), clock, this)) {
  GlobalInitOnce();
  RaiseFileLimit(impl_->options.max_in_flight);
  Impl& s = *impl_;
  s.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  s.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s.epoll_fd < 0 || s.wake_fd < 0) {  // out of file descriptors at start-up
    log::Error("probe engine: cannot create its epoll set").Kv("error", std::strerror(errno));
    std::abort();
  }
  s.EpollSet(s.wake_fd, FdKind::kWake, EPOLLIN, true);
  s.multi = curl_multi_init();
  curl_multi_setopt(s.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
  curl_multi_setopt(s.multi, CURLMOPT_SOCKETFUNCTION, &Impl::CurlSocketCallback);
  curl_multi_setopt(s.multi, CURLMOPT_SOCKETDATA, &s);
  curl_multi_setopt(s.multi, CURLMOPT_TIMERFUNCTION, &Impl::CurlTimerCallback);
  curl_multi_setopt(s.multi, CURLMOPT_TIMERDATA, &s);
  s.thread = std::thread([this] { impl_->Run(); });
}

HttpProber::~HttpProber() {
  Stop();
  curl_multi_cleanup(impl_->multi);
  close(impl_->wake_fd);
  close(impl_->epoll_fd);
}

void HttpProber::Submit(ProbeJob job) {
  Impl& s = *impl_;
  if (s.stopping.load()) return;
  if (tls_engine == &s) {  // from on_tick or a result callback: the loop sees it next
    s.Enqueue(std::move(job));
    return;
  }
  {
    std::lock_guard lock(s.mu);
    if (s.stopping.load()) return;
    if (s.queued.load() >= s.options.max_queued) {
      s.skipped.fetch_add(1);
      if (job.on_skip) job.on_skip();
      return;
    }
    s.incoming.push_back(std::move(job));
    s.queued.fetch_add(1);
  }
  s.Signal();
}

void HttpProber::Wake() {
  impl_->tick_requested.store(true);
  impl_->Signal();
}

void HttpProber::Stop(Duration grace) {
  {
    std::lock_guard lock(impl_->mu);
    if (!impl_->stopping.load()) {
      impl_->stop_deadline = std::chrono::steady_clock::now() + grace;
      impl_->stopping.store(true);
    }
  }
  impl_->Signal();
  if (impl_->thread.joinable()) impl_->thread.join();
}

HttpProber::Stats HttpProber::GetStats() const {
  return {impl_->in_flight.load(), impl_->queued.load(), impl_->started.load(),
          impl_->skipped.load(), impl_->handles_created.load()};
}

// One eventfd write per batch of submissions: later ones see wake_pending and skip it.
void HttpProber::Impl::Signal() {
  if (wake_pending.exchange(true)) return;
  const uint64_t one = 1;
  if (write(wake_fd, &one, sizeof one) < 0) {
    // EAGAIN: the counter is saturated, so a wakeup is pending anyway.
  }
}

void HttpProber::Impl::Run() {
  tls_engine = this;
  for (;;) {
    FireTimers();
    MaybeTick();
    bool stop_now = false;
    TakeIncoming(&stop_now);
    if (stop_now) break;
    StartWaiting();
    WaitOnce();
  }
  Shutdown();
  tls_engine = nullptr;
}

void HttpProber::Impl::MaybeTick() {
  if (!options.on_tick || stopping.load()) return;
  const SteadyTime now = std::chrono::steady_clock::now();
  const bool due = tick_requested.exchange(false) || now - last_tick >= kHeartbeat ||
                   (next_tick != SystemTime::max() && clock.Now() >= next_tick);
  if (!due) return;
  last_tick = now;
  next_tick = options.on_tick(*self);
}

void HttpProber::Impl::FireTimers() {
  const SteadyTime now = std::chrono::steady_clock::now();
  while (!timers.empty() && timers.begin()->first <= now) {
    auto fn = std::move(timers.begin()->second);
    timers.erase(timers.begin());
    fn();
  }
}

// ---- The event loop: one epoll set for curl's sockets, c-ares' and the wakeup eventfd.

void HttpProber::Impl::EpollSet(int fd, FdKind kind, uint32_t events, bool add) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = EpollTag(kind, fd);
  if (epoll_ctl(epoll_fd, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev) == 0) return;
  // A socket closed and its number reused before we heard: the other operation fits.
  if (epoll_ctl(epoll_fd, add ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) != 0) {
    log::Error("probe engine: epoll_ctl failed").Kv("fd", fd).Kv("error", std::strerror(errno));
  }
}

void HttpProber::Impl::EpollRemove(int fd) {
  epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, nullptr);  // ENOENT/EBADF: already gone
}

// How long the loop may sleep: until the first of curl's timer, our timers, c-ares'
// timeouts, the next tick (coalesced), the stop deadline and the next expiry of a
// waiting probe; 0 when a waiting probe can start now.
int HttpProber::Impl::WaitMs(SteadyTime now) {
  if ((!retries.empty() || !fresh.empty() || !owed.empty()) &&
      in_flight.load() < options.max_in_flight) {
    return 0;
  }
  SteadyTime until = std::min(now + kMaxWait, curl_deadline);
  if (!timers.empty()) until = std::min(until, timers.begin()->first);
  for (const auto& [key, channel] : channels) {
    timeval tv{};
    if (channel->pending > 0 && ares_timeout(channel->channel, nullptr, &tv) != nullptr) {
      until = std::min(until, now + std::chrono::seconds(tv.tv_sec) + microseconds(tv.tv_usec));
    }
  }
  if (options.on_tick && !stopping.load()) {
    SteadyTime tick_at = last_tick + kHeartbeat;
    if (next_tick != SystemTime::max()) {
      const auto ahead = std::max(next_tick - clock.Now(), SystemTime::duration(0));
      tick_at = std::min(tick_at, now + duration_cast<SteadyTime::duration>(ahead));
    }
    until = std::min(until, std::max(tick_at, last_tick + options.tick_batch));
  }
  if (stopping.load()) until = std::min(until, stop_deadline);
  if (!fresh.empty())
    until = std::min(until, std::max(fresh.front().start_by, now + options.tick_batch));
  if (until <= now) return 0;
  // Round up: waking a millisecond early would spin until the deadline.
  return static_cast<int>((duration_cast<microseconds>(until - now).count() + 999) / 1000);
}

void HttpProber::Impl::RunCurlTimer() {
  if (curl_deadline > std::chrono::steady_clock::now()) return;
  int running = 0;
  curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
  // Asked, not left to the callback: curl reports whole milliseconds rounded down, so
  // this may run just before its timer expires, and it does not call the callback again
  // for the same expiry time; the loop would then never come back for it.
  long timeout_ms = -1;
  curl_multi_timeout(multi, &timeout_ms);
  curl_deadline = timeout_ms < 0 ? SteadyTime::max()
                                 : std::chrono::steady_clock::now() + milliseconds(timeout_ms);
}

void HttpProber::Impl::Dispatch(const epoll_event& ev) {
  const auto kind = static_cast<FdKind>(ev.data.u64 >> 32);
  const int fd = static_cast<int>(ev.data.u64 & 0xffffffffu);
  const bool readable = (ev.events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0;
  const bool writable = (ev.events & (EPOLLOUT | EPOLLERR)) != 0;
  switch (kind) {
    case FdKind::kWake: {
      uint64_t count = 0;
      if (read(wake_fd, &count, sizeof count) < 0) {
        // EAGAIN: drained already.
      }
      wake_pending.store(false);  // before TakeIncoming reads the queue
      break;
    }
    case FdKind::kCurl: {
      int mask = (readable ? CURL_CSELECT_IN : 0) | (writable ? CURL_CSELECT_OUT : 0) |
                 ((ev.events & EPOLLERR) != 0 ? CURL_CSELECT_ERR : 0);
      int running = 0;
      curl_multi_socket_action(multi, fd, mask, &running);
      break;
    }
    case FdKind::kAres: {
      auto it = ares_fds.find(fd);
      if (it == ares_fds.end()) break;  // closed since this batch of events was read
      ares_process_fd(it->second->channel, readable ? fd : ARES_SOCKET_BAD,
                      writable ? fd : ARES_SOCKET_BAD);
      break;
    }
  }
}

void HttpProber::Impl::ReadDone() {
  int pending = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi, &pending)) {
    if (msg->msg != CURLMSG_DONE) continue;
    Attempt* a = nullptr;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &a);
    const CURLcode code = msg->data.result;
    if (a != nullptr) Finish(a->id, code);
  }
}

void HttpProber::Impl::WaitOnce() {
  RunCurlTimer();  // handles just added ask for 0 ms: start them before sleeping
  ReadDone();
  epoll_event events[kMaxEvents];
  const int n = epoll_wait(epoll_fd, events, kMaxEvents, WaitMs(std::chrono::steady_clock::now()));
  for (int i = 0; i < n; ++i) Dispatch(events[i]);
  RunCurlTimer();
  // Resolver timeouts and retransmissions.
  for (auto& [key, channel] : channels) {
    if (channel->pending > 0) ares_process_fd(channel->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  }
  ReadDone();
}

void HttpProber::Impl::Shutdown() {
  // Whatever is still running is dropped without a result (shutdown_grace, docs/configuration.md: not stored).
  for (auto& [id, a] : attempts) {
    if (CURL* e = std::exchange(a->easy, nullptr); e != nullptr) {
      curl_multi_remove_handle(multi, e);
      curl_easy_cleanup(e);
    }
    in_flight.fetch_sub(1);
  }
  attempts.clear();
  for (CURL* e : idle_handles) curl_easy_cleanup(e);
  idle_handles.clear();
  for (auto& [key, channel] : channels) ares_destroy(channel->channel);  // callbacks see no attempt
  channels.clear();
  timers.clear();
  queued.fetch_sub(fresh.size() + retries.size());
  fresh.clear();
  retries.clear();
  preps.clear();
}

}  // namespace gatewatch::probes
