#pragma once
// HttpProber::Impl, the engine thread's state, and the per-probe state it owns (MonitorPrep,
// Attempt). Private to the engine: only probes/engine*.cc include this. Impl's members are
// defined by job: http_prober.cc (lifecycle and the event loop), http_prober_admission.cc (which
// waiting probe starts, which is skipped; retries), http_prober_resolve.cc (c-ares),
// http_prober_transfer.cc (curl set-up and read-back) and http_prober_tls.cc (TLS facts).

#include <ares.h>
#include <curl/curl.h>
#include <sys/epoll.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "probes/classify.h"
#include "probes/http_prober.h"
#include "probes/url.h"

namespace gatewatch::probes {

constexpr int64_t kFingerprintBytes = 4096;    // body bytes read at least, for fingerprints

// What an epoll event belongs to, in its 64-bit user data: kind << 32 | fd.
enum class FdKind : uint32_t { kWake = 1, kCurl = 2, kAres = 3 };

// CURLOPT_SSL_CTX_FUNCTION: points the connection's SSL_CTX at `user` (the probe's TlsFacts)
// and has OpenSSL's verify callback fill it in.
CURLcode SslCtxCallback(CURL*, void* ssl_ctx, void* user);

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

  std::optional<std::chrono::microseconds> resolve;
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

  // Lifecycle and the event loop (http_prober.cc).
  void Signal();
  void Run();
  void MaybeTick();
  void FireTimers();
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

  // Admission, from the queues to a started attempt and back (http_prober_admission.cc).
  void TakeIncoming(bool* stop_now);
  void Enqueue(ProbeJob job);
  void StartWaiting();
  void ExpireWaiting(SteadyTime now);
  void Skip(const Waiting& w);
  void Queue(std::shared_ptr<const ProbeJob> job);
  static SlotKey KeyOf(const ProbeJob& job) { return {job.monitor.get(), job.region.get()}; }
  void Start(std::shared_ptr<const ProbeJob> job, int number);
  void Deliver(std::unique_ptr<Attempt> a, ProbeResult result);

  // Resolution (http_prober_resolve.cc).
  Channel* ChannelFor(const RegionConfig& region);
  void Resolve(Attempt& a);
  void OnResolved(uint64_t id, int status, ares_addrinfo* res);
  static void AresSocketCallback(void* data, ares_socket_t fd, int readable, int writable);

  // The curl transfer (http_prober_transfer.cc).
  std::shared_ptr<const MonitorPrep> PrepFor(const std::shared_ptr<const MonitorConfig>& m);
  CURL* AcquireHandle();
  void ReleaseHandle(CURL* e);
  void StartTransfer(Attempt& a, const std::string& ip);
  void SetRequestOptions(CURL* e, Attempt& a, long remaining_ms);
  void SetRouteOptions(CURL* e, Attempt& a, const std::string& ip);
  void Finish(uint64_t id, int curl_code);
  void ReadTransfer(Attempt& a, TransferFacts& f, ProbeResult& r, int curl_code);
  void Abort(uint64_t id, Outcome outcome, std::string detail);
  void CheckTlsDeadline(uint64_t id, Duration tls_timeout);
};

}  // namespace gatewatch::probes
