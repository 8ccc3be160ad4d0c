#include "probes/engine.h"

#include <ares.h>
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <iterator>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include "probes/classify.h"
#include "probes/log.h"
#include "probes/url.h"

namespace gatewatch::probes {
namespace {

using std::chrono::duration_cast;
using std::chrono::microseconds;
using std::chrono::milliseconds;

constexpr size_t kMaxHeaderBytes = 64 * 1024;  // per response; beyond: malformed_response
constexpr int64_t kFingerprintBytes = 4096;    // body bytes read at least, for fingerprints

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

// ---- TLS facts, captured in OpenSSL's verify callback so they exist even when
// verification fails (curl's CERTINFO is empty then). curl builds one SSL_CTX per
// connection, so the per-CTX ex_data slot points at the probe's TlsFacts.

int TlsExIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

std::string NameText(const X509_NAME* name) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return {};
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(std::max(0L, len)));
  BIO_free(bio);
  return out;
}

int VerifyCallback(int preverify_ok, X509_STORE_CTX* store) {
  auto* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  if (ssl == nullptr) return preverify_ok;
  auto* facts = static_cast<TlsFacts*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), TlsExIndex()));
  X509* cert = X509_STORE_CTX_get_current_cert(store);
  if (facts == nullptr || cert == nullptr) return preverify_ok;
  facts->version = SSL_get_version(ssl);
  if (X509_STORE_CTX_get_error_depth(store) == 0) {
    facts->subject = NameText(X509_get_subject_name(cert));
    facts->issuer = NameText(X509_get_issuer_name(cert));
  }
  std::tm tm{};
  if (const ASN1_TIME* not_after = X509_get0_notAfter(cert);
      not_after != nullptr && ASN1_TIME_to_tm(not_after, &tm) == 1) {
    const SystemTime expiry = std::chrono::system_clock::from_time_t(timegm(&tm));
    if (!facts->earliest_expiry || expiry < *facts->earliest_expiry) {
      facts->earliest_expiry = expiry;
      facts->earliest_expiry_subject = NameText(X509_get_subject_name(cert));
    }
  }
  return preverify_ok;  // observe only: curl's verification decision stands
}

CURLcode SslCtxCallback(CURL*, void* ssl_ctx, void* user) {
  auto* ctx = static_cast<SSL_CTX*>(ssl_ctx);
  SSL_CTX_set_ex_data(ctx, TlsExIndex(), user);
  SSL_CTX_set_verify(ctx, SSL_CTX_get_verify_mode(ctx), VerifyCallback);
  return CURLE_OK;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

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

// What every probe of one monitor shares, built on its first probe and reused while that
// monitor's config lives (a reload makes new configs, hence new entries): the parsed URL
// and the request header list. Engine thread only.
struct MonitorPrep {
  std::weak_ptr<const MonitorConfig> config;
  std::optional<HttpUrl> url;  // empty: invalid, see url_error
  std::string url_error;
  curl_slist* request_headers = nullptr;  // read-only once built: shared by handles

  MonitorPrep() = default;
  MonitorPrep(const MonitorPrep&) = delete;
  MonitorPrep& operator=(const MonitorPrep&) = delete;
  ~MonitorPrep() { curl_slist_free_all(request_headers); }
};

// One attempt of one job, engine thread only.
struct Attempt {
  enum class State { kResolving, kTransfer };

  uint64_t id = 0;
  std::shared_ptr<const ProbeJob> job;
  std::shared_ptr<const MonitorPrep> prep;
  int number = 0;
  State state = State::kResolving;
  SteadyTime started{};
  SystemTime started_at{};
  SteadyTime deadline{};
  bool via_proxy = false;

  CURL* easy = nullptr;
  curl_slist* connect_to = nullptr;
  char errbuf[CURL_ERROR_SIZE] = {};

  std::optional<microseconds> resolve;
  std::vector<std::string> resolved;
  std::string body;
  int64_t body_limit = 0;
  bool body_capped = false;
  HeaderList headers;
  std::string status_text;  // reason phrase of the last status line, kept for a 5xx only
  size_t header_bytes = 0;
  bool headers_too_large = false;
  int head_status = 0;         // status of the response whose head is arriving
  bool head_complete = false;  // the blank line ending a final (non-1xx) response head came
  // Every response header is kept only when something reads them all: a header
  // assertion, or the fingerprint of a 5xx. Otherwise only kSelectedHeaders.
  bool wants_all_headers = false;
  bool keep_all_headers = false;
  TlsFacts tls;
  std::optional<Outcome> engine_outcome;
  std::string engine_detail;
  // libcurl 7.88 reports no connect time when the TLS handshake then fails or stalls, so
  // whether TCP connected is asked of the socket itself (open/close-socket callbacks).
  curl_socket_t socket = CURL_SOCKET_BAD;
  bool tcp_connected = false;
  SteadyTime last_seen_unconnected{};

  const HttpUrl& url() const { return *prep->url; }
  ~Attempt() { curl_slist_free_all(connect_to); }
};

namespace {

size_t WriteCallback(char* data, size_t size, size_t n, void* user) {
  auto* a = static_cast<Attempt*>(user);
  const size_t len = size * n;
  const size_t room = static_cast<size_t>(a->body_limit) -
                      std::min(a->body.size(), static_cast<size_t>(a->body_limit));
  const size_t take = std::min(room, len);
  a->body.append(data, take);
  if (take < len) {
    a->body_capped = true;  // stop reading here; treated as a normal end
    return 0;
  }
  return len;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view lower) {
  if (a.size() != lower.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != lower[i]) return false;
  }
  return true;
}

bool IsSelectedHeader(std::string_view name) {
  for (std::string_view s : kSelectedHeaders) {
    if (EqualsIgnoreCase(name, s)) return true;
  }
  return false;
}

// "HTTP/1.1 502 Bad Gateway" -> 502; 0 when there is no number.
int StatusOf(std::string_view status_line) {
  const size_t space = status_line.find(' ');
  if (space == std::string_view::npos) return 0;
  int status = 0;
  for (size_t i = space + 1; i < status_line.size() && i < space + 4; ++i) {
    const char c = status_line[i];
    if (c < '0' || c > '9') return 0;
    status = status * 10 + (c - '0');
  }
  return status;
}

// "HTTP/1.1 502 Connection refused\r\n" -> "Connection refused"; empty when there is none.
std::string_view StatusText(std::string_view status_line) {
  const size_t first = status_line.find(' ');
  if (first == std::string_view::npos) return {};
  const size_t second = status_line.find(' ', first + 1);
  if (second == std::string_view::npos) return {};
  return Trim(status_line.substr(second + 1));
}

size_t HeaderCallback(char* data, size_t size, size_t n, void* user) {
  auto* a = static_cast<Attempt*>(user);
  const size_t len = size * n;
  const std::string_view line(data, len);
  const bool status_line = line.rfind("HTTP/", 0) == 0;
  if (status_line) {  // a new response (redirect, 100-continue)
    a->headers.clear();
    a->header_bytes = 0;
    const int status = StatusOf(line);
    a->head_status = status;
    a->head_complete = false;
    a->keep_all_headers = a->wants_all_headers || status >= 500;
    a->status_text.clear();
    if (status >= 500) a->status_text = std::string(StatusText(line));
  }
  a->header_bytes += len;
  if (a->header_bytes > kMaxHeaderBytes) {
    a->headers_too_large = true;
    return 0;
  }
  if (line == "\r\n" || line == "\n") {
    // An interim 1xx head ends too, but the real response's head is still to come.
    a->head_complete = a->head_status >= 200;
    return len;
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos || status_line) return len;
  const std::string_view name = Trim(line.substr(0, colon));
  if (!a->keep_all_headers && !IsSelectedHeader(name)) return len;  // nobody reads it
  a->headers.emplace_back(Lower(name), std::string(Trim(line.substr(colon + 1))));
  return len;
}

bool SocketConnected(curl_socket_t fd) {
  if (fd == CURL_SOCKET_BAD) return false;
  sockaddr_storage peer{};
  socklen_t len = sizeof peer;
  return getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0;
}

curl_socket_t OpenSocket(void* user, curlsocktype, curl_sockaddr* addr) {
  auto* a = static_cast<Attempt*>(user);
  const curl_socket_t fd = ::socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
  if (fd >= 0) a->socket = fd;
  return fd < 0 ? CURL_SOCKET_BAD : fd;
}

int CloseSocket(void* user, curl_socket_t fd) {
  auto* a = static_cast<Attempt*>(user);
  if (fd == a->socket) {
    // Ask the socket only when curl has no connect time (a system call per probe saved).
    curl_off_t connect_us = 0;
    if (!a->tcp_connected && a->easy != nullptr) {
      curl_easy_getinfo(a->easy, CURLINFO_CONNECT_TIME_T, &connect_us);
    }
    a->tcp_connected = a->tcp_connected || connect_us > 0 || SocketConnected(fd);
    a->socket = CURL_SOCKET_BAD;
  }
  return ::close(fd);
}

// What an epoll event belongs to, in its 64-bit user data: kind << 32 | fd.
enum class FdKind : uint32_t { kWake = 1, kCurl = 2, kAres = 3 };

uint64_t EpollTag(FdKind kind, int fd) {
  return static_cast<uint64_t>(kind) << 32 | static_cast<uint32_t>(fd);
}

constexpr auto kHeartbeat = std::chrono::seconds(1);   // on_tick at least this often
constexpr auto kMaxWait = std::chrono::seconds(1);     // a clock that jumps, a FakeClock
constexpr auto kSweepEvery = std::chrono::seconds(1);  // expired first attempts, all
constexpr int kMaxEvents = 256;

// The engine thread's Impl, so Submit() can tell it is called from the loop itself.
thread_local const void* tls_engine = nullptr;

}  // namespace

struct HttpProber::Impl {
  Impl(Options o, const Clock& c, HttpProber* owner)
      : options(std::move(o)), clock(c), self(owner) {}

  Options options;
  const Clock& clock;
  HttpProber* self;  // for on_tick

  // Shared with submitting threads.
  mutable std::mutex mu;  // guards incoming and stop_deadline
  std::deque<ProbeJob> incoming;
  SteadyTime stop_deadline{};
  std::atomic<bool> stopping{false};      // set under mu, read anywhere
  std::atomic<bool> wake_pending{false};  // an eventfd write not yet consumed
  std::atomic<bool> tick_requested{true};
  std::atomic<int> in_flight{0};
  std::atomic<size_t> queued{0};
  std::atomic<uint64_t> started{0};
  std::atomic<uint64_t> skipped{0};
  std::atomic<uint64_t> handles_created{0};
  int epoll_fd = -1;
  int wake_fd = -1;

  // Engine thread only.
  CURLM* multi = nullptr;
  SteadyTime curl_deadline = SteadyTime::max();  // CURLMOPT_TIMERFUNCTION's latest wish
  struct Channel {
    Impl* impl = nullptr;
    ares_channel channel = nullptr;
    int pending = 0;  // lookups in progress
  };
  std::map<std::string, std::unique_ptr<Channel>> channels;  // region name ("" = system)
  std::unordered_map<int, Channel*> ares_fds;                // c-ares sockets in the epoll set
  struct Waiting {
    std::shared_ptr<const ProbeJob> job;
    int number;
    SteadyTime start_by;
    uint32_t streak = 0;  // first attempts of this monitor x region skipped in a row
    uint64_t seq = 0;     // submission order
  };
  // Owed first: the most skips in a row, then the newest.
  struct OwedOrder {
    bool operator()(const Waiting& a, const Waiting& b) const {
      return a.streak != b.streak ? a.streak < b.streak : a.seq < b.seq;
    }
  };
  using SlotKey = std::pair<const MonitorConfig*, const RegionConfig*>;
  struct SlotKeyHash {
    size_t operator()(const SlotKey& k) const {
      return std::hash<const void*>{}(k.first) * 31 + std::hash<const void*>{}(k.second);
    }
  };
  std::deque<Waiting> retries;  // confirmation retries: first, oldest first
  std::deque<Waiting> fresh;    // first attempts not skipped last time, in submission order
  std::vector<Waiting> owed;    // first attempts skipped last time: a heap in OwedOrder
  // Skips in a row per monitor x region, only while it is owed a run (erased when it
  // starts; entries of configs gone with a reload are swept every few seconds).
  struct Streak {
    uint32_t count = 0;
    std::weak_ptr<const MonitorConfig> config;
  };
  std::unordered_map<SlotKey, Streak, SlotKeyHash> skip_streak;
  SteadyTime last_streak_sweep{};
  uint64_t next_seq = 0;
  std::unordered_map<uint64_t, std::unique_ptr<Attempt>> attempts;
  std::multimap<SteadyTime, std::function<void()>> timers;
  std::vector<CURL*> idle_handles;
  std::unordered_map<const MonitorConfig*, std::shared_ptr<const MonitorPrep>> preps;
  size_t preps_sweep_at = 64;
  SystemTime next_tick = SystemTime::max();
  SteadyTime last_tick{};
  SteadyTime last_sweep{};
  uint64_t next_id = 1;
  std::thread thread;

  void Signal();
  void Run();
  void MaybeTick();
  void TakeIncoming(bool* stop_now);
  void Enqueue(ProbeJob job);
  void FireTimers();
  void StartWaiting();
  void ExpireWaiting(SteadyTime now);
  void Skip(const Waiting& w);
  void Queue(std::shared_ptr<const ProbeJob> job);
  static SlotKey KeyOf(const ProbeJob& job) { return {job.monitor.get(), job.region.get()}; }
  void Start(std::shared_ptr<const ProbeJob> job, int number);
  std::shared_ptr<const MonitorPrep> PrepFor(const std::shared_ptr<const MonitorConfig>& m);
  Channel* ChannelFor(const RegionConfig& region);
  void Resolve(Attempt& a);
  void OnResolved(uint64_t id, int status, ares_addrinfo* res);
  CURL* AcquireHandle();
  void ReleaseHandle(CURL* e);
  void StartTransfer(Attempt& a, const std::string& ip);
  void SetRequestOptions(CURL* e, Attempt& a, long remaining_ms);
  void SetRouteOptions(CURL* e, Attempt& a, const std::string& ip);
  void Finish(uint64_t id, int curl_code);
  void ReadTransfer(Attempt& a, TransferFacts& f, ProbeResult& r, int curl_code);
  void Abort(uint64_t id, Outcome outcome, std::string detail);
  void CheckTlsDeadline(uint64_t id, Duration tls_timeout);
  void Deliver(std::unique_ptr<Attempt> a, ProbeResult result);
  int WaitMs(SteadyTime now);
  void WaitOnce();
  void Dispatch(const epoll_event& ev);
  void RunCurlTimer();
  void ReadDone();
  void EpollSet(int fd, FdKind kind, uint32_t events, bool add);
  void EpollRemove(int fd);
  void Shutdown();

  static int CurlSocketCallback(CURL* easy, curl_socket_t fd, int what, void* user, void* socketp);
  static int CurlTimerCallback(CURLM* multi, long timeout_ms, void* user);
  static void AresSocketCallback(void* data, ares_socket_t fd, int readable, int writable);
};

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

void HttpProber::Impl::Enqueue(ProbeJob job) {
  if (queued.load() >= options.max_queued) {
    skipped.fetch_add(1);
    if (job.on_skip) job.on_skip();
    return;
  }
  Queue(std::make_shared<const ProbeJob>(std::move(job)));
  queued.fetch_add(1);
}

// A first attempt waits in `fresh`, or in `owed` when its monitor x region was skipped
// last time: under overload owed ones start first, so every monitor gets its turn instead
// of the same newest few running every interval.
void HttpProber::Impl::Queue(std::shared_ptr<const ProbeJob> job) {
  Waiting w{std::move(job), 0, SteadyTime{}};
  w.start_by = w.job->start_by;
  w.seq = next_seq++;
  if (const auto it = skip_streak.find(KeyOf(*w.job)); it != skip_streak.end()) {
    w.streak = it->second.count;
    owed.push_back(std::move(w));
    std::push_heap(owed.begin(), owed.end(), OwedOrder{});
  } else {
    fresh.push_back(std::move(w));
  }
}

void HttpProber::Impl::TakeIncoming(bool* stop_now) {
  std::deque<ProbeJob> jobs;
  SteadyTime deadline{};
  {
    std::lock_guard lock(mu);
    jobs.swap(incoming);
    deadline = stop_deadline;
  }
  for (ProbeJob& job : jobs) Queue(std::make_shared<const ProbeJob>(std::move(job)));
  if (stopping.load()) {
    // No new probes and no retries while stopping; in-flight ones get the grace period.
    queued.fetch_sub(fresh.size() + owed.size() + retries.size());
    fresh.clear();
    owed.clear();
    retries.clear();
    timers.clear();
    *stop_now = attempts.empty() || std::chrono::steady_clock::now() >= deadline;
  }
}

void HttpProber::Impl::FireTimers() {
  const SteadyTime now = std::chrono::steady_clock::now();
  while (!timers.empty() && timers.begin()->first <= now) {
    auto fn = std::move(timers.begin()->second);
    timers.erase(timers.begin());
    fn();
  }
}

void HttpProber::Impl::Skip(const Waiting& w) {
  skipped.fetch_add(1);
  if (w.number == 0) {
    Streak& streak = skip_streak[KeyOf(*w.job)];
    streak.count = std::max(streak.count, w.streak) + 1;
    streak.config = w.job->monitor;
  }
  if (w.job->on_skip) w.job->on_skip();
}

// First attempts whose start_by passed are skipped now rather than when they would
// be reached. start_by mostly grows with submission order, so the head is checked every
// time and the whole queue once a second (monitors with different intervals interleave).
void HttpProber::Impl::ExpireWaiting(SteadyTime now) {
  while (!fresh.empty() && fresh.front().start_by < now) {
    Waiting w = std::move(fresh.front());
    fresh.pop_front();
    queued.fetch_sub(1);
    Skip(w);  // may Submit() more: fresh is re-read every turn
  }
  if ((fresh.empty() && owed.empty()) || now - last_sweep < kSweepEvery) return;
  last_sweep = now;
  std::deque<Waiting> keep;
  std::vector<Waiting> keep_owed;
  std::vector<Waiting> expired;
  for (Waiting& w : fresh) {
    if (w.start_by < now) expired.push_back(std::move(w));
    else keep.push_back(std::move(w));
  }
  for (Waiting& w : owed) {
    if (w.start_by < now) expired.push_back(std::move(w));
    else keep_owed.push_back(std::move(w));
  }
  fresh.swap(keep);
  owed.swap(keep_owed);
  std::make_heap(owed.begin(), owed.end(), OwedOrder{});
  queued.fetch_sub(expired.size());
  for (const Waiting& w : expired) Skip(w);  // may Submit(): appended to fresh or owed
}

void HttpProber::Impl::StartWaiting() {
  const SteadyTime now = std::chrono::steady_clock::now();
  ExpireWaiting(now);
  while (!retries.empty() && in_flight.load() < options.max_in_flight) {
    Waiting w = std::move(retries.front());
    retries.pop_front();
    queued.fetch_sub(1);
    Start(std::move(w.job), w.number);
  }
  // Owed first: each start or skip below may deliver at once and Submit() more, so the
  // heap is re-read every turn.
  while (!owed.empty() && in_flight.load() < options.max_in_flight) {
    std::pop_heap(owed.begin(), owed.end(), OwedOrder{});
    Waiting w = std::move(owed.back());
    owed.pop_back();
    queued.fetch_sub(1);
    if (now > w.start_by) {
      Skip(w);
    } else {
      Start(std::move(w.job), w.number);
    }
  }
  if (!skip_streak.empty() && now - last_streak_sweep >= 10 * kSweepEvery) {
    last_streak_sweep = now;
    std::erase_if(skip_streak, [](const auto& kv) { return kv.second.config.expired(); });
  }
  const int free_slots = options.max_in_flight - in_flight.load();
  if (fresh.empty() || free_slots <= 0) return;
  // The newest that fit start, in submission order; the older ones wait (and expire).
  const size_t take = std::min(fresh.size(), static_cast<size_t>(free_slots));
  std::vector<Waiting> batch(std::make_move_iterator(fresh.end() - static_cast<ptrdiff_t>(take)),
                             std::make_move_iterator(fresh.end()));
  fresh.erase(fresh.end() - static_cast<ptrdiff_t>(take), fresh.end());
  queued.fetch_sub(take);
  // Start() may deliver a result at once, whose callback may Submit(): fresh is not
  // touched from here on.
  for (Waiting& w : batch) {
    if (now > w.start_by) {
      Skip(w);
      continue;
    }
    Start(std::move(w.job), w.number);
  }
}

std::shared_ptr<const MonitorPrep> HttpProber::Impl::PrepFor(
    const std::shared_ptr<const MonitorConfig>& m) {
  // A live weak_ptr at this address is this very config (two live objects never share
  // an address); a dead one is a config freed since, whose address was reused.
  if (auto it = preps.find(m.get()); it != preps.end() && !it->second->config.expired()) {
    return it->second;
  }
  auto prep = std::make_shared<MonitorPrep>();
  prep->config = m;
  if (auto url = ParseHttpUrl(m->url)) {
    prep->url = std::move(*url);
  } else {
    prep->url_error = url.error();
  }
  for (const auto& [name, value] : m->probe.headers) {
    prep->request_headers = curl_slist_append(prep->request_headers, (name + ": " + value).c_str());
  }
  preps[m.get()] = prep;
  if (preps.size() >= preps_sweep_at) {  // drop configs gone since (reloads)
    std::erase_if(preps, [](const auto& kv) { return kv.second->config.expired(); });
    preps_sweep_at = std::max<size_t>(64, 2 * preps.size());
  }
  return prep;
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

void HttpProber::Impl::Start(std::shared_ptr<const ProbeJob> job, int number) {
  auto a = std::make_unique<Attempt>();
  a->id = next_id++;
  a->job = std::move(job);
  a->number = number;
  a->started = std::chrono::steady_clock::now();
  a->started_at = clock.Now();
  const MonitorConfig& m = *a->job->monitor;
  a->deadline = a->started + m.probe.timeout;
  a->body_limit = std::max<int64_t>(m.probe.max_body, kFingerprintBytes);
  a->wants_all_headers = !m.header_contains.empty();
  a->prep = PrepFor(a->job->monitor);
  if (number == 0 && !skip_streak.empty()) skip_streak.erase(KeyOf(*a->job));
  in_flight.fetch_add(1);
  started.fetch_add(1);
  Attempt& ref = *a;
  const uint64_t id = a->id;
  attempts.emplace(id, std::move(a));
  if (!ref.prep->url) {  // validated at config load; guard anyway
    Abort(id, Outcome::kMalformedResponse, "invalid URL: " + ref.prep->url_error);
    return;
  }
  ref.via_proxy = !ref.job->region->proxy.empty();
  if (ref.via_proxy || ref.url().host_is_ip) {
    StartTransfer(ref, ref.url().host_is_ip ? ref.url().host : "");
    return;
  }
  Resolve(ref);
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

CURL* HttpProber::Impl::AcquireHandle() {
  if (idle_handles.empty()) {
    handles_created.fetch_add(1);
    return curl_easy_init();
  }
  CURL* e = idle_handles.back();
  idle_handles.pop_back();
  return e;
}

// Back to libcurl's defaults, so nothing of the finished probe (method, body, headers,
// proxy, TLS options, callbacks pointing at its Attempt) reaches the next one; the
// handle keeps only its buffers. Its connection is already closed (FORBID_REUSE).
void HttpProber::Impl::ReleaseHandle(CURL* e) {
  curl_easy_reset(e);
  if (idle_handles.size() < static_cast<size_t>(options.max_in_flight)) {
    idle_handles.push_back(e);
  } else {
    curl_easy_cleanup(e);
  }
}

void HttpProber::Impl::StartTransfer(Attempt& a, const std::string& ip) {
  a.state = Attempt::State::kTransfer;
  const ProbeSettings& p = a.job->monitor->probe;
  const auto now = std::chrono::steady_clock::now();
  const long remaining_ms =
      std::max<long>(1, duration_cast<milliseconds>(a.deadline - now).count());
  CURL* e = AcquireHandle();
  a.easy = e;
  SetRequestOptions(e, a, remaining_ms);
  SetRouteOptions(e, a, ip);
  if (p.tls_timeout && a.url().scheme == "https") {
    const uint64_t id = a.id;
    const Duration tls_timeout = *p.tls_timeout;
    timers.emplace(now + tls_timeout,
                   [this, id, tls_timeout] { CheckTlsDeadline(id, tls_timeout); });
  }
  curl_multi_add_handle(multi, e);
}

// What is asked, how it is read, and the limits: the same whatever the route.
void HttpProber::Impl::SetRequestOptions(CURL* e, Attempt& a, long remaining_ms) {
  const MonitorConfig& m = *a.job->monitor;
  const ProbeSettings& p = m.probe;
  curl_easy_setopt(e, CURLOPT_PRIVATE, &a);
  curl_easy_setopt(e, CURLOPT_URL, a.url().href.c_str());
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);  // measure DNS, connect and TLS every time
  curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
  // A reused handle would otherwise resume the last TLS session with the same host: a
  // cheaper handshake, and no certificate to read facts from.
  curl_easy_setopt(e, CURLOPT_SSL_SESSIONID_CACHE, 0L);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, a.errbuf);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, remaining_ms);
  const long connect_ms =
      p.connect_timeout
          ? std::min<long>(remaining_ms, static_cast<long>(p.connect_timeout->count()))
          : remaining_ms;
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
  curl_easy_setopt(e, CURLOPT_USERAGENT, p.user_agent.c_str());
  if (a.prep->request_headers != nullptr)
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, a.prep->request_headers);
  if (p.method == "HEAD") {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else if (p.method != "GET") {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, p.method.c_str());
  }
  if (!p.body.empty()) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(p.body.size()));
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, p.body.c_str());
  }
  if (p.follow_redirects) {
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, static_cast<long>(kMaxRedirects));
  }
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, WriteCallback);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &a);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, HeaderCallback);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, &a);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, OpenSocket);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, &a);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, CloseSocket);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, &a);
  // One CA store for every probe: a CA *file* is cached by libcurl 7.88, a CA path is not.
  curl_easy_setopt(e, CURLOPT_CAINFO, options.ca_file.c_str());
  curl_easy_setopt(e, CURLOPT_CAPATH, nullptr);
  curl_easy_setopt(e, CURLOPT_CA_CACHE_TIMEOUT, 24L * 3600);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, p.tls_skip_verify ? 0L : 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, p.tls_skip_verify ? 0L : 2L);
  curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, SslCtxCallback);
  curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, &a.tls);
}

// Where the connection goes: the resolved address, the region's proxy and source address.
void HttpProber::Impl::SetRouteOptions(CURL* e, Attempt& a, const std::string& ip) {
  const RegionConfig& region = *a.job->region;
  const HttpUrl& url = a.url();
  if (!ip.empty() && !url.host_is_ip) {
    // Per handle, unlike CURLOPT_RESOLVE (shared by the multi handle: regions would mix).
    const std::string target = ip.find(':') != std::string::npos ? "[" + ip + "]" : ip;
    const std::string host =
        url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host;
    a.connect_to = curl_slist_append(nullptr, (host + ":" + std::to_string(url.port) + ":" +
                                               target + ":" + std::to_string(url.port))
                                                  .c_str());
    curl_easy_setopt(e, CURLOPT_CONNECT_TO, a.connect_to);
  }
  if (region.proxy.empty()) {
    // Direct means direct: never an http_proxy/https_proxy/all_proxy from the environment
    // (it would silently change the vantage point). Also spares libcurl the getenv calls.
    curl_easy_setopt(e, CURLOPT_PROXY, "");
  } else {
    curl_easy_setopt(e, CURLOPT_PROXY, region.proxy.c_str());
    // Tunnel plain http too: otherwise the proxy's own error page would be recorded as
    // the target's 5xx.
    curl_easy_setopt(e, CURLOPT_HTTPPROXYTUNNEL, 1L);
    curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
  }
  if (!region.source_address.empty()) {
    curl_easy_setopt(e, CURLOPT_INTERFACE, ("host!" + region.source_address).c_str());
  }
}

// The TLS phase has its own limit: TCP connected + tls_timeout. libcurl 7.88 has no
// separate TLS timeout and reports no connect time while the handshake runs, so the
// engine asks the socket: while TCP is not up it looks again soon; once it is, the
// handshake is taken to have started when it was last seen unconnected (the error is at
// most one re-check interval, early rather than late).
void HttpProber::Impl::CheckTlsDeadline(uint64_t id, Duration tls_timeout) {
  auto it = attempts.find(id);
  if (it == attempts.end() || it->second->easy == nullptr) return;
  Attempt& a = *it->second;
  curl_off_t app_us = 0;
  curl_easy_getinfo(a.easy, CURLINFO_APPCONNECT_TIME_T, &app_us);
  if (app_us > 0) return;  // handshake done in time
  const auto now = std::chrono::steady_clock::now();
  const Duration recheck = std::min<Duration>(tls_timeout / 4 + Duration(1), Duration(100));
  if (!SocketConnected(a.socket)) {
    a.last_seen_unconnected = now;
    timers.emplace(now + recheck, [this, id, tls_timeout] { CheckTlsDeadline(id, tls_timeout); });
    return;
  }
  a.tcp_connected = true;
  const SteadyTime transfer_start = a.started + a.resolve.value_or(microseconds(0));
  const SteadyTime limit = std::max(transfer_start, a.last_seen_unconnected) + tls_timeout;
  if (now >= limit) {
    Abort(id, Outcome::kTlsError,
          "TLS handshake did not finish within " + FormatDuration(tls_timeout));
    return;
  }
  timers.emplace(limit, [this, id, tls_timeout] { CheckTlsDeadline(id, tls_timeout); });
}

void HttpProber::Impl::Abort(uint64_t id, Outcome outcome, std::string detail) {
  auto it = attempts.find(id);
  if (it == attempts.end()) return;
  it->second->engine_outcome = outcome;
  it->second->engine_detail = std::move(detail);
  Finish(id, CURLE_ABORTED_BY_CALLBACK);
}

// What libcurl knows about the transfer: into the facts to classify and the result.
void HttpProber::Impl::ReadTransfer(Attempt& a, TransferFacts& f, ProbeResult& r, int curl_code) {
  long os_errno = 0, connect_code = 0, status = 0, version = 0;
  curl_easy_getinfo(a.easy, CURLINFO_OS_ERRNO, &os_errno);
  curl_easy_getinfo(a.easy, CURLINFO_HTTP_CONNECTCODE, &connect_code);
  curl_easy_getinfo(a.easy, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(a.easy, CURLINFO_HTTP_VERSION, &version);
  curl_off_t lookup = 0, connect = 0, app = 0, pre = 0, first_byte = 0, total_us = 0;
  curl_easy_getinfo(a.easy, CURLINFO_NAMELOOKUP_TIME_T, &lookup);
  curl_easy_getinfo(a.easy, CURLINFO_CONNECT_TIME_T, &connect);
  curl_easy_getinfo(a.easy, CURLINFO_APPCONNECT_TIME_T, &app);
  curl_easy_getinfo(a.easy, CURLINFO_PRETRANSFER_TIME_T, &pre);
  curl_easy_getinfo(a.easy, CURLINFO_STARTTRANSFER_TIME_T, &first_byte);
  curl_easy_getinfo(a.easy, CURLINFO_TOTAL_TIME_T, &total_us);
  f.os_errno = static_cast<int>(os_errno);
  f.proxy_connect_code = connect_code;
  f.connected = connect > 0 || a.tcp_connected || SocketConnected(a.socket);
  f.tls_done = app > 0;
  f.headers_received = first_byte > 0 && status > 0;
  f.headers_complete = f.headers_received && a.head_complete;
  f.http_status = static_cast<int>(status);
  r.http_status = static_cast<int>(status);
  if (f.connected) r.phases.connect = microseconds(connect - lookup);
  if (f.https && f.tls_done) r.phases.tls = microseconds(app - connect);
  if (f.headers_received && pre > 0) r.phases.processing = microseconds(first_byte - pre);
  if (f.headers_received && curl_code == CURLE_OK)
    r.phases.transfer = microseconds(total_us - first_byte);
  if (f.headers_received && curl_code != CURLE_OK && !a.engine_outcome && total_us >= first_byte) {
    r.phases.transfer = microseconds(total_us - first_byte);  // interrupted mid-body
  }
  switch (version) {
    case CURL_HTTP_VERSION_1_0:
      r.http_version = "1.0";
      break;
    case CURL_HTTP_VERSION_1_1:
      r.http_version = "1.1";
      break;
    case CURL_HTTP_VERSION_2_0:
      r.http_version = "2";
      break;
    case CURL_HTTP_VERSION_3:
      r.http_version = "3";
      break;
    default:
      break;
  }
  char* ip = nullptr;
  if (!f.via_proxy && curl_easy_getinfo(a.easy, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK &&
      ip != nullptr) {
    r.remote_ip = ip;
  }
  // total: from the start of resolution to the end (our clock when the engine cut it).
  if (!a.engine_outcome)
    r.phases.total = a.resolve.value_or(microseconds(0)) + microseconds(total_us);
}

void HttpProber::Impl::Finish(uint64_t id, int curl_code) {
  auto it = attempts.find(id);
  if (it == attempts.end()) return;
  std::unique_ptr<Attempt> owned = std::move(it->second);
  attempts.erase(it);
  Attempt& a = *owned;
  const MonitorConfig& m = *a.job->monitor;

  ProbeResult r;
  r.monitor = m.name;
  r.region = a.job->region->name;
  r.started_at = a.started_at;
  r.due = a.job->due;
  r.attempt = a.number;
  r.resolved = std::move(a.resolved);
  r.phases.resolve = a.resolve;

  TransferFacts f;
  f.curl_code = curl_code;
  f.https = a.prep->url && a.url().scheme == "https";
  f.via_proxy = !a.job->region->proxy.empty();
  f.body_capped = a.body_capped;
  f.headers_too_large = a.headers_too_large;
  f.engine_outcome = a.engine_outcome;
  f.engine_detail = a.engine_detail;
  f.curl_error = a.errbuf;
  if (a.easy != nullptr) {
    // Removing closes the connection (FORBID_REUSE), which frees the SSL_CTX pointing at a.tls.
    curl_multi_remove_handle(multi, a.easy);
    ReadTransfer(a, f, r, curl_code);
    ReleaseHandle(a.easy);
    a.easy = nullptr;
  }
  if (!r.phases.total) {
    r.phases.total = duration_cast<microseconds>(std::chrono::steady_clock::now() - a.started);
  }
  if (f.https) r.tls = a.tls;

  Classified c = ClassifyTransfer(f);
  if (c.transfer_ok) {
    c = ClassifyResponse(r.http_status, m.probe.expect_status, m.body_contains, m.header_contains,
                         a.body, a.headers, a.body_capped);
  }
  r.outcome = c.outcome;
  r.detail = std::move(c.detail);
  r.bytes_read =
      static_cast<int64_t>(std::min<size_t>(a.body.size(), static_cast<size_t>(m.probe.max_body)));
  for (const auto& [name, value] : a.headers) {
    if (std::find(kSelectedHeaders.begin(), kSelectedHeaders.end(), name) !=
        kSelectedHeaders.end()) {
      r.headers.emplace_back(name, value);
    }
  }
  if (r.http_status >= 500) {
    ResponseSample sample;
    sample.status = r.http_status;
    sample.status_text = a.status_text;
    sample.headers = a.headers;
    sample.body = std::string_view(a.body).substr(0, static_cast<size_t>(kFingerprintBytes));
    for (const auto& [name, value] : a.headers) {
      if (name == "content-length") {
        char* end = nullptr;
        const long long v = std::strtoll(value.c_str(), &end, 10);
        if (end != value.c_str()) sample.content_length = v;
      }
    }
    const Fingerprint fp = ClassifyResponder(sample);
    r.emitter = fp.emitter;
    r.reason = fp.reason;
    r.body_snippet = a.body.substr(0, kBodySnippetBytes);
  }
  Deliver(std::move(owned), std::move(r));
}

void HttpProber::Impl::Deliver(std::unique_ptr<Attempt> a, ProbeResult result) {
  in_flight.fetch_sub(1);
  const bool failed = IsFailure(result.outcome);
  const int retries_allowed = a->job->monitor->probe.retries;
  result.confirmed = !failed || a->number >= retries_allowed;
  if (!result.confirmed && !stopping.load()) {
    auto job = a->job;
    const int next = a->number + 1;
    timers.emplace(std::chrono::steady_clock::now() + a->job->monitor->probe.retry_delay,
                   [this, job, next] {
                     retries.push_back({job, next, SteadyTime::max()});  // before new probes
                     queued.fetch_add(1);
                   });
  }
  if (a->job->on_result) a->job->on_result(std::move(result));
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
