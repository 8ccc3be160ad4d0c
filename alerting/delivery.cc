#include "alerting/delivery.h"

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>
#include <utility>

#include "alerting/message_json.h"
#include "gatewatch_version.h"
#include "probes/log.h"
#include "storage/outbox.h"

namespace gatewatch::alerting {

namespace {

using namespace std::chrono_literals;
using std::chrono::duration_cast;
using std::chrono::milliseconds;
using storage::OutboxMessage;
using storage::RetryCause;
using RealSteady = std::chrono::steady_clock;

constexpr size_t kBodyKeep = 4096;   // response bytes kept: Discord's retry_after, the excerpt
constexpr size_t kExcerptMax = 200;  // bytes of response body in a log line or last_error
constexpr int kQueueFill = 32;       // pending messages of one lane held in memory
constexpr Duration kPoll = 1s;       // looks at the outbox at least this often
constexpr Duration kPruneEvery = 1min;
constexpr int kPruneBatch = 500;
constexpr size_t kRepostBatch = 256;        // alerts per Alertmanager re-post
constexpr Duration kMinRetryAfter = 100ms;  // "Retry-After: 0" must not become a hot loop
constexpr Duration kStorePause = 1s;        // a lane waits after a failed database call
constexpr int kMaxTurns = 100;              // messages one lane handles per loop turn
constexpr double kJitter = 0.2;             // backoff * [0.8, 1.2]
// The failure backoff stops growing here, whatever max_backoff says: a failing lane's oldest
// message is tried again at most this long after a failed attempt, so a receiver that recovers
// hears from its lane within this time (delivery.h: "Recovery").
constexpr Duration kMaxFailureBackoff = 30s;

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
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

// What must never appear in a result: the url, its path and query ("/services/T/B/X", where
// webhook urls keep their token), each long piece of those (a receiver may echo the bare
// token; ids and tokens are long, words like "services" and "webhooks" are not), the secret.
std::vector<std::string> SecretsOf(const NotifierConfig& config) {
  constexpr size_t kTokenMin = 16;
  std::vector<std::string> out = {config.url, config.secret};
  const std::string_view url = config.url;
  const size_t scheme = url.find("://");
  const size_t slash = url.find('/', scheme == std::string_view::npos ? 0 : scheme + 3);
  if (slash == std::string_view::npos) return out;
  const std::string_view path = url.substr(slash);
  out.emplace_back(path);
  size_t start = 0;
  for (size_t i = 0; i <= path.size(); ++i) {
    if (i < path.size() && std::string_view("/?&=#").find(path[i]) == std::string_view::npos) {
      continue;
    }
    if (i - start >= kTokenMin) out.emplace_back(path.substr(start, i - start));
    start = i + 1;
  }
  // Longest first, so a token inside the path does not break the path's replacement.
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.size() > b.size(); });
  return out;
}

void ReplaceAll(std::string& text, std::string_view what, std::string_view with) {
  if (what.empty()) return;
  for (size_t pos = text.find(what); pos != std::string::npos;
       pos = text.find(what, pos + with.size())) {
    text.replace(pos, what.size(), with);
  }
}

// One POST, in flight on the multi handle or performed alone by Send().
struct Request {
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  std::string body;                  // CURLOPT_POSTFIELDS does not copy
  std::string response;              // the first kBodyKeep bytes
  std::string retry_after;           // Retry-After of the final response, raw
  std::vector<std::string> secrets;  // never to appear in a result: url, its path, secret
  Duration timeout{0};
  RealSteady::time_point started{};
  // Delivery's bookkeeping.
  std::string lane;
  std::optional<OutboxMessage> message;  // nullopt: an Alertmanager re-post
  size_t reposted = 0;                   // alerts in a re-post

  Request() = default;
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;
  ~Request() {
    if (headers != nullptr) curl_slist_free_all(headers);
    if (easy != nullptr) curl_easy_cleanup(easy);
  }
};

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<Request*>(user);
  const size_t bytes = size * n;
  // Keep the start; read (and drop) the rest so the exchange ends normally.
  if (r->response.size() < kBodyKeep) {
    r->response.append(data, std::min(bytes, kBodyKeep - r->response.size()));
  }
  return bytes;
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<Request*>(user);
  const std::string_view line(data, size * n);
  if (line.starts_with("HTTP/")) {
    r->retry_after.clear();  // a new response (after a 1xx): only the final one counts
  } else if (const size_t colon = line.find(':');
             colon != std::string_view::npos && Lower(line.substr(0, colon)) == "retry-after") {
    r->retry_after = std::string(Trim(line.substr(colon + 1)));
  }
  return size * n;
}

Result<std::unique_ptr<Request>> NewRequest(const NotifierConfig& config, const Payload& payload,
                                            Duration timeout) {
  if (config.type == NotifierType::kConsole) {
    return Error("a console notifier prints to stdout; it has no url to send to");
  }
  if (config.url.empty()) return Error("notifier " + config.name + " has no url");
  GlobalInit();
  auto r = std::make_unique<Request>();
  r->easy = curl_easy_init();
  if (r->easy == nullptr) return Error("cannot create a curl handle");
  r->body = payload.body;
  r->timeout = timeout;
  r->secrets = SecretsOf(config);
  const std::string url = config.url + payload.url_suffix;

  std::vector<std::string> lines = {"Content-Type: " + payload.content_type,
                                    "Expect:",  // no 100-continue round trip (up to 1 s)
                                    std::string("User-Agent: gatewatch/") + kVersion};
  for (const auto& [name, value] : payload.headers) lines.push_back(name + ": " + value);
  for (const std::string& l : lines) {
    curl_slist* next = curl_slist_append(r->headers, l.c_str());
    if (next == nullptr) return Error("cannot build request headers");
    r->headers = next;
  }
  // A zero curl timeout means "none": one millisecond is the shortest real deadline.
  const long ms = static_cast<long>(std::max<int64_t>(1, timeout.count()));
  CURL* e = r->easy;
  curl_easy_setopt(e, CURLOPT_URL, url.c_str());  // copied by curl
  curl_easy_setopt(e, CURLOPT_POST, 1L);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body.data());
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r->body.size()));
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, ms);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);  // threads: no SIGALRM for resolver timeouts
  curl_easy_setopt(e, CURLOPT_PROXY, "");     // never a proxy from the environment
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r.get());
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, r.get());
  curl_easy_setopt(e, CURLOPT_PRIVATE, r.get());
  r->started = RealSteady::now();
  return r;
}

// Printable, bounded, with the request's secrets removed.
std::string Excerpt(std::string text, const std::vector<std::string>& secrets) {
  for (const std::string& s : secrets) ReplaceAll(text, s, "<redacted>");
  text = TruncateUtf8(Trim(text), kExcerptMax, kEllipsis);
  for (char& c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = ' ';
  }
  return text;
}

// curl's own words, never its error buffer: that one names the host and port.
std::string CurlReason(CURL* e, CURLcode code, Duration timeout) {
  if (code == CURLE_OPERATION_TIMEDOUT) return "timeout after " + FormatDuration(timeout);
  std::string reason = curl_easy_strerror(code);
  long os_errno = 0;
  if (curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK && os_errno != 0) {
    reason += std::string(": ") + std::strerror(static_cast<int>(os_errno));
  }
  return reason;
}

SendResult Finish(Request& r, CURLcode code, SystemTime now) {
  SendResult res;
  res.elapsed = duration_cast<milliseconds>(RealSteady::now() - r.started);
  if (code != CURLE_OK) {
    // A status seen before a timeout says nothing about the message: it did not complete.
    res.error = CurlReason(r.easy, code, r.timeout);
    return res;
  }
  long status = 0;
  curl_easy_getinfo(r.easy, CURLINFO_RESPONSE_CODE, &status);
  res.http_status = static_cast<int>(status);
  if (res.http_status == 0) res.error = "no HTTP status in the answer";
  if (!r.retry_after.empty()) res.retry_after = ParseRetryAfter(r.retry_after, now);
  if (res.http_status == 429) {
    if (auto discord = DiscordRetryAfter(r.response)) {
      res.retry_after = res.retry_after ? std::max(*res.retry_after, *discord) : *discord;
    }
  }
  res.body_excerpt = Excerpt(r.response, r.secrets);
  return res;
}

// What to store as last_error and log: short, no url.
std::string Reason(const SendResult& r) {
  if (!r.error.empty()) return r.error;
  std::string out = "http " + std::to_string(r.http_status);
  if (r.retry_after) out += " (retry after " + FormatDuration(*r.retry_after) + ")";
  if (!r.body_excerpt.empty()) out += ": " + r.body_excerpt;
  return out;
}

std::optional<int> MonthIndex(std::string_view m) {
  static constexpr std::array<std::string_view, 12> kMonths = {
      "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (size_t i = 0; i < kMonths.size(); ++i) {
    if (kMonths[i] == m) return static_cast<int>(i) + 1;
  }
  return std::nullopt;
}

}  // namespace

// --- One request ---------------------------------------------------------------------------

SendVerdict Classify(const SendResult& r) {
  if (!r.error.empty()) return SendVerdict::kRetry;
  if (r.http_status >= 200 && r.http_status < 300) return SendVerdict::kDelivered;
  if (r.http_status == 429) return SendVerdict::kRateLimited;
  if (r.http_status >= 500 || r.http_status == 408) return SendVerdict::kRetry;
  return SendVerdict::kRejected;
}

SendResult Send(const NotifierConfig& config, const Payload& payload, Duration timeout) {
  auto r = NewRequest(config, payload, timeout);
  if (!r) {
    SendResult res;
    res.error = r.error();
    return res;
  }
  const CURLcode code = curl_easy_perform((*r)->easy);
  return Finish(**r, code, std::chrono::system_clock::now());
}

std::optional<Duration> ParseRetryAfter(std::string_view value, SystemTime now) {
  value = Trim(value);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (value.size() > 9) return std::nullopt;  // over 30 years: not a real delay
    return Duration(std::stoll(std::string(value)) * 1000);
  }
  // IMF-fixdate, the only HTTP-date form senders may generate (RFC 9110 5.6.7).
  char weekday[4] = {}, month[4] = {}, zone[4] = {};
  int day = 0, year = 0, hour = 0, minute = 0, second = 0;
  const std::string text(value);
  if (std::sscanf(text.c_str(), "%3[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d %3s", weekday, &day,
                  month, &year, &hour, &minute, &second, zone) != 8 ||
      std::string_view(zone) != "GMT") {
    return std::nullopt;
  }
  const auto mon = MonthIndex(month);
  if (!mon || hour > 23 || minute > 59 || second > 60) return std::nullopt;
  const std::chrono::year_month_day ymd{std::chrono::year(year),
                                        std::chrono::month(static_cast<unsigned>(*mon)),
                                        std::chrono::day(static_cast<unsigned>(day))};
  if (!ymd.ok()) return std::nullopt;
  const SystemTime at = std::chrono::sys_days(ymd) + std::chrono::hours(hour) +
                        std::chrono::minutes(minute) + std::chrono::seconds(second);
  if (at <= now) return Duration(0);
  return std::chrono::ceil<Duration>(at - now);
}

std::optional<Duration> DiscordRetryAfter(std::string_view body) {
  const auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  const auto it = j.find("retry_after");
  if (it == j.end() || !it->is_number()) return std::nullopt;
  const double seconds = it->get<double>();
  if (!std::isfinite(seconds) || seconds < 0 || seconds > 1e7) return std::nullopt;
  return Duration(static_cast<int64_t>(std::ceil(seconds * 1000)));
}

// --- The delivery thread -------------------------------------------------------------------

namespace {

using PairKey = std::pair<std::string, std::string>;  // alert, monitor

// One notifier's ordered line of messages, and (Alertmanager) its active alerts. Delivery
// thread only.
struct Lane {
  std::string name;
  std::optional<NotifierConfig> config;  // nullopt: not configured (its messages are dropped)
  std::unique_ptr<Notifier> notifier;
  // A prefix of this notifier's pending messages, lowest id first; only this thread changes
  // pending rows, and new rows get higher ids, so the prefix stays exact.
  std::deque<OutboxMessage> queue;
  bool stale = true;  // the outbox may hold pending messages beyond `queue`
  std::unique_ptr<Request> in_flight;
  SteadyTime next_send{};     // min_interval after the last request started
  SteadyTime paused_until{};  // after a database error
  // Alertmanager.
  std::map<PairKey, Message> active;
  SteadyTime next_repost{};
  std::vector<PairKey> round;  // the re-post round in progress
  size_t round_pos = 0;
  bool refresh_failing = false;

  bool IsAlertmanager() const {
    return config.has_value() && config->type == NotifierType::kAlertmanager;
  }
};

}  // namespace

struct Delivery::Impl {
  Impl(DeliveryOptions o, const Clock& c) : options(std::move(o)), clock(c) {}
  ~Impl() {
    if (multi != nullptr) curl_multi_cleanup(multi);
  }

  void Run(std::promise<Result<void>>& started);
  void Loop();
  void ApplyConfig(std::vector<NotifierConfig> configs);
  void LoadActive(Lane& lane);
  void Refresh();
  bool Refill(Lane& lane);
  void Pump(Lane& lane);
  bool Step(Lane& lane);
  void StartRequest(Lane& lane, const Payload& payload, std::optional<OutboxMessage> message,
                    size_t reposted);
  void MaybeRepost(Lane& lane);
  void Perform();
  void OnSent(Lane& lane, const OutboxMessage& m, const SendResult& res);
  void OnReposted(Lane& lane, size_t alerts, const SendResult& res);
  bool Delivered(Lane& lane, const OutboxMessage& m);
  bool Retry(Lane& lane, const OutboxMessage& m, Duration delay, RetryCause cause,
             const std::string& reason, const char* word);
  bool GiveUp(Lane& lane, const OutboxMessage& m, const char* word, const std::string& reason);
  void Track(Lane& lane, const OutboxMessage& m, bool delivered);
  void PopFront(Lane& lane, int64_t id);
  // An alertmanager lane's re-post interval: the notifier's `repost`, else the option.
  Duration RepostOf(const Lane& lane) const {
    return lane.config && lane.config->repost ? *lane.config->repost : options.alertmanager_repost;
  }
  void MaybePrune();
  void Poll(bool stopping, RealSteady::time_point deadline);
  void AbandonInFlight();
  Duration Backoff(int failures);
  Lane& LaneFor(const std::string& name);
  void StoreFailed(Lane* lane, const char* op, const std::string& error);
  void Count(const std::string& notifier, const char* word, uint64_t n = 1);
  void ObserveLatency(const std::string& notifier, double seconds);
  void Print(const std::string& text);

  DeliveryOptions options;
  const Clock& clock;
  CURLM* multi = nullptr;  // created before the thread, freed after it; Wake() uses it
  std::thread thread;

  std::atomic<bool> woken{false};
  std::mutex control_mu;  // guards new_config, stop, stop_deadline
  std::optional<std::vector<NotifierConfig>> new_config;
  bool stop = false;
  RealSteady::time_point stop_deadline{};

  mutable std::mutex stats_mu;  // guards stats
  std::map<std::string, NotifierStats> stats;
  std::atomic<int64_t> pending{0};

  // Delivery thread only.
  std::unique_ptr<storage::AlertStore> store;
  std::map<std::string, Lane> lanes;
  std::mt19937_64 rng{std::random_device{}()};
  SteadyTime next_refresh{}, next_prune{};
  int in_flight = 0;
  bool store_failing = false;  // one log line per streak of database errors
};

void Delivery::Impl::Run(std::promise<Result<void>>& started) {
  auto opened = storage::AlertStore::Open(options.db_path, clock);
  if (!opened) {
    started.set_value(Error("delivery: " + opened.error()));
    return;
  }
  store = std::move(*opened);
  ApplyConfig(std::move(options.notifiers));
  Refresh();  // Pending() is right from the start
  started.set_value({});
  Loop();
  AbandonInFlight();
  store.reset();  // closed on its own thread
}

void Delivery::Impl::Loop() {
  for (;;) {
    std::optional<std::vector<NotifierConfig>> configs;
    bool stopping = false;
    RealSteady::time_point deadline{};
    {
      std::lock_guard lock(control_mu);
      configs.swap(new_config);
      stopping = stop;
      deadline = stop_deadline;
    }
    if (configs) ApplyConfig(std::move(*configs));
    if (stopping) {
      if (in_flight == 0 || RealSteady::now() >= deadline) return;
    } else {
      // Clear the flag before looking, so a commit during the look wakes the next turn.
      if (woken.exchange(false) || clock.Steady() >= next_refresh) Refresh();
      for (auto& [name, lane] : lanes) Pump(lane);
      MaybePrune();
      std::erase_if(lanes, [](const auto& entry) {
        const Lane& l = entry.second;
        return !l.config && !l.in_flight && l.queue.empty() && !l.stale;
      });
    }
    Poll(stopping, deadline);
    Perform();
  }
}

void Delivery::Impl::ApplyConfig(std::vector<NotifierConfig> configs) {
  std::set<std::string> names;
  for (NotifierConfig& c : configs) {
    names.insert(c.name);
    Lane& lane = LaneFor(c.name);
    const bool was_alertmanager = lane.IsAlertmanager();
    lane.notifier = MakeNotifier(c);
    lane.config = std::move(c);
    lane.stale = true;
    if (lane.IsAlertmanager() && !was_alertmanager) LoadActive(lane);
    if (!lane.IsAlertmanager()) {
      lane.active.clear();
      lane.round.clear();
      lane.round_pos = 0;
    }
    std::lock_guard lock(stats_mu);
    stats[lane.name];  // listed from now on, with no results yet
  }
  for (auto& [name, lane] : lanes) {
    if (names.count(name) != 0) continue;
    lane.config.reset();  // a request in flight finishes; the rest is dropped
    lane.notifier.reset();
    lane.active.clear();
    lane.round.clear();
    lane.round_pos = 0;
  }
}

void Delivery::Impl::LoadActive(Lane& lane) {
  lane.active.clear();
  lane.round.clear();
  lane.round_pos = 0;
  auto rows = store->ActiveAlerts(std::vector<std::string>{lane.name});
  if (!rows) {
    log::Error("alertmanager alerts not restored: database error")
        .Kv("notifier", lane.name)
        .Kv("error", rows.error());
    return;
  }
  for (const OutboxMessage& row : *rows) {
    auto m = MessageFromJson(row.message);
    if (!m) {
      log::Error("alertmanager alert not restored")
          .Kv("notifier", lane.name)
          .Kv("id", row.id)
          .Kv("error", m.error());
      continue;
    }
    lane.active[{row.alert, row.monitor}] = std::move(*m);
  }
  // At once: the daemon may have been down past the alerts' endsAt.
  lane.next_repost = clock.Steady();
  if (!lane.active.empty()) {
    log::Info("alertmanager alerts restored for re-posting")
        .Kv("notifier", lane.name)
        .Kv("alerts", static_cast<uint64_t>(lane.active.size()));
  }
}

void Delivery::Impl::Refresh() {
  next_refresh = clock.Steady() + kPoll;
  auto counts = store->PendingByNotifier();
  if (!counts) {
    StoreFailed(nullptr, "pending query", counts.error());
    return;
  }
  if (store_failing) log::Info("delivery: database works again");
  store_failing = false;
  int64_t total = 0;
  for (const auto& [name, n] : *counts) {
    total += n;
    Lane& lane = LaneFor(name);
    if (n > static_cast<int64_t>(lane.queue.size())) lane.stale = true;
  }
  pending.store(total);
}

bool Delivery::Impl::Refill(Lane& lane) {
  auto rows = store->PendingOf(lane.name, kQueueFill);
  if (!rows) {
    StoreFailed(&lane, "pending query", rows.error());
    return false;
  }
  // Rows already held (the queue is a prefix) are skipped; the rest is appended in order.
  const int64_t last = lane.queue.empty() ? 0 : lane.queue.back().id;
  for (OutboxMessage& m : *rows) {
    if (m.id > last) lane.queue.push_back(std::move(m));
  }
  lane.stale = static_cast<int>(rows->size()) == kQueueFill;
  return true;
}

void Delivery::Impl::Pump(Lane& lane) {
  if (clock.Steady() < lane.paused_until) return;
  for (int turn = 0; turn < kMaxTurns && !lane.in_flight; ++turn) {
    if (lane.queue.empty() && lane.stale && !Refill(lane)) return;
    if (lane.queue.empty() || !Step(lane)) break;
  }
  if (!lane.in_flight && lane.queue.empty() && !lane.stale) MaybeRepost(lane);
}

// Handles the lane's oldest message: gives it up, leaves it waiting, prints it or starts its
// request. True when it left the lane and the next one may be looked at now.
bool Delivery::Impl::Step(Lane& lane) {
  const SystemTime now = clock.Now();
  const SteadyTime steady = clock.Steady();
  {
    const OutboxMessage& head = lane.queue.front();
    const bool expired = lane.config && now - head.created_at > lane.config->max_age;
    if (lane.config && !expired && (head.next_attempt_at > now || steady < lane.next_send)) {
      return false;  // the common case on every turn: nothing to do yet, nothing copied
    }
  }
  // A copy: the transitions below pop the queue's front.
  const OutboxMessage head = lane.queue.front();
  if (!lane.config) {
    return GiveUp(lane, head, "dropped", "unknown notifier (not in the config)");
  }
  if (now - head.created_at > lane.config->max_age) {
    std::string reason = "older than max_age " + FormatDuration(lane.config->max_age);
    if (!head.last_error.empty()) reason += "; last error: " + head.last_error;
    return GiveUp(lane, head, "gave_up", reason);
  }
  auto message = MessageFromJson(head.message);
  if (!message) return GiveUp(lane, head, "rejected", message.error());
  const Payload payload = lane.notifier->Build(*message);
  lane.next_send = steady + lane.config->EffectiveMinInterval();
  if (lane.config->type == NotifierType::kConsole) {
    Print(payload.body);
    return Delivered(lane, head);
  }
  StartRequest(lane, payload, head, 0);
  return false;
}

void Delivery::Impl::StartRequest(Lane& lane, const Payload& payload,
                                  std::optional<OutboxMessage> message, size_t reposted) {
  auto req = NewRequest(*lane.config, payload, lane.config->timeout);
  CURLMcode added = CURLM_OK;
  if (req) {
    (*req)->lane = lane.name;
    (*req)->message = message;
    (*req)->reposted = reposted;
    added = curl_multi_add_handle(multi, (*req)->easy);
  }
  if (!req || added != CURLM_OK) {  // out of memory or handles: a failed attempt
    SendResult failed;
    failed.error =
        req ? std::string("cannot start a request: ") + curl_multi_strerror(added) : req.error();
    if (message) {
      OnSent(lane, *message, failed);
    } else {
      OnReposted(lane, reposted, failed);
    }
    return;
  }
  lane.in_flight = std::move(*req);
  ++in_flight;
}

void Delivery::Impl::MaybeRepost(Lane& lane) {
  if (!lane.IsAlertmanager() || lane.active.empty()) return;
  const SteadyTime steady = clock.Steady();
  if (steady < lane.next_repost || steady < lane.next_send) return;
  if (lane.round.empty()) {
    for (const auto& [key, m] : lane.active) lane.round.push_back(key);
    lane.round_pos = 0;
  }
  const SystemTime now = clock.Now();
  Payload batch;
  std::string items;
  size_t n = 0;
  while (lane.round_pos < lane.round.size() && n < kRepostBatch) {
    auto it = lane.active.find(lane.round[lane.round_pos++]);
    if (it == lane.active.end()) continue;  // resolved since the round began
    Message m = it->second;
    m.at = now;  // endsAt = now + 5 min
    Payload p = lane.notifier->Build(m);
    // Alertmanager takes an array of alerts; each body is a one-element array.
    if (p.body.size() < 2 || p.body.front() != '[' || p.body.back() != ']') {
      log::Error("alertmanager re-post skipped: payload is not a JSON array")
          .Kv("notifier", lane.name)
          .Kv("alert", m.alert)
          .Kv("monitor", m.monitor);
      continue;
    }
    if (n++ > 0) items += ',';
    items.append(p.body, 1, p.body.size() - 2);
    batch.url_suffix = p.url_suffix;
    batch.content_type = p.content_type;
  }
  if (lane.round_pos >= lane.round.size()) {  // round complete: the next one in an interval
    lane.round.clear();
    lane.round_pos = 0;
    lane.next_repost = steady + RepostOf(lane);
  }
  if (n == 0) return;
  batch.body = "[" + items + "]";
  lane.next_send = steady + lane.config->EffectiveMinInterval();
  StartRequest(lane, batch, std::nullopt, n);
}

void Delivery::Impl::Perform() {
  int running = 0;
  curl_multi_perform(multi, &running);
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL* easy = msg->easy_handle;
    const CURLcode code = msg->data.result;  // read before the handle is removed
    Request* raw = nullptr;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &raw);
    curl_multi_remove_handle(multi, easy);
    --in_flight;
    Lane& lane = lanes.at(raw->lane);  // a lane with a request in flight is never erased
    std::unique_ptr<Request> req = std::move(lane.in_flight);
    const SendResult res = Finish(*req, code, clock.Now());
    if (req->message) {
      OnSent(lane, *req->message, res);
    } else {
      OnReposted(lane, req->reposted, res);
    }
  }
}

void Delivery::Impl::OnSent(Lane& lane, const OutboxMessage& m, const SendResult& res) {
  switch (Classify(res)) {
    case SendVerdict::kDelivered:
      Delivered(lane, m);
      return;
    case SendVerdict::kRetry: {
      Duration delay = Backoff(m.failures);
      // A 503 that says when to come back is not asked sooner.
      if (res.retry_after) delay = std::max(delay, std::min(*res.retry_after, options.max_backoff));
      Retry(lane, m, delay, RetryCause::kFailure, Reason(res), "retry");
      return;
    }
    case SendVerdict::kRateLimited: {
      // An appointment, kept to the millisecond: no jitter, and the failure backoff stays.
      const Duration asked = res.retry_after ? *res.retry_after : Backoff(m.failures);
      Retry(lane, m,
            std::clamp(asked, kMinRetryAfter, std::max(options.max_backoff, kMinRetryAfter)),
            RetryCause::kRateLimited, Reason(res), "rate_limited");
      return;
    }
    case SendVerdict::kRejected:
      GiveUp(lane, m, "rejected", Reason(res));
      return;
  }
}

void Delivery::Impl::OnReposted(Lane& lane, size_t alerts, const SendResult& res) {
  if (Classify(res) == SendVerdict::kDelivered) {
    Count(lane.name, "refreshed", alerts);
    if (lane.refresh_failing)
      log::Info("alertmanager re-post works again").Kv("notifier", lane.name);
    lane.refresh_failing = false;
    return;
  }
  Count(lane.name, "refresh_failed", alerts);
  if (res.retry_after) {
    lane.next_send =
        std::max(lane.next_send, clock.Steady() + std::min(*res.retry_after, options.max_backoff));
  }
  if (!lane.refresh_failing) {
    log::Warn("alertmanager re-post failed; repeated at the next tick")
        .Kv("notifier", lane.name)
        .Kv("alerts", static_cast<uint64_t>(alerts))
        .Kv("error", Reason(res));
  }
  lane.refresh_failing = true;
}

bool Delivery::Impl::Delivered(Lane& lane, const OutboxMessage& m) {
  const SystemTime now = clock.Now();
  if (auto r = store->MarkDelivered(m.id, now); !r) {
    // The receiver has it; unrecorded, it will be sent again (at-least-once).
    StoreFailed(&lane, "mark delivered", r.error());
    return false;
  }
  PopFront(lane, m.id);
  Count(lane.name, "delivered");
  ObserveLatency(lane.name, std::chrono::duration<double>(now - m.created_at).count());
  if (lane.IsAlertmanager()) Track(lane, m, true);
  if (m.attempts > 0) {
    log::Debug("notification delivered after retries")
        .Kv("notifier", lane.name)
        .Kv("id", m.id)
        .Kv("attempts", m.attempts + 1);
  }
  return true;
}

bool Delivery::Impl::Retry(Lane& lane, const OutboxMessage& m, Duration delay, RetryCause cause,
                           const std::string& reason, const char* word) {
  const SystemTime next = clock.Now() + delay;
  if (auto r = store->Reschedule(m.id, next, reason, cause); !r) {
    StoreFailed(&lane, "reschedule", r.error());
    return false;
  }
  Count(lane.name, word);
  if (m.attempts == 0) {
    log::Warn("notification failed; will retry")
        .Kv("notifier", lane.name)
        .Kv("id", m.id)
        .Kv("alert", m.alert)
        .Kv("monitor", m.monitor)
        .Kv("kind", m.kind)
        .Kv("error", reason)
        .Kv("retry_in", FormatDuration(delay));
  }
  if (!lane.queue.empty() && lane.queue.front().id == m.id) {
    OutboxMessage& head = lane.queue.front();
    head.attempts = m.attempts + 1;
    head.failures = m.failures + (cause == RetryCause::kFailure ? 1 : 0);
    head.next_attempt_at = next;
    head.last_error = reason;
  }
  return true;
}

bool Delivery::Impl::GiveUp(Lane& lane, const OutboxMessage& m, const char* word,
                            const std::string& reason) {
  if (auto r = store->GiveUp(m.id, clock.Now(), reason); !r) {
    StoreFailed(&lane, "give up", r.error());
    return false;
  }
  PopFront(lane, m.id);
  Count(lane.name, word);
  log::Error("notification given up")
      .Kv("notifier", lane.name)
      .Kv("id", m.id)
      .Kv("alert", m.alert)
      .Kv("monitor", m.monitor)
      .Kv("kind", m.kind)
      .Kv("result", word)
      .Kv("attempts", m.attempts)
      .Kv("reason", reason);
  if (lane.IsAlertmanager()) Track(lane, m, false);
  return true;
}

// Keeps the Alertmanager active set in step with what the receiver was told.
void Delivery::Impl::Track(Lane& lane, const OutboxMessage& m, bool delivered) {
  if (m.kind == "test") return;  // one-off: Alertmanager lets it expire
  const PairKey key{m.alert, m.monitor};
  if (!delivered || m.kind == "resolved") {
    lane.active.erase(key);
    return;
  }
  auto message = MessageFromJson(m.message);  // it was just rendered from this text
  if (!message) return;
  // The first active alert starts the clock; later ones join the running rounds.
  if (lane.active.empty()) lane.next_repost = clock.Steady() + RepostOf(lane);
  lane.active[key] = std::move(*message);
}

void Delivery::Impl::PopFront(Lane& lane, int64_t id) {
  if (!lane.queue.empty() && lane.queue.front().id == id) lane.queue.pop_front();
  int64_t n = pending.load();
  while (n > 0 && !pending.compare_exchange_weak(n, n - 1)) {
  }
}

void Delivery::Impl::MaybePrune() {
  const SteadyTime steady = clock.Steady();
  if (steady < next_prune) return;
  auto n = store->PruneDelivered(clock.Now() - options.prune_after, kPruneBatch);
  if (!n) {
    StoreFailed(nullptr, "prune", n.error());
    next_prune = steady + kPruneEvery;
    return;
  }
  // A full batch means more is waiting: the next turn continues, a little at a time.
  next_prune = *n == kPruneBatch ? steady : steady + kPruneEvery;
}

void Delivery::Impl::Poll(bool stopping, RealSteady::time_point deadline) {
  const SteadyTime steady = clock.Steady();
  const SystemTime now = clock.Now();
  SteadyTime until = stopping ? steady + kPoll : std::min(next_refresh, next_prune);
  if (!stopping) {
    for (const auto& [name, lane] : lanes) {
      if (lane.in_flight) continue;  // curl wakes the poll for its own deadlines
      SteadyTime due = SteadyTime::max();
      if (!lane.queue.empty()) {
        const OutboxMessage& head = lane.queue.front();
        if (!lane.config) {
          due = steady;
        } else {
          const auto wait = std::max(head.next_attempt_at - now, SystemTime::duration(0));
          due = std::max(steady + duration_cast<SteadyTime::duration>(wait), lane.next_send);
          const auto expiry = head.created_at + lane.config->max_age - now;
          due = std::min(due, steady + duration_cast<SteadyTime::duration>(
                                           std::max(expiry, SystemTime::duration(0))));
        }
      } else if (lane.stale) {
        due = steady;
      } else if (lane.IsAlertmanager() && !lane.active.empty()) {
        due = std::max(lane.next_repost, lane.next_send);
      }
      until = std::min(until, std::max(due, lane.paused_until));
    }
  }
  // Rounded up: a wait truncated to 0 ms would spin until the due time.
  auto wait = std::clamp(std::chrono::ceil<milliseconds>(until - steady), milliseconds(0), kPoll);
  if (stopping) {
    wait = std::min(
        wait, std::max(milliseconds(0), duration_cast<milliseconds>(deadline - RealSteady::now())));
  }
  curl_multi_poll(multi, nullptr, 0, static_cast<int>(wait.count()), nullptr);
}

void Delivery::Impl::AbandonInFlight() {
  int abandoned = 0;
  for (auto& [name, lane] : lanes) {
    if (!lane.in_flight) continue;
    curl_multi_remove_handle(multi, lane.in_flight->easy);
    lane.in_flight.reset();
    ++abandoned;
  }
  in_flight = 0;
  if (abandoned > 0) {
    log::Warn("delivery stopped with requests in flight; their messages stay pending")
        .Kv("requests", abandoned);
  }
}

Duration Delivery::Impl::Backoff(int failures) {
  const double base = static_cast<double>(options.base_backoff.count());
  const double cap = static_cast<double>(std::min(options.max_backoff, kMaxFailureBackoff).count());
  const double grown = std::min(cap, base * std::pow(2.0, std::clamp(failures, 0, 40)));
  std::uniform_real_distribution<double> jitter(1 - kJitter, 1 + kJitter);
  const double ms = std::min(cap, grown * jitter(rng));
  return Duration(std::max<int64_t>(1, static_cast<int64_t>(ms)));
}

Lane& Delivery::Impl::LaneFor(const std::string& name) {
  auto [it, inserted] = lanes.try_emplace(name);
  if (inserted) it->second.name = name;
  return it->second;
}

void Delivery::Impl::StoreFailed(Lane* lane, const char* op, const std::string& error) {
  if (!store_failing) {
    log::Error("delivery: database error; retrying").Kv("op", op).Kv("error", error);
  }
  store_failing = true;
  if (lane == nullptr) return;
  // The lane's view may be off now: read it again after a pause (no hot loop on a broken
  // database; a message whose delivery was not recorded goes again: at-least-once).
  lane->queue.clear();
  lane->stale = true;
  lane->paused_until = clock.Steady() + kStorePause;
}

void Delivery::Impl::Count(const std::string& notifier, const char* word, uint64_t n) {
  std::lock_guard lock(stats_mu);
  stats[notifier].results[word] += n;
}

void Delivery::Impl::ObserveLatency(const std::string& notifier, double seconds) {
  seconds = std::max(0.0, seconds);
  size_t i = 0;
  while (i < kDeliveryLatencyBuckets.size() && seconds > kDeliveryLatencyBuckets[i]) ++i;
  std::lock_guard lock(stats_mu);
  NotifierStats& s = stats[notifier];
  ++s.latency_buckets[i];
  s.latency_sum_seconds += seconds;
  ++s.latency_count;
}

void Delivery::Impl::Print(const std::string& text) {
  if (options.console_out) {
    options.console_out(text);
    return;
  }
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

// --- Delivery ------------------------------------------------------------------------------

Delivery::Delivery(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Delivery::~Delivery() { Stop(Duration(0)); }

Result<std::unique_ptr<Delivery>> Delivery::Start(DeliveryOptions options, const Clock& clock) {
  if (options.base_backoff <= Duration(0) || options.max_backoff < options.base_backoff) {
    return Error("delivery: need 0 < base_backoff <= max_backoff");
  }
  if (options.alertmanager_repost <= Duration(0) || options.prune_after <= Duration(0)) {
    return Error("delivery: alertmanager_repost and prune_after must be positive");
  }
  std::set<std::string> names;
  for (const NotifierConfig& c : options.notifiers) {
    if (!names.insert(c.name).second) {
      return Error("delivery: notifier name \"" + c.name + "\" is used twice");
    }
  }
  GlobalInit();
  auto impl = std::make_unique<Impl>(std::move(options), clock);
  impl->multi = curl_multi_init();
  if (impl->multi == nullptr) return Error("delivery: cannot create a curl multi handle");
  std::promise<Result<void>> started;
  auto result = started.get_future();
  Impl* raw = impl.get();
  // The thread owns the promise: set_value() may still touch it after get() returned here.
  impl->thread = std::thread([raw, p = std::move(started)]() mutable { raw->Run(p); });
  Result<void> r = result.get();
  if (!r) {
    impl->thread.join();
    return Error(r.error());
  }
  return std::unique_ptr<Delivery>(new Delivery(std::move(impl)));
}

void Delivery::Wake() {
  impl_->woken.store(true);
  curl_multi_wakeup(impl_->multi);
}

void Delivery::Reconfigure(std::vector<NotifierConfig> notifiers) {
  {
    std::lock_guard lock(impl_->control_mu);
    impl_->new_config = std::move(notifiers);
  }
  curl_multi_wakeup(impl_->multi);
}

void Delivery::Stop(Duration grace) {
  {
    std::lock_guard lock(impl_->control_mu);
    if (!impl_->stop) {
      impl_->stop = true;
      impl_->stop_deadline = RealSteady::now() + grace;
    }
  }
  curl_multi_wakeup(impl_->multi);
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::map<std::string, NotifierStats> Delivery::Stats() const {
  std::lock_guard lock(impl_->stats_mu);
  return impl_->stats;
}

int64_t Delivery::Pending() const { return impl_->pending.load(); }

}  // namespace gatewatch::alerting
