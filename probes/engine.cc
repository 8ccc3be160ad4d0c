#include "probes/engine.h"

#include <ares.h>
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/resource.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "probes/classify.h"
#include "probes/log.h"
#include "probes/url.h"

namespace gatewatch::probes {
namespace {

using std::chrono::duration_cast;
using std::chrono::microseconds;
using std::chrono::milliseconds;

constexpr size_t kMaxHeaderBytes = 64 * 1024;  // per response; beyond: malformed_response
constexpr int64_t kFingerprintBytes = 4096;   // body bytes read at least, for fingerprints

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
  auto* ssl = static_cast<SSL*>(
      X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
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
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

std::string DnsErrorDetail(int status) {
  switch (status) {
    case ARES_ENOTFOUND: return "NXDOMAIN: the name does not exist";
    case ARES_ENODATA: return "the name has no A or AAAA records";
    case ARES_ESERVFAIL: return "SERVFAIL: the resolver failed";
    case ARES_EREFUSED: return "the resolver refused the query";
    case ARES_ETIMEOUT: return "the resolver did not answer in time";
    case ARES_ECONNREFUSED: return "the resolver refused the connection";
    default: return std::string("resolution failed: ") + ares_strerror(status);
  }
}

}  // namespace

// One attempt of one job, engine thread only.
struct Attempt {
  enum class State { kResolving, kTransfer };

  uint64_t id = 0;
  std::shared_ptr<const ProbeJob> job;
  int number = 0;
  State state = State::kResolving;
  SteadyTime started{};
  SystemTime started_at{};
  SteadyTime deadline{};
  HttpUrl url;
  bool via_proxy = false;

  CURL* easy = nullptr;
  curl_slist* request_headers = nullptr;
  curl_slist* connect_to = nullptr;
  char errbuf[CURL_ERROR_SIZE] = {};

  std::optional<microseconds> resolve;
  std::vector<std::string> resolved;
  std::string body;
  int64_t body_limit = 0;
  bool body_capped = false;
  HeaderList headers;
  size_t header_bytes = 0;
  bool headers_too_large = false;
  TlsFacts tls;
  std::optional<Outcome> engine_outcome;
  std::string engine_detail;
  // libcurl 7.88 reports no connect time when the TLS handshake then fails or stalls, so
  // whether TCP connected is asked of the socket itself (open/close-socket callbacks).
  curl_socket_t socket = CURL_SOCKET_BAD;
  bool tcp_connected = false;
  SteadyTime last_seen_unconnected{};

  ~Attempt() {
    curl_slist_free_all(request_headers);
    curl_slist_free_all(connect_to);
  }
};

namespace {

size_t WriteCallback(char* data, size_t size, size_t n, void* user) {
  auto* a = static_cast<Attempt*>(user);
  const size_t len = size * n;
  const size_t room = static_cast<size_t>(a->body_limit) - std::min(a->body.size(), static_cast<size_t>(a->body_limit));
  const size_t take = std::min(room, len);
  a->body.append(data, take);
  if (take < len) {
    a->body_capped = true;  // stop reading here; treated as a normal end
    return 0;
  }
  return len;
}

size_t HeaderCallback(char* data, size_t size, size_t n, void* user) {
  auto* a = static_cast<Attempt*>(user);
  const size_t len = size * n;
  const std::string_view line(data, len);
  if (line.rfind("HTTP/", 0) == 0) {  // a new response (redirect, 100-continue)
    a->headers.clear();
    a->header_bytes = 0;
  }
  a->header_bytes += len;
  if (a->header_bytes > kMaxHeaderBytes) {
    a->headers_too_large = true;
    return 0;
  }
  const size_t colon = line.find(':');
  if (colon != std::string_view::npos && line.rfind("HTTP/", 0) != 0) {
    a->headers.emplace_back(Lower(Trim(line.substr(0, colon))), std::string(Trim(line.substr(colon + 1))));
  }
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
    a->tcp_connected = a->tcp_connected || SocketConnected(fd);
    a->socket = CURL_SOCKET_BAD;
  }
  return ::close(fd);
}

}  // namespace

struct HttpProber::Impl {
  Impl(Options o, const Clock& c, HttpProber* owner) : options(std::move(o)), clock(c), self(owner) {}

  Options options;
  const Clock& clock;
  HttpProber* self;  // for on_tick

  // Shared with submitting threads.
  mutable std::mutex mu;  // guards incoming, stopping, stop_deadline
  std::deque<ProbeJob> incoming;
  bool stopping = false;
  SteadyTime stop_deadline{};
  std::atomic<int> in_flight{0};
  std::atomic<size_t> queued{0};
  std::atomic<uint64_t> started{0};
  std::atomic<uint64_t> skipped{0};

  // Engine thread only.
  CURLM* multi = nullptr;
  std::map<std::string, ares_channel> channels;  // region name ("" = system resolver)
  struct Waiting {
    std::shared_ptr<const ProbeJob> job;
    int number;
  };
  std::deque<Waiting> waiting;
  std::unordered_map<uint64_t, std::unique_ptr<Attempt>> attempts;
  std::multimap<SteadyTime, std::function<void()>> timers;
  SystemTime next_tick = SystemTime::max();
  uint64_t next_id = 1;
  std::thread thread;

  void Run();
  void TakeIncoming(bool* stop_now);
  void FireTimers();
  void StartWaiting();
  void Start(std::shared_ptr<const ProbeJob> job, int number);
  ares_channel ChannelFor(const RegionConfig& region);
  void OnResolved(uint64_t id, int status, ares_addrinfo* res);
  void StartTransfer(Attempt& a, const std::string& ip);
  void Finish(uint64_t id, int curl_code);
  void Abort(uint64_t id, Outcome outcome, std::string detail);
  void CheckTlsDeadline(uint64_t id, Duration tls_timeout);
  void Deliver(std::unique_ptr<Attempt> a, ProbeResult result);
  void PollOnce();
  void Shutdown();
};

HttpProber::HttpProber(Options options, const Clock& clock)
    : impl_(std::make_unique<Impl>(std::move(options), clock, this)) {
  GlobalInitOnce();
  RaiseFileLimit(impl_->options.max_in_flight);
  impl_->multi = curl_multi_init();
  curl_multi_setopt(impl_->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
  impl_->thread = std::thread([this] { impl_->Run(); });
}

HttpProber::~HttpProber() {
  Stop();
  curl_multi_cleanup(impl_->multi);
}

void HttpProber::Submit(ProbeJob job) {
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopping) return;
    if (impl_->queued.load() >= impl_->options.max_queued) {
      impl_->skipped.fetch_add(1);
      if (job.on_skip) job.on_skip();
      return;
    }
    impl_->incoming.push_back(std::move(job));
    impl_->queued.fetch_add(1);
  }
  curl_multi_wakeup(impl_->multi);
}

void HttpProber::Wake() { curl_multi_wakeup(impl_->multi); }

void HttpProber::Stop(Duration grace) {
  {
    std::lock_guard lock(impl_->mu);
    if (!impl_->stopping) {
      impl_->stopping = true;
      impl_->stop_deadline = std::chrono::steady_clock::now() + grace;
    }
  }
  curl_multi_wakeup(impl_->multi);
  if (impl_->thread.joinable()) impl_->thread.join();
}

HttpProber::Stats HttpProber::GetStats() const {
  return {impl_->in_flight.load(), impl_->queued.load(), impl_->started.load(),
          impl_->skipped.load()};
}

void HttpProber::Impl::Run() {
  for (;;) {
    FireTimers();
    if (options.on_tick) {
      bool is_stopping = false;
      {
        std::lock_guard lock(mu);
        is_stopping = stopping;
      }
      next_tick = is_stopping ? SystemTime::max() : options.on_tick(*self);
    }
    bool stop_now = false;
    TakeIncoming(&stop_now);
    if (stop_now) break;
    StartWaiting();
    PollOnce();
  }
  Shutdown();
}

void HttpProber::Impl::TakeIncoming(bool* stop_now) {
  std::deque<ProbeJob> jobs;
  bool is_stopping = false;
  SteadyTime deadline{};
  {
    std::lock_guard lock(mu);
    jobs.swap(incoming);
    is_stopping = stopping;
    deadline = stop_deadline;
  }
  for (ProbeJob& job : jobs) {
    waiting.push_back({std::make_shared<const ProbeJob>(std::move(job)), 0});
  }
  if (is_stopping) {
    // No new probes and no retries while stopping; in-flight ones get the grace period.
    queued.fetch_sub(waiting.size());
    waiting.clear();
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

void HttpProber::Impl::StartWaiting() {
  while (!waiting.empty() && in_flight.load() < options.max_in_flight) {
    Waiting w = std::move(waiting.front());
    waiting.pop_front();
    queued.fetch_sub(1);
    if (w.number == 0 && std::chrono::steady_clock::now() > w.job->start_by) {
      skipped.fetch_add(1);
      if (w.job->on_skip) w.job->on_skip();
      continue;
    }
    Start(std::move(w.job), w.number);
  }
}

ares_channel HttpProber::Impl::ChannelFor(const RegionConfig& region) {
  const std::string key = region.dns_servers.empty() && region.source_address.empty() ? "" : region.name;
  if (auto it = channels.find(key); it != channels.end()) return it->second;
  ares_options opts{};
  opts.timeout = 2000;  // per try; the probe's own resolve deadline cuts earlier
  opts.tries = 2;
  // Hand SERVFAIL/REFUSED to us instead of trying further: that *is* the finding.
  opts.flags = ARES_FLAG_NOCHECKRESP;
  ares_channel channel = nullptr;
  int rc = ares_init_options(&channel, &opts, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS);
  if (rc != ARES_SUCCESS) {
    log::Error("c-ares init failed").Kv("error", ares_strerror(rc));
    return nullptr;
  }
  if (!region.dns_servers.empty()) {
    std::string csv;
    for (const std::string& s : region.dns_servers) csv += (csv.empty() ? "" : ",") + s;
    rc = ares_set_servers_ports_csv(channel, csv.c_str());
    if (rc != ARES_SUCCESS) {
      log::Error("c-ares servers rejected").Kv("region", region.name).Kv("error", ares_strerror(rc));
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
  channels[key] = channel;
  return channel;
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
  auto url = ParseHttpUrl(m.url);
  in_flight.fetch_add(1);
  started.fetch_add(1);
  Attempt& ref = *a;
  const uint64_t id = a->id;
  attempts.emplace(id, std::move(a));
  if (!url) {  // validated at config load; guard anyway
    Abort(id, Outcome::kMalformedResponse, "invalid URL: " + url.error());
    return;
  }
  ref.url = *url;
  ref.via_proxy = !ref.job->region->proxy.empty();
  if (ref.via_proxy || ref.url.host_is_ip) {
    StartTransfer(ref, ref.url.host_is_ip ? ref.url.host : "");
    return;
  }
  ares_channel channel = ChannelFor(*ref.job->region);
  if (channel == nullptr) {
    Abort(id, Outcome::kDnsError, "resolver unavailable");
    return;
  }
  const Duration resolve_limit = m.probe.resolve_timeout.value_or(m.probe.timeout);
  timers.emplace(ref.started + resolve_limit, [this, id, resolve_limit] {
    auto it = attempts.find(id);
    if (it != attempts.end() && it->second->state == Attempt::State::kResolving) {
      Abort(id, Outcome::kDnsError,
            "the resolver did not answer within " + FormatDuration(resolve_limit));
    }
  });
  ares_addrinfo_hints hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = ARES_AI_NOSORT;
  struct Ctx {
    Impl* impl;
    uint64_t id;
  };
  // c-ares calls back exactly once (ARES_EDESTRUCTION on shutdown), possibly right here.
  ares_getaddrinfo(
      channel, ref.url.host.c_str(), nullptr, &hints,
      [](void* arg, int status, int, ares_addrinfo* res) {
        auto* ctx = static_cast<Ctx*>(arg);
        ctx->impl->OnResolved(ctx->id, status, res);
        delete ctx;
      },
      new Ctx{this, id});
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
  for (const ares_addrinfo_node* n = res != nullptr ? res->nodes : nullptr; n != nullptr; n = n->ai_next) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (n->ai_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(n->ai_addr)->sin_addr, buf, sizeof buf);
      if (first_v4.empty()) first_v4 = buf;
    } else if (n->ai_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(n->ai_addr)->sin6_addr, buf, sizeof buf);
      if (first_v6.empty()) first_v6 = buf;
    } else {
      continue;
    }
    if (std::find(a.resolved.begin(), a.resolved.end(), buf) == a.resolved.end()) a.resolved.emplace_back(buf);
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

void HttpProber::Impl::StartTransfer(Attempt& a, const std::string& ip) {
  a.state = Attempt::State::kTransfer;
  const MonitorConfig& m = *a.job->monitor;
  const ProbeSettings& p = m.probe;
  const RegionConfig& region = *a.job->region;
  const auto now = std::chrono::steady_clock::now();
  const long remaining_ms = std::max<long>(1, duration_cast<milliseconds>(a.deadline - now).count());

  CURL* e = curl_easy_init();
  a.easy = e;
  curl_easy_setopt(e, CURLOPT_PRIVATE, &a);
  curl_easy_setopt(e, CURLOPT_URL, m.url.c_str());
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);  // measure DNS, connect and TLS every time
  curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, a.errbuf);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, remaining_ms);
  const long connect_ms =
      p.connect_timeout ? std::min<long>(remaining_ms, static_cast<long>(p.connect_timeout->count()))
                        : remaining_ms;
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
  curl_easy_setopt(e, CURLOPT_USERAGENT, p.user_agent.c_str());
  for (const auto& [name, value] : p.headers) {
    a.request_headers = curl_slist_append(a.request_headers, (name + ": " + value).c_str());
  }
  if (a.request_headers != nullptr) curl_easy_setopt(e, CURLOPT_HTTPHEADER, a.request_headers);
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
  if (!ip.empty() && !a.url.host_is_ip) {
    // Per handle, unlike CURLOPT_RESOLVE (shared by the multi handle: regions would mix).
    const std::string target = ip.find(':') != std::string::npos ? "[" + ip + "]" : ip;
    const std::string host = a.url.host.find(':') != std::string::npos ? "[" + a.url.host + "]" : a.url.host;
    a.connect_to = curl_slist_append(nullptr, (host + ":" + std::to_string(a.url.port) + ":" +
                                               target + ":" + std::to_string(a.url.port)).c_str());
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
  if (p.tls_timeout && a.url.scheme == "https") {
    const uint64_t id = a.id;
    const Duration tls_timeout = *p.tls_timeout;
    timers.emplace(now + tls_timeout, [this, id, tls_timeout] { CheckTlsDeadline(id, tls_timeout); });
  }
  curl_multi_add_handle(multi, e);
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
    Abort(id, Outcome::kTlsError, "TLS handshake did not finish within " + FormatDuration(tls_timeout));
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

void HttpProber::Impl::Finish(uint64_t id, int curl_code) {
  auto it = attempts.find(id);
  if (it == attempts.end()) return;
  std::unique_ptr<Attempt> owned = std::move(it->second);
  attempts.erase(it);
  Attempt& a = *owned;
  const MonitorConfig& m = *a.job->monitor;
  const auto now = std::chrono::steady_clock::now();

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
  f.https = a.url.scheme == "https";
  f.via_proxy = !a.job->region->proxy.empty();
  f.body_capped = a.body_capped;
  f.headers_too_large = a.headers_too_large;
  f.engine_outcome = a.engine_outcome;
  f.engine_detail = a.engine_detail;
  f.curl_error = a.errbuf;
  curl_off_t total_us = 0;
  if (a.easy != nullptr) {
    curl_multi_remove_handle(multi, a.easy);
    long os_errno = 0, connect_code = 0, status = 0, version = 0;
    curl_easy_getinfo(a.easy, CURLINFO_OS_ERRNO, &os_errno);
    curl_easy_getinfo(a.easy, CURLINFO_HTTP_CONNECTCODE, &connect_code);
    curl_easy_getinfo(a.easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(a.easy, CURLINFO_HTTP_VERSION, &version);
    curl_off_t lookup = 0, connect = 0, app = 0, pre = 0, first_byte = 0;
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
    f.http_status = static_cast<int>(status);
    r.http_status = static_cast<int>(status);
    if (f.connected) r.phases.connect = microseconds(connect - lookup);
    if (f.https && f.tls_done) r.phases.tls = microseconds(app - connect);
    if (f.headers_received && pre > 0) r.phases.processing = microseconds(first_byte - pre);
    if (f.headers_received && curl_code == CURLE_OK) r.phases.transfer = microseconds(total_us - first_byte);
    if (f.headers_received && curl_code != CURLE_OK && !a.engine_outcome && total_us >= first_byte) {
      r.phases.transfer = microseconds(total_us - first_byte);  // interrupted mid-body
    }
    switch (version) {
      case CURL_HTTP_VERSION_1_0: r.http_version = "1.0"; break;
      case CURL_HTTP_VERSION_1_1: r.http_version = "1.1"; break;
      case CURL_HTTP_VERSION_2_0: r.http_version = "2"; break;
      case CURL_HTTP_VERSION_3: r.http_version = "3"; break;
      default: break;
    }
    char* ip = nullptr;
    if (!f.via_proxy && curl_easy_getinfo(a.easy, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip != nullptr) {
      r.remote_ip = ip;
    }
  }
  // total: from the start of resolution to the end (our clock when the engine cut it).
  if (a.engine_outcome || a.easy == nullptr) {
    r.phases.total = duration_cast<microseconds>(now - a.started);
  } else {
    r.phases.total = a.resolve.value_or(microseconds(0)) + microseconds(total_us);
  }
  if (a.easy != nullptr) {
    curl_easy_cleanup(a.easy);  // frees the SSL_CTX that points at a.tls
    a.easy = nullptr;
  }
  r.tls = a.tls;
  if (!f.https) r.tls = {};

  Classified c = ClassifyTransfer(f);
  if (c.transfer_ok) {
    c = ClassifyResponse(r.http_status, m.probe.expect_status, m.body_contains, m.header_contains,
                         a.body, a.headers, a.body_capped);
  }
  r.outcome = c.outcome;
  r.detail = std::move(c.detail);
  r.bytes_read = static_cast<int64_t>(std::min<size_t>(a.body.size(), static_cast<size_t>(m.probe.max_body)));
  for (const auto& [name, value] : a.headers) {
    if (std::find(kSelectedHeaders.begin(), kSelectedHeaders.end(), name) != kSelectedHeaders.end()) {
      r.headers.emplace_back(name, value);
    }
  }
  if (r.http_status >= 500) {
    ResponseSample sample;
    sample.status = r.http_status;
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
  const int retries = a->job->monitor->probe.retries;
  result.confirmed = !failed || a->number >= retries;
  if (!result.confirmed) {
    bool is_stopping = false;
    {
      std::lock_guard lock(mu);
      is_stopping = stopping;
    }
    if (!is_stopping) {
      auto job = a->job;
      const int next = a->number + 1;
      timers.emplace(std::chrono::steady_clock::now() + a->job->monitor->probe.retry_delay,
                     [this, job, next] {
                       waiting.push_front({job, next});  // a retry goes before new probes
                       queued.fetch_add(1);
                     });
    }
  }
  if (a->job->on_result) a->job->on_result(std::move(result));
}

void HttpProber::Impl::PollOnce() {
  std::vector<curl_waitfd> fds;
  std::vector<std::pair<ares_channel, ares_socket_t>> owners;
  long timeout_ms = 1000;
  for (auto& [key, channel] : channels) {
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    const int bits = ares_getsock(channel, socks, ARES_GETSOCK_MAXNUM);
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
      const bool readable = ARES_GETSOCK_READABLE(bits, i);
      const bool writable = ARES_GETSOCK_WRITABLE(bits, i);
      if (!readable && !writable) continue;
      curl_waitfd w{};
      w.fd = socks[i];
      w.events = static_cast<short>((readable ? CURL_WAIT_POLLIN : 0) | (writable ? CURL_WAIT_POLLOUT : 0));
      fds.push_back(w);
      owners.emplace_back(channel, socks[i]);
    }
    timeval tv{};
    if (ares_timeout(channel, nullptr, &tv) != nullptr) {
      timeout_ms = std::min<long>(timeout_ms, tv.tv_sec * 1000 + tv.tv_usec / 1000);
    }
  }
  long curl_timeout = -1;
  curl_multi_timeout(multi, &curl_timeout);
  if (curl_timeout >= 0) timeout_ms = std::min(timeout_ms, curl_timeout);
  if (!timers.empty()) {
    const auto until = duration_cast<milliseconds>(timers.begin()->first - std::chrono::steady_clock::now()).count();
    timeout_ms = std::min<long>(timeout_ms, std::max<long>(0, static_cast<long>(until)));
  }
  if (next_tick != SystemTime::max()) {
    // Round up: waking a millisecond early would spin until the slot is due.
    const auto until = std::chrono::duration_cast<microseconds>(next_tick - clock.Now()).count();
    timeout_ms = std::min<long>(timeout_ms, std::max<long>(0, static_cast<long>((until + 999) / 1000)));
  }
  if (!waiting.empty() && in_flight.load() < options.max_in_flight) timeout_ms = 0;
  curl_multi_poll(multi, fds.data(), static_cast<unsigned>(fds.size()), static_cast<int>(timeout_ms), nullptr);

  for (size_t i = 0; i < fds.size(); ++i) {
    const auto& w = fds[i];
    if (w.revents == 0) continue;
    const bool r = (w.revents & (CURL_WAIT_POLLIN | CURL_WAIT_POLLPRI)) != 0;
    const bool wr = (w.revents & CURL_WAIT_POLLOUT) != 0;
    ares_process_fd(owners[i].first, r ? owners[i].second : ARES_SOCKET_BAD,
                    wr ? owners[i].second : ARES_SOCKET_BAD);
  }
  // Resolver timeouts and retransmissions.
  for (auto& [key, channel] : channels) ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);

  int running = 0;
  curl_multi_perform(multi, &running);
  int pending = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi, &pending)) {
    if (msg->msg != CURLMSG_DONE) continue;
    Attempt* a = nullptr;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &a);
    const CURLcode code = msg->data.result;
    if (a != nullptr) Finish(a->id, code);
  }
}

void HttpProber::Impl::Shutdown() {
  // Whatever is still running is dropped without a result (SPEC: not stored).
  for (auto& [id, a] : attempts) {
    if (a->easy != nullptr) {
      curl_multi_remove_handle(multi, a->easy);
      curl_easy_cleanup(a->easy);
      a->easy = nullptr;
    }
    in_flight.fetch_sub(1);
  }
  attempts.clear();
  for (auto& [key, channel] : channels) ares_destroy(channel);  // callbacks see no attempt
  channels.clear();
  timers.clear();
  queued.fetch_sub(waiting.size());
  waiting.clear();
}

}  // namespace gatewatch::probes
