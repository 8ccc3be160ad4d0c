#include "daemon/metrics.h"

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <optional>
#include <sstream>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "daemon/http_server.h"
#include "daemon/metrics_extensions.h"
#include "daemon/metrics_families.h"
#include "daemon/metrics_text.h"

namespace gatewatch::daemon {

using namespace internal;

namespace {

using probes::Emitter;
using probes::Reason;

constexpr size_t kPhaseCount = 6;
constexpr std::array<std::string_view, kPhaseCount> kPhaseNames = {
    "resolve", "connect", "tls", "processing", "transfer", "total"};
constexpr int64_t kNoPhase = -1;

// Monitors rendered per hold of the state mutex: ~12 series each, well under a
// millisecond per slice, so Observe() on the engine thread never waits for a scrape.
constexpr size_t kSliceMonitors = 256;

void AppendSeconds(std::string& out, int64_t us) {
  AppendDouble(out, static_cast<double>(us) / 1e6);
}

// `name{labels` — the caller adds any further labels, then CloseSample().
void OpenSample(std::string& out, std::string_view name, std::string_view labels) {
  out += name;
  out += '{';
  out += labels;
}
void CloseSample(std::string& out) { out += "} "; }

int64_t UnixSeconds(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

struct CodeCount {
  int code;
  uint64_t count;
};

struct EmitterCount {
  Emitter emitter;
  Reason reason;
  uint64_t count;
};

// One monitor x region. Counters at zero and codes never seen have no series.
struct PairState {
  std::string region;      // raw, for lookup
  std::string labels;      // `monitor="...",region="..."`, escaped once
  bool confirmed = false;  // a confirmed result was seen: the gauges exist
  bool success = false;
  int http_status = 0;
  std::array<int64_t, kPhaseCount> phase_us;  // of the last confirmed result; kNoPhase = absent
  bool has_expiry = false;
  int64_t expiry_s = 0;
  std::array<uint64_t, probes::kOutcomeNames.size()> outcomes{};
  std::vector<CodeCount> codes;        // sorted by code
  std::vector<EmitterCount> emitters;  // sorted by (emitter, reason)

  PairState() { phase_us.fill(kNoPhase); }
};

struct MonitorState {
  std::string monitor_label;       // `monitor="..."`, escaped once
  std::vector<PairState> regions;  // sorted by region
};

void SetPhases(const probes::PhaseTimings& p, std::array<int64_t, kPhaseCount>& out) {
  const std::array<const std::optional<std::chrono::microseconds>*, kPhaseCount> in = {
      &p.resolve, &p.connect, &p.tls, &p.processing, &p.transfer, &p.total};
  for (size_t i = 0; i < kPhaseCount; ++i) out[i] = *in[i] ? (*in[i])->count() : kNoPhase;
}

// Appends the series of one monitor to the family buffers.
void RenderMonitor(const MonitorState& m, std::array<std::string, kFamilyCount>& out) {
  bool has_expiry = false;
  int64_t expiry_s = 0;
  for (const PairState& p : m.regions) {
    if (p.confirmed) {
      std::string& s = out[kSuccess];
      OpenSample(s, kFamilies[kSuccess].name, p.labels);
      CloseSample(s);
      s += p.success ? "1\n" : "0\n";

      std::string& ph = out[kPhase];
      for (size_t i = 0; i < kPhaseCount; ++i) {
        if (p.phase_us[i] == kNoPhase) continue;
        OpenSample(ph, kFamilies[kPhase].name, p.labels);
        ph += ",phase=\"";
        ph += kPhaseNames[i];
        ph += '"';
        CloseSample(ph);
        AppendSeconds(ph, p.phase_us[i]);
        ph += '\n';
      }

      std::string& st = out[kStatus];
      OpenSample(st, kFamilies[kStatus].name, p.labels);
      CloseSample(st);
      AppendInt(st, p.http_status);
      st += '\n';
    }

    std::string& pt = out[kProbesTotal];
    for (size_t i = 0; i < p.outcomes.size(); ++i) {
      if (p.outcomes[i] == 0) continue;
      OpenSample(pt, kFamilies[kProbesTotal].name, p.labels);
      pt += ",outcome=\"";
      pt += probes::kOutcomeNames[i];
      pt += '"';
      CloseSample(pt);
      AppendInt(pt, p.outcomes[i]);
      pt += '\n';
    }

    std::string& rt = out[kResponsesTotal];
    for (const CodeCount& c : p.codes) {
      OpenSample(rt, kFamilies[kResponsesTotal].name, p.labels);
      rt += ",code=\"";
      AppendInt(rt, c.code);
      rt += '"';
      CloseSample(rt);
      AppendInt(rt, c.count);
      rt += '\n';
    }

    std::string& et = out[kEmitterTotal];
    for (const EmitterCount& e : p.emitters) {
      OpenSample(et, kFamilies[kEmitterTotal].name, p.labels);
      et += ",emitter=\"";
      et += probes::ToString(e.emitter);
      et += "\",reason=\"";
      et += probes::ToString(e.reason);
      et += '"';
      CloseSample(et);
      AppendInt(et, e.count);
      et += '\n';
    }

    if (p.has_expiry && (!has_expiry || p.expiry_s < expiry_s)) {
      has_expiry = true;
      expiry_s = p.expiry_s;
    }
  }
  if (has_expiry) {
    std::string& tl = out[kTlsExpiry];
    OpenSample(tl, kFamilies[kTlsExpiry].name, m.monitor_label);
    CloseSample(tl);
    AppendInt(tl, expiry_s);
    tl += '\n';
  }
}

prometheus::MetricFamily OneValue(std::string name, std::string help, prometheus::MetricType type,
                                  double value,
                                  std::vector<prometheus::ClientMetric::Label> labels = {}) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  if (type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f.metric.push_back(std::move(m));
  return f;
}

prometheus::MetricFamily Gauge(std::string name, std::string help, double value,
                               std::vector<prometheus::ClientMetric::Label> labels = {}) {
  return OneValue(std::move(name), std::move(help), prometheus::MetricType::Gauge, value,
                  std::move(labels));
}

prometheus::MetricFamily Counter(std::string name, std::string help, uint64_t value) {
  return OneValue(std::move(name), std::move(help), prometheus::MetricType::Counter,
                  static_cast<double>(value));
}

}  // namespace

struct Metrics::State {
  mutable std::mutex mu;  // guards monitors, index and retained
  // Sorted, so that Render() can resume a walk after releasing the mutex.
  std::map<std::string, MonitorState, std::less<>> monitors;
  // The same states by name for Observe(): a hash lookup instead of a tree walk (~5x
  // fewer cache misses with 10,000 monitors). Keys view the map's keys (nodes are stable).
  std::unordered_map<std::string_view, MonitorState*> index;
  // Observe() calls blocked on mu; Render() lets them in between slices.
  std::atomic<int> waiting{0};
  // The last RetainMonitors() set; a result of any other monitor is ignored. Empty
  // until the first RetainMonitors(): every monitor is accepted.
  std::optional<std::set<std::string, std::less<>>> retained;
};

void FillLag(const LagHistogram& lag, SelfStats& out) {
  out.lag_buckets = lag.Buckets();
  out.lag_sum_seconds = lag.SumSeconds();
}

Metrics::Metrics(std::string version)
    : version_(std::move(version)),
      state_(std::make_unique<State>()),
      extensions_(std::make_unique<Extensions>()) {}

Metrics::~Metrics() = default;

void Metrics::Observe(const probes::ProbeResult& r) {
  std::unique_lock lock(state_->mu, std::try_to_lock);
  if (!lock.owns_lock()) {  // a scrape holds it: ask for it after this slice
    state_->waiting.fetch_add(1, std::memory_order_relaxed);
    lock.lock();
    state_->waiting.fetch_sub(1, std::memory_order_relaxed);
  }
  auto iit = state_->index.find(std::string_view(r.monitor));
  if (iit == state_->index.end()) {
    // A probe in flight across a reload must not bring a removed monitor back.
    if (state_->retained && state_->retained->count(r.monitor) == 0) return;
    MonitorState fresh;
    fresh.monitor_label = "monitor=\"";
    AppendEscaped(fresh.monitor_label, r.monitor);
    fresh.monitor_label += '"';
    auto mit = state_->monitors.emplace(r.monitor, std::move(fresh)).first;
    iit = state_->index.emplace(std::string_view(mit->first), &mit->second).first;
  }
  MonitorState& m = *iit->second;
  auto pit = std::lower_bound(
      m.regions.begin(), m.regions.end(), r.region,
      [](const PairState& p, const std::string& region) { return p.region < region; });
  if (pit == m.regions.end() || pit->region != r.region) {
    PairState p;
    p.region = r.region;
    p.labels = m.monitor_label + ",region=\"";
    AppendEscaped(p.labels, r.region);
    p.labels += '"';
    pit = m.regions.insert(pit, std::move(p));
  }
  PairState& p = *pit;

  ++p.outcomes[static_cast<size_t>(r.outcome)];
  if (r.http_status > 0) {
    auto cit = std::lower_bound(p.codes.begin(), p.codes.end(), r.http_status,
                                [](const CodeCount& c, int code) { return c.code < code; });
    if (cit == p.codes.end() || cit->code != r.http_status) {
      cit = p.codes.insert(cit, CodeCount{r.http_status, 0});
    }
    ++cit->count;
  }
  if (r.http_status >= 500 && r.http_status <= 599) {
    const auto key = std::make_pair(r.emitter, r.reason);
    auto eit = std::lower_bound(p.emitters.begin(), p.emitters.end(), key,
                                [](const EmitterCount& e, const std::pair<Emitter, Reason>& k) {
                                  return std::make_pair(e.emitter, e.reason) < k;
                                });
    if (eit == p.emitters.end() || eit->emitter != r.emitter || eit->reason != r.reason) {
      eit = p.emitters.insert(eit, EmitterCount{r.emitter, r.reason, 0});
    }
    ++eit->count;
  }
  if (r.confirmed) {
    p.confirmed = true;
    p.success = !probes::IsFailure(r.outcome);
    p.http_status = r.http_status;
    SetPhases(r.phases, p.phase_us);
    // The certificate's expiry stays known when a later probe does not get that far.
    if (r.tls.earliest_expiry) {
      p.has_expiry = true;
      p.expiry_s = UnixSeconds(*r.tls.earliest_expiry);
    }
  }
}

void Metrics::RetainMonitors(const std::set<std::string>& names) {
  {
    std::set<std::string, std::less<>> retained(names.begin(), names.end());
    std::lock_guard lock(state_->mu);
    std::erase_if(state_->monitors, [&](const auto& kv) {
      if (names.count(kv.first) != 0) return false;
      state_->index.erase(std::string_view(kv.first));
      return true;
    });
    state_->retained = std::move(retained);
  }
  std::lock_guard lock(extensions_->mu);
  for (auto& [name, impl] : extensions_->gauges) impl->family.Retain(names);
  for (auto& [name, impl] : extensions_->counters) impl->family.Retain(names);
}

void Metrics::SetSelfStats(std::function<SelfStats()> source) {
  std::lock_guard lock(self_mu_);
  self_source_ = std::move(source);
}

std::string Metrics::Render() const {
  std::array<std::string, kFamilyCount> bufs;
  {
    // Slices: resume after the last monitor rendered (map iterators do not survive the
    // unlock, since RetainMonitors may erase), so each monitor's series come from one
    // moment and Observe() waits at most one slice.
    std::string last;
    bool started = false;
    std::array<size_t, kFamilyCount> growth{};  // bytes the last slice added per family
    for (;;) {
      // Grow the buffers outside the lock: copying megabytes under it would hold the
      // engine thread for milliseconds.
      for (size_t f = 0; f < kFamilyCount; ++f) {
        const size_t need = bufs[f].size() + 2 * growth[f] + 16384;
        if (bufs[f].capacity() < need) bufs[f].reserve(std::max(need, bufs[f].capacity() * 3 / 2));
      }
      // Hand the mutex over: an Observe() that found it taken gets it before the next
      // slice (a mutex re-locked at once would starve it). Bounded: Observe is short.
      for (int spins = 0; state_->waiting.load(std::memory_order_relaxed) > 0 && spins < 1000;
           ++spins) {
        std::this_thread::yield();
      }
      std::lock_guard lock(state_->mu);
      const auto& monitors = state_->monitors;
      auto it = started ? monitors.upper_bound(last) : monitors.begin();
      if (it == monitors.end()) break;
      started = true;
      std::array<size_t, kFamilyCount> before;
      for (size_t f = 0; f < kFamilyCount; ++f) before[f] = bufs[f].size();
      auto prev = it;
      for (size_t n = 0; it != monitors.end() && n < kSliceMonitors; ++n, ++it) {
        RenderMonitor(it->second, bufs);
        prev = it;
      }
      if (it == monitors.end()) break;
      for (size_t f = 0; f < kFamilyCount; ++f) growth[f] = bufs[f].size() - before[f];
      last = prev->first;
    }
  }

  std::string out;
  size_t total = 0;
  for (const auto& b : bufs) total += b.size();
  out.reserve(total + 4096);
  for (size_t f = 0; f < kFamilyCount; ++f) {
    if (bufs[f].empty()) continue;  // no series seen yet: no family
    out += "# HELP ";
    out += kFamilies[f].name;
    out += ' ';
    out += kFamilies[f].help;
    out += "\n# TYPE ";
    out += kFamilies[f].name;
    out += ' ';
    out += kFamilies[f].type;
    out += '\n';
    out += bufs[f];
    std::string().swap(bufs[f]);  // free as we go: the output is the peak
  }
  out += RenderSelf();
  return out;
}

namespace {

// Notification delivery and rule evaluation (docs/metrics.md: gatewatch_notifications_total,
// gatewatch_outbox_pending; plus delivery latency and the evaluator's own cost).
void AppendAlerting(const SelfStats::Alerting& a, std::vector<prometheus::MetricFamily>& families) {
  prometheus::MetricFamily results;
  results.name = "gatewatch_notifications_total";
  results.help =
      "Notification delivery attempts by notifier and result (delivered, retry, rate_limited, "
      "rejected, gave_up, dropped, refreshed, refresh_failed).";
  results.type = prometheus::MetricType::Counter;
  prometheus::MetricFamily latency;
  latency.name = "gatewatch_notification_delivery_seconds";
  latency.help = "Time from a notification's creation to its recorded delivery (retries included).";
  latency.type = prometheus::MetricType::Histogram;
  for (const auto& [notifier, stats] : a.notifiers) {
    for (const auto& [result, count] : stats.results) {
      prometheus::ClientMetric m;
      m.label = {{"notifier", notifier}, {"result", result}};
      m.counter.value = static_cast<double>(count);
      results.metric.push_back(std::move(m));
    }
    if (stats.latency_count == 0) continue;
    prometheus::ClientMetric h;
    h.label = {{"notifier", notifier}};
    uint64_t cumulative = 0;
    for (size_t i = 0; i < alerting::kDeliveryLatencyBuckets.size(); ++i) {
      cumulative += stats.latency_buckets[i];
      h.histogram.bucket.push_back({cumulative, alerting::kDeliveryLatencyBuckets[i]});
    }
    cumulative += stats.latency_buckets.back();
    h.histogram.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
    h.histogram.sample_count = cumulative;
    h.histogram.sample_sum = stats.latency_sum_seconds;
    latency.metric.push_back(std::move(h));
  }
  if (!results.metric.empty()) families.push_back(std::move(results));
  if (!latency.metric.empty()) families.push_back(std::move(latency));
  families.push_back(Gauge("gatewatch_outbox_pending", "Notifications waiting for delivery.",
                           static_cast<double>(a.outbox_pending)));
  families.push_back(Counter("gatewatch_alert_results_evaluated_total",
                             "Confirmed probe results evaluated by the alert rules.", a.results_evaluated));
  families.push_back(Counter("gatewatch_alert_results_dropped_total",
                             "Confirmed probe results not evaluated because the alert queue was full.",
                             a.results_dropped));
  families.push_back(OneValue("gatewatch_alert_evaluation_seconds_total",
                              "Time the alert evaluator spent on probe results.",
                              prometheus::MetricType::Counter, a.evaluation_seconds));
}

}  // namespace

std::string Metrics::RenderSelf() const {
  using prometheus::ClientMetric;
  using prometheus::MetricFamily;
  std::string extension_text;
  {
    std::lock_guard lock(extensions_->mu);
    for (const auto& [name, impl] : extensions_->gauges) impl->family.Render(extension_text, "gauge");
    for (const auto& [name, impl] : extensions_->counters) impl->family.Render(extension_text, "counter");
  }
  std::vector<MetricFamily> families;

  std::optional<SelfStats> s;
  {
    std::lock_guard lock(self_mu_);
    if (self_source_) s = self_source_();
  }
  if (s) {
    MetricFamily lag;
    lag.name = "gatewatch_scheduler_lag_seconds";
    lag.help = "Delay between a scheduled probe's due time and its start.";
    lag.type = prometheus::MetricType::Histogram;
    ClientMetric h;
    uint64_t cumulative = 0;
    for (size_t i = 0; i < LagHistogram::kBoundsMs.size(); ++i) {
      cumulative += s->lag_buckets[i];
      h.histogram.bucket.push_back(
          {cumulative, static_cast<double>(LagHistogram::kBoundsMs[i]) / 1000.0});
    }
    cumulative += s->lag_buckets.back();
    // The count is the buckets' sum (not a separately read counter), so +Inf == _count.
    h.histogram.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
    h.histogram.sample_count = cumulative;
    h.histogram.sample_sum = s->lag_sum_seconds;
    lag.metric.push_back(std::move(h));
    families.push_back(std::move(lag));

    families.push_back(Gauge("gatewatch_probes_in_flight", "Probes running now.",
                             static_cast<double>(s->probes_in_flight)));
    families.push_back(Gauge("gatewatch_probes_queued",
                             "Probes submitted and waiting for an in-flight slot.",
                             static_cast<double>(s->probes_queued)));
    MetricFamily skipped;
    skipped.name = "gatewatch_probes_skipped_total";
    skipped.help =
        "Scheduled probes that did not run: overload (not started by the next due time), "
        "backpressure (the database writer's queue was full), missed (the scheduler loop fell "
        "more than an interval behind).";
    skipped.type = prometheus::MetricType::Counter;
    for (const auto& [reason, value] : {std::pair{"overload", s->skipped_overload},
                                        std::pair{"backpressure", s->skipped_backpressure},
                                        std::pair{"missed", s->skipped_missed}}) {
      ClientMetric m;
      m.label = {{"reason", reason}};
      m.counter.value = static_cast<double>(value);
      skipped.metric.push_back(std::move(m));
    }
    families.push_back(std::move(skipped));
    families.push_back(Gauge("gatewatch_db_write_batch_seconds",
                             "Duration of the last committed database write batch.",
                             s->db_last_batch_seconds));
    families.push_back(Counter("gatewatch_db_write_batches_total",
                               "Database write batches (transactions) committed.", s->db_batches));
    families.push_back(
        Counter("gatewatch_db_rows_written_total", "Result rows committed.", s->db_rows_written));
    families.push_back(Gauge("gatewatch_db_queue_depth",
                             "Results accepted by the writer and not yet committed or lost.",
                             static_cast<double>(s->db_queue_depth)));
    families.push_back(Counter("gatewatch_db_rows_lost_total",
                               "Accepted result rows given up after repeated write errors.",
                               s->db_rows_lost));
    families.push_back(Counter("gatewatch_db_write_errors_total",
                               "Failed attempts to commit a write batch.", s->db_write_errors));
  }
  if (s && s->alerting) AppendAlerting(*s->alerting, families);
  if (s && s->http) {
    const SelfStats::Http& h = *s->http;
    families.push_back(Gauge("gatewatch_http_connections", "Connections open to the HTTP listener.",
                             static_cast<double>(h.open)));
    families.push_back(Counter("gatewatch_http_connections_accepted_total",
                               "Connections accepted by the HTTP listener.", h.accepted));
    MetricFamily closed;
    closed.name = "gatewatch_http_connections_closed_total";
    closed.help =
        "Connections the HTTP listener closed by its bounds: peer_limit and total_limit (refused "
        "at accept), evicted (the oldest waiting connection, to make room), timeout (a request, "
        "idle or write deadline passed mid-request), bad_request (a malformed or oversized "
        "request).";
    closed.type = prometheus::MetricType::Counter;
    for (const auto& [reason, value] : {std::pair{"peer_limit", h.peer_limit}, std::pair{"total_limit", h.total_limit},
                                        std::pair{"evicted", h.evicted}, std::pair{"timeout", h.timeout},
                                        std::pair{"bad_request", h.bad_request}}) {
      ClientMetric m;
      m.label = {{"reason", reason}};
      m.counter.value = static_cast<double>(value);
      closed.metric.push_back(std::move(m));
    }
    families.push_back(std::move(closed));
    families.push_back(Counter("gatewatch_http_requests_total", "Requests the HTTP listener answered.", h.requests));
  }
  families.push_back(Gauge("gatewatch_build_info", "gatewatch build; the value is always 1.", 1,
                           {{"version", version_}}));
  if (s) {
    families.push_back(Gauge(
        "process_start_time_seconds", "Start time of the process since the Unix epoch in seconds.",
        static_cast<double>(
            std::chrono::duration_cast<std::chrono::milliseconds>(s->start_time.time_since_epoch())
                .count()) /
            1000.0));
  }

  std::ostringstream text;
  prometheus::TextSerializer().Serialize(text, families);
  return extension_text + std::move(text).str();
}

size_t Metrics::ProbeSeriesCountForTest() const {
  const std::string text = [&] {
    std::array<std::string, kFamilyCount> bufs;
    std::lock_guard lock(state_->mu);
    for (const auto& [name, m] : state_->monitors) RenderMonitor(m, bufs);
    std::string all;
    for (const auto& b : bufs) all += b;
    return all;
  }();
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

void RegisterMetricsRoute(HttpServer& server, Metrics& metrics) {
  server.Get("/metrics", [&metrics](const HttpRequest&) {
    HttpResponse r;
    r.content_type = kMetricsContentType;
    r.body = metrics.Render();
    return r;
  });
}

}  // namespace gatewatch::daemon
