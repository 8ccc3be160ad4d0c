#include "daemon/metrics.h"

#include <algorithm>
#include <atomic>
#include <optional>
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

constexpr size_t kPhaseCount = probes::kPhases.size();
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
  for (size_t i = 0; i < kPhaseCount; ++i) {
    const auto& value = p.*probes::kPhases[i].member;
    out[i] = value ? value->count() : kNoPhase;
  }
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
        ph += probes::kPhases[i].name;
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
