#include "alerting/evaluator.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <tuple>
#include <utility>

#include "alerting/silence.h"
#include "probes/classify.h"
#include "storage/store.h"

namespace gatewatch::alerting {
namespace {

using std::chrono::microseconds;

constexpr int kRateBuckets = 60;     // status_rate windows: 1/60 of the window per bucket
constexpr int kLatencyBuckets = 20;  // latency windows: each bucket holds a histogram

// What a window counts: nothing (down, cert_expiry), matches (status_rate), or latencies.
enum class Counting : uint8_t { kNothing, kMatches, kLatencies };

// Counts over a sliding window in time buckets with running totals: adding a result and
// expiring old buckets are constant work, whatever the window's size. Memory per window:
// ~1.5 KB for a status_rate window, ~1.4 KB for a latency one (uint32 histograms), none for
// down and cert_expiry (10,000 monitors x 2 regions x 3 rules: ~60 MB at most).
class Window {
 public:
  // Buckets at least 1 s wide: a window under a minute has fewer buckets.
  Window(Duration window, Counting counting) {
    if (counting == Counting::kNothing) return;
    const int most = counting == Counting::kLatencies ? kLatencyBuckets : kRateBuckets;
    width_ = std::max<Duration>(Duration(1000), window / most);
    buckets_ = std::clamp<int64_t>(window / width_, 1, most);
    ring_.resize(static_cast<size_t>(buckets_));
    if (counting == Counting::kLatencies) latency_ring_.resize(static_cast<size_t>(buckets_));
  }

  void Add(SystemTime t, bool match, std::optional<microseconds> latency, SystemTime now) {
    if (ring_.empty()) return;
    Expire(now);
    const int64_t index = IndexOf(t);
    if (index <= IndexOf(now) - buckets_ || index > IndexOf(now) + 1) return;  // outside
    const size_t slot = static_cast<size_t>(Mod(index));
    Bucket& b = ring_[slot];
    if (b.index != index) {
      Clear(slot);
      b.index = index;
    }
    ++b.total;
    ++total_;
    if (match) {
      ++b.match;
      ++match_;
    }
    if (latency && !latency_ring_.empty()) {
      const size_t i = storage::LatencyBucket(*latency);
      ++latency_ring_[slot][i];
      ++latency_[i];
      ++latency_count_;
    }
  }

  void Expire(SystemTime now) {
    if (ring_.empty()) return;
    const int64_t oldest = IndexOf(now) - buckets_ + 1;
    if (oldest <= expired_before_) return;  // nothing new can have aged out since last time
    expired_before_ = oldest;
    for (size_t slot = 0; slot < ring_.size(); ++slot) {
      if (ring_[slot].index != kEmpty && ring_[slot].index < oldest) Clear(slot);
    }
  }

  int64_t total() const { return total_; }
  int64_t match() const { return match_; }
  int64_t latency_count() const { return latency_count_; }

  // Upper bound (seconds) of the bucket holding the q-quantile of latencies; +Inf bucket
  // reports twice the last bound.
  double LatencyQuantile(double q) const {
    if (latency_count_ == 0) return 0;
    const double want = q * static_cast<double>(latency_count_);
    int64_t seen = 0;
    for (size_t i = 0; i < latency_.size(); ++i) {
      seen += latency_[i];
      if (static_cast<double>(seen) >= want) {
        const auto& bounds = storage::kLatencyBucketBoundsMs;
        const int64_t ms = i < bounds.size() ? bounds[i] : bounds.back() * 2;
        return static_cast<double>(ms) / 1000.0;
      }
    }
    return static_cast<double>(storage::kLatencyBucketBoundsMs.back()) * 2 / 1000.0;
  }

 private:
  static constexpr int64_t kEmpty = std::numeric_limits<int64_t>::min();
  struct Bucket {
    int64_t index = kEmpty;
    uint32_t total = 0;
    uint32_t match = 0;
  };
  using Histogram = std::array<uint32_t, storage::kLatencyBuckets>;

  int64_t IndexOf(SystemTime t) const {
    const int64_t ms = std::chrono::duration_cast<Duration>(t.time_since_epoch()).count();
    const int64_t w = width_.count();
    return ms >= 0 ? ms / w : (ms - w + 1) / w;
  }
  int64_t Mod(int64_t i) const { return ((i % buckets_) + buckets_) % buckets_; }
  // Takes a bucket out of the running totals and empties it.
  void Clear(size_t slot) {
    Bucket& b = ring_[slot];
    total_ -= b.total;
    match_ -= b.match;
    b = Bucket{};
    if (latency_ring_.empty()) return;
    Histogram& h = latency_ring_[slot];
    for (size_t i = 0; i < h.size(); ++i) {
      latency_[i] -= h[i];
      latency_count_ -= h[i];
    }
    h = Histogram{};
  }

  Duration width_{1000};
  int64_t buckets_ = 1;
  int64_t expired_before_ = std::numeric_limits<int64_t>::min();  // buckets below it are gone
  std::vector<Bucket> ring_;           // empty: counts nothing
  std::vector<Histogram> latency_ring_;  // latency windows only
  int64_t total_ = 0;
  int64_t match_ = 0;
  int64_t latency_count_ = 0;
  std::array<int64_t, storage::kLatencyBuckets> latency_{};
};

Counting CountingOf(AlertKind kind) {
  switch (kind) {
    case AlertKind::kStatusRate: return Counting::kMatches;
    case AlertKind::kLatency: return Counting::kLatencies;
    case AlertKind::kDown:
    case AlertKind::kCertExpiry: return Counting::kNothing;
  }
  return Counting::kNothing;
}

std::optional<microseconds> Phase(const probes::PhaseTimings& p, std::string_view name) {
  for (const probes::PhaseField& f : probes::kPhases) {
    if (f.name == name) return p.*f.member;
  }
  return p.total;
}

std::string Percent(double share) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g%%", share * 100);
  return buf;
}

std::string Seconds(double s) {
  char buf[32];
  if (s < 1) {
    std::snprintf(buf, sizeof buf, "%.0fms", s * 1000);
  } else {
    std::snprintf(buf, sizeof buf, "%.3gs", s);
  }
  return buf;
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

std::string_view ToString(AlertState s) {
  switch (s) {
    case AlertState::kOk: return "ok";
    case AlertState::kPending: return "pending";
    case AlertState::kFiring: return "firing";
    case AlertState::kResolving: return "resolving";
  }
  return "ok";
}

std::string_view ToString(AlertEvent::Kind k) {
  switch (k) {
    case AlertEvent::Kind::kFiring: return "firing";
    case AlertEvent::Kind::kResolved: return "resolved";
    case AlertEvent::Kind::kReminder: return "reminder";
  }
  return "firing";
}

struct Evaluator::Pair {
  struct Region {
    Region(Duration window, Counting counting) : counts(window, counting) {}
    Window counts;
    int consecutive_failures = 0;
    probes::Outcome last_failure = probes::Outcome::kOk;
  };

  std::shared_ptr<const AlertRule> rule;
  std::string monitor;
  AlertState state = AlertState::kOk;
  SystemTime since{};
  SystemTime firing_since{};
  SystemTime last_notified{};
  bool notified = false;  // the current firing was notified
  bool dirty = false;     // persisted fields changed since TakeChangedStates()
  // Restored in a state other than ok: no transition until a live result arrives, because
  // the replayed results may lack the last second before a crash (the writer's batch) and
  // would undo a decision taken on them (e.g. resolve a `down` that had 2 failures as 1).
  bool awaiting_live = false;
  std::map<std::string, Region> regions;
  std::optional<SystemTime> cert_expiry;
  // 5xx emitter/reason counts of this episode (since the alert left ok); at rest only
  // those seen within the window are kept.
  std::map<std::string, std::pair<int64_t, SystemTime>> emitters;
  // Last measurement, for Snapshot().
  double ratio = 0;
  std::map<std::string, double> region_ratio;
  bool silenced = false;

  Region& RegionOf(const std::string& name) {
    auto it = regions.find(name);
    if (it == regions.end()) it = regions.emplace(name, Region(rule->window, CountingOf(rule->kind))).first;
    return it->second;
  }
};

namespace {

struct Measure {
  bool hold = false;   // no verdict (too few samples, no certificate seen): no transition
  bool bad = false;    // fire (or stay pending)
  bool clear = true;   // resolve (the lower threshold)
  double worst = 0;
  int64_t samples = 0;
  std::vector<std::string> regions_above;  // usually empty: no allocation when healthy
  std::string_view outcome;                // down: the last failure's outcome
};

}  // namespace

Evaluator::Evaluator(const Clock& clock) : clock_(clock) {}
Evaluator::~Evaluator() = default;

std::vector<AlertEvent> Evaluator::Configure(std::vector<AlertRule> rules, std::vector<SilenceConfig> silences) {
  std::map<std::pair<std::string, std::string>, std::unique_ptr<Pair>> next;
  for (const AlertRule& rule : rules) {
    auto shared = std::make_shared<const AlertRule>(rule);
    for (const std::string& monitor : rule.monitors) {
      auto key = std::make_pair(rule.name, monitor);
      auto old = pairs_.find(key);
      std::unique_ptr<Pair> pair;
      if (old != pairs_.end() && old->second->rule->kind == rule.kind && old->second->rule->window == rule.window) {
        pair = std::move(old->second);  // same alert: keep state and windows
        pairs_.erase(old);
      } else {
        pair = std::make_unique<Pair>();
        pair->monitor = monitor;
        pair->since = clock_.Now();
      }
      pair->rule = shared;
      next.emplace(std::move(key), std::move(pair));
    }
  }
  std::vector<AlertEvent> events;
  const SystemTime now = clock_.Now();
  for (auto& [key, pair] : pairs_) {  // what is left was removed from the config
    removed_.push_back(key);
    if ((pair->state == AlertState::kFiring || pair->state == AlertState::kResolving) && pair->notified) {
      AlertEvent e;
      e.kind = AlertEvent::Kind::kResolved;
      e.alert = key.first;
      e.monitor = key.second;
      e.severity = pair->rule->severity;
      e.rule_kind = pair->rule->kind;
      e.notify = pair->rule->notify;
      e.at = now;
      e.firing_since = pair->firing_since;
      e.summary = key.second + ": alert " + key.first + " resolved (removed from the configuration)";
      events.push_back(std::move(e));
    }
  }
  // Pairs left in pairs_ are destroyed now: none may stay in changed_.
  std::erase_if(changed_, [&](const Pair* p) {
    const auto it = pairs_.find({p->rule->name, p->monitor});
    return it != pairs_.end() && it->second.get() == p;
  });
  pairs_ = std::move(next);
  rules_ = std::move(rules);
  silences_ = std::move(silences);
  by_monitor_.clear();
  for (auto& [key, pair] : pairs_) by_monitor_[key.second].push_back(pair.get());
  return events;
}

void Evaluator::Count(Pair& pair, const probes::ProbeResult& r, probes::Outcome outcome, SystemTime now) {
  const AlertRule& rule = *pair.rule;
  Pair::Region& region = pair.RegionOf(r.region);
  const bool failed = probes::IsFailure(outcome);
  bool counts_against = failed;
  switch (rule.kind) {
    case AlertKind::kStatusRate: {
      const bool match = rule.count_gateway_error
                             ? probes::IsGatewayError(r.http_status, r.emitter)
                             : std::find(rule.codes.begin(), rule.codes.end(), r.http_status) != rule.codes.end();
      counts_against = match;
      region.counts.Add(r.started_at, match, std::nullopt, now);
      break;
    }
    case AlertKind::kLatency:
      region.counts.Add(r.started_at, false, Phase(r.phases, rule.phase), now);
      break;
    case AlertKind::kDown:
      if (failed) {
        ++region.consecutive_failures;
        region.last_failure = outcome;
      } else {
        region.consecutive_failures = 0;
      }
      break;
    case AlertKind::kCertExpiry:
      if (r.tls.earliest_expiry) pair.cert_expiry = r.tls.earliest_expiry;
      break;
  }
  if (counts_against && r.http_status >= 500 && r.emitter != probes::Emitter::kNone) {
    // "nginx/upstream_timeout", or "nginx" alone when the page names no reason (nginx's 502
    // never does): "nginx/unknown" reads like an unknown nginx.
    std::string key(probes::ToString(r.emitter));
    if (r.reason != probes::Reason::kUnknown) key += "/" + std::string(probes::ToString(r.reason));
    auto& [count, seen] = pair.emitters[key];
    ++count;
    seen = r.started_at;
  }
}

std::vector<AlertEvent> Evaluator::Observe(const probes::ProbeResult& r) {
  std::vector<AlertEvent> events;
  if (!r.confirmed) return events;
  auto it = by_monitor_.find(r.monitor);
  if (it == by_monitor_.end()) return events;
  const SystemTime now = clock_.Now();
  const bool silenced = MonitorSilenced(silences_, r.monitor, r.started_at);
  const probes::Outcome outcome = probes::ExcuseIfSilenced(r, silenced);
  if (outcome == probes::Outcome::kExcused) return events;  // not counted at all
  for (Pair* pair : it->second) {
    Count(*pair, r, outcome, now);
    pair->awaiting_live = false;
    auto out = Evaluate(*pair, now);
    events.insert(events.end(), std::make_move_iterator(out.begin()), std::make_move_iterator(out.end()));
  }
  return events;
}

void Evaluator::Replay(const probes::ProbeResult& r) {
  if (!r.confirmed) return;
  auto it = by_monitor_.find(r.monitor);
  if (it == by_monitor_.end()) return;
  const SystemTime now = clock_.Now();
  const bool silenced = MonitorSilenced(silences_, r.monitor, r.started_at);
  const probes::Outcome outcome = probes::ExcuseIfSilenced(r, silenced);
  if (outcome == probes::Outcome::kExcused) return;
  for (Pair* pair : it->second) Count(*pair, r, outcome, now);
}

std::vector<AlertEvent> Evaluator::EvaluateAll(SystemTime now) {
  std::vector<AlertEvent> events;
  for (auto& [key, pair] : pairs_) {
    auto out = Evaluate(*pair, now);
    events.insert(events.end(), std::make_move_iterator(out.begin()), std::make_move_iterator(out.end()));
  }
  return events;
}

Duration Evaluator::LongestWindow() const {
  Duration longest{0};
  for (const AlertRule& rule : rules_) longest = std::max(longest, rule.window);
  return longest;
}

std::vector<AlertEvent> Evaluator::Restore(const std::vector<storage::AlertStateRecord>& records) {
  std::vector<AlertEvent> events;
  const SystemTime now = clock_.Now();
  for (const storage::AlertStateRecord& rec : records) {
    auto it = pairs_.find({rec.alert, rec.monitor});
    if (it == pairs_.end()) {
      removed_.emplace_back(rec.alert, rec.monitor);
      const auto state = static_cast<AlertState>(rec.state);
      if ((state == AlertState::kFiring || state == AlertState::kResolving) && rec.notified) {
        AlertEvent e;
        e.kind = AlertEvent::Kind::kResolved;
        e.alert = rec.alert;
        e.monitor = rec.monitor;
        e.at = now;
        e.firing_since = rec.firing_since;
        e.summary = rec.monitor + ": alert " + rec.alert +
                    " resolved (its alert or monitor was removed from the configuration)";
        events.push_back(std::move(e));
      }
      continue;
    }
    Pair& pair = *it->second;
    if (rec.state < 0 || rec.state > static_cast<int>(AlertState::kResolving)) continue;  // unknown: start ok
    pair.state = static_cast<AlertState>(rec.state);
    pair.since = rec.since;
    pair.firing_since = rec.firing_since;
    pair.last_notified = rec.last_notified;
    pair.notified = rec.notified;
    pair.awaiting_live = pair.state != AlertState::kOk;
  }
  return events;
}

std::vector<storage::AlertStateRecord> Evaluator::TakeChangedStates() {
  // O(changed pairs), not O(pairs): the pipeline asks after every result (walking all 20,000
  // pairs of 10,000 monitors x 2 rules each time was 60 % of the daemon's CPU at 2,000/s).
  std::vector<storage::AlertStateRecord> out;
  out.reserve(changed_.size());
  for (Pair* pair : std::exchange(changed_, {})) {
    pair->dirty = false;
    out.push_back({pair->rule->name, pair->monitor, static_cast<int>(pair->state), pair->since,
                   pair->firing_since, pair->last_notified, pair->notified});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::tie(a.alert, a.monitor) < std::tie(b.alert, b.monitor);
  });
  return out;
}

std::vector<std::pair<std::string, std::string>> Evaluator::TakeRemoved() {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& key : std::exchange(removed_, {})) {
    if (!pairs_.contains(key)) out.push_back(std::move(key));  // not re-added since
  }
  return out;
}

std::vector<AlertEvent> Evaluator::Tick(SystemTime now) {
  std::vector<AlertEvent> events;
  for (auto& [key, pair] : pairs_) {
    // Pairs at rest change only with new results, except certificates, which age.
    if (pair->state == AlertState::kOk && pair->rule->kind != AlertKind::kCertExpiry) continue;
    auto out = Evaluate(*pair, now);
    events.insert(events.end(), std::make_move_iterator(out.begin()), std::make_move_iterator(out.end()));
  }
  return events;
}

namespace {

// The texts of an event (summary and value), built only when one is emitted: evaluation runs
// for every result and must not format strings.
// A resolution says what recovered and after how long, then what the rule measures now.
void Describe(const AlertRule& rule, const std::string& monitor, const Measure& m,
              std::optional<SystemTime> cert_expiry, SystemTime now, std::string* summary, std::string* value);

void DescribeEvent(AlertEvent::Kind kind, SystemTime firing_since, const AlertRule& rule, const std::string& monitor,
                   const Measure& m, std::optional<SystemTime> cert_expiry, SystemTime now, std::string* summary,
                   std::string* value) {
  if (kind != AlertEvent::Kind::kResolved) {
    Describe(rule, monitor, m, cert_expiry, now, summary, value);
    return;
  }
  const auto lasted = std::chrono::floor<std::chrono::seconds>(now - firing_since);
  const std::string after =
      firing_since == SystemTime{} ? "" : " after " + FormatDuration(std::max(Duration(0), std::chrono::duration_cast<Duration>(lasted)));
  if (rule.kind == AlertKind::kDown) {
    *summary = monitor + " recovered" + after + ": probes succeed again";
    return;
  }
  std::string measured;
  Describe(rule, monitor, m, cert_expiry, now, &measured, value);
  *summary = monitor + " recovered" + after;
  if (measured.size() > monitor.size() + 2) *summary += "; now " + measured.substr(monitor.size() + 2);
}

void Describe(const AlertRule& rule, const std::string& monitor, const Measure& m,
              std::optional<SystemTime> cert_expiry, SystemTime now, std::string* summary, std::string* value) {
  const std::string where = m.regions_above.empty() ? "" : " in " + Join(m.regions_above);
  switch (rule.kind) {
    case AlertKind::kStatusRate:
    case AlertKind::kLatency: {
      const bool rate = rule.kind == AlertKind::kStatusRate;
      std::string codes;
      for (int code : rule.codes) codes += (codes.empty() ? "" : "/") + std::to_string(code);
      const std::string what =
          rate ? (rule.count_gateway_error ? std::string("gateway error rate") : "status " + codes + " rate")
               : "p" + std::to_string(static_cast<int>(rule.percentile)) + " " + rule.phase;
      const std::string measured =
          rate ? Percent(m.worst) + " of " + std::to_string(m.samples) + " probes" : Seconds(m.worst);
      if (!rate) *value = Seconds(m.worst);
      const std::string limit =
          rate ? Percent(rule.above) : Seconds(std::chrono::duration<double>(rule.latency_above).count());
      *summary = monitor + ": " + what + " " + measured + " over " + FormatDuration(rule.window) + where +
                 " (threshold " + limit + ")";
      return;
    }
    case AlertKind::kDown:
      *value = std::to_string(static_cast<int>(m.worst)) + " failures in a row";
      *summary = monitor + " down: " + std::to_string(static_cast<int>(m.worst)) + " consecutive failed probes" +
                 (m.outcome.empty() ? "" : " (" + std::string(m.outcome) + ")") + where;
      return;
    case AlertKind::kCertExpiry: {
      if (!cert_expiry) return;
      char days[32];
      std::snprintf(days, sizeof days, "%.1f days left", m.worst);
      *value = days;
      *summary = monitor + ": TLS certificate expires " + FormatTime(*cert_expiry) + " (in " +
                 FormatDuration(std::max(Duration(0), std::chrono::duration_cast<Duration>(*cert_expiry - now))) + ")";
      return;
    }
  }
}

}  // namespace

std::vector<AlertEvent> Evaluator::Evaluate(Pair& pair, SystemTime now) {
  const AlertRule& rule = *pair.rule;
  const auto persisted = [](const Pair& p) {
    return std::make_tuple(p.state, p.since, p.firing_since, p.last_notified, p.notified);
  };
  const auto before = persisted(pair);
  Measure m;
  int above = 0, still = 0;
  switch (rule.kind) {
    case AlertKind::kStatusRate:
    case AlertKind::kLatency: {
      const bool rate = rule.kind == AlertKind::kStatusRate;
      const double hi = rate ? rule.above : std::chrono::duration<double>(rule.latency_above).count();
      const double lo = rate ? rule.below : std::chrono::duration<double>(rule.latency_below).count();
      bool any_verdict = false;
      for (auto& [name, region] : pair.regions) {
        region.counts.Expire(now);
        const int64_t n = rate ? region.counts.total() : region.counts.latency_count();
        if (n == 0) {
          pair.region_ratio.erase(name);
          continue;
        }
        const double value = rate ? static_cast<double>(region.counts.match()) / static_cast<double>(n)
                                  : region.counts.LatencyQuantile(rule.percentile / 100.0);
        pair.region_ratio[name] = value;
        if (n < rule.min_samples) continue;  // no verdict on too few probes
        any_verdict = true;
        if (value > hi) {
          ++above;
          m.regions_above.push_back(name);
        }
        if (value >= lo && !(rate && value == 0)) ++still;
        if (value >= m.worst) {
          m.worst = value;
          m.samples = n;
        }
      }
      m.bad = above >= rule.min_regions;
      m.clear = still < rule.min_regions;
      m.hold = !any_verdict;
      break;
    }
    case AlertKind::kDown: {
      for (auto& [name, region] : pair.regions) {
        pair.region_ratio[name] = region.consecutive_failures;
        if (region.consecutive_failures >= rule.after) {
          ++above;
          m.regions_above.push_back(name);
          m.outcome = probes::ToString(region.last_failure);
          m.worst = std::max<double>(m.worst, region.consecutive_failures);
        }
      }
      m.bad = above >= rule.min_regions;
      m.clear = !m.bad;
      m.samples = static_cast<int64_t>(m.worst);
      break;
    }
    case AlertKind::kCertExpiry: {
      if (pair.cert_expiry) {
        const auto left = *pair.cert_expiry - now;
        m.worst = std::chrono::duration<double>(left).count() / 86400.0;  // days left
        m.bad = left < rule.within;
      }
      m.hold = !pair.cert_expiry;
      m.clear = !m.bad;
      break;
    }
  }
  pair.ratio = m.worst;
  pair.silenced = !silences_.empty() && MonitorSilenced(silences_, pair.monitor, now);
  if (pair.awaiting_live) m.hold = true;

  std::vector<AlertEvent> events;
  const auto emit = [&](AlertEvent::Kind kind) {
    AlertEvent e;
    e.kind = kind;
    e.alert = rule.name;
    e.monitor = pair.monitor;
    e.severity = rule.severity;
    e.notify = rule.notify;
    e.at = now;
    e.firing_since = pair.firing_since;
    e.rule_kind = rule.kind;
    e.ratio = m.worst;
    e.samples = m.samples;
    DescribeEvent(kind, pair.firing_since, rule, pair.monitor, m, pair.cert_expiry, now, &e.summary, &e.value);
    e.regions_above = m.regions_above;
    for (const auto& [name, counted] : pair.emitters) e.emitters[name] = counted.first;
    events.push_back(std::move(e));
    pair.last_notified = now;
  };
  const auto enter = [&](AlertState s) {
    pair.state = s;
    pair.since = now;
  };
  const auto fire = [&] {
    enter(AlertState::kFiring);
    pair.firing_since = now;
    pair.notified = !pair.silenced;
    if (pair.notified) emit(AlertEvent::Kind::kFiring);
  };
  const auto resolve = [&] {
    if (pair.notified) emit(AlertEvent::Kind::kResolved);
    pair.notified = false;
    pair.emitters.clear();
    enter(AlertState::kOk);
  };

  switch (pair.state) {
    case AlertState::kOk:
      for (auto it = pair.emitters.begin(); it != pair.emitters.end();) {
        it = it->second.second < now - rule.window ? pair.emitters.erase(it) : std::next(it);
      }
      if (m.hold || !m.bad) break;
      enter(AlertState::kPending);
      if (rule.pending_for.count() == 0) fire();
      break;
    case AlertState::kPending:
      if (m.hold) break;
      if (!m.bad) {
        enter(AlertState::kOk);
      } else if (now - pair.since >= rule.pending_for) {
        fire();
      }
      break;
    case AlertState::kFiring:
      if (!m.hold && m.clear) {
        enter(AlertState::kResolving);
        if (rule.resolve_for.count() == 0) resolve();
      } else if (!pair.notified && !pair.silenced) {
        pair.notified = true;  // the silence ended while firing
        emit(AlertEvent::Kind::kFiring);
      } else if (pair.notified && !pair.silenced && rule.repeat.count() > 0 &&
                 now - pair.last_notified >= rule.repeat) {
        emit(AlertEvent::Kind::kReminder);
      }
      break;
    case AlertState::kResolving:
      if (m.hold) break;
      if (!m.clear) {
        pair.state = AlertState::kFiring;  // flapped back: no new message
        pair.since = pair.firing_since;
      } else if (now - pair.since >= rule.resolve_for) {
        resolve();
      }
      break;
  }
  if (persisted(pair) != before && !pair.dirty) {
    pair.dirty = true;
    changed_.push_back(&pair);
  }
  return events;
}

std::vector<AlertStatus> Evaluator::Snapshot() const {
  std::vector<AlertStatus> out;
  out.reserve(pairs_.size());
  for (const auto& [key, pair] : pairs_) {
    out.push_back({key.first, key.second, pair->state, pair->since, pair->silenced, pair->ratio, pair->region_ratio});
  }
  return out;
}

}  // namespace gatewatch::alerting
