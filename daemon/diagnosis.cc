#include "daemon/diagnosis.h"

#include <algorithm>
#include <cstdio>
#include <tuple>

#include "probes/log.h"

namespace gatewatch::daemon {
namespace {

// An incident as kept in memory: its evidence JSON (~1.5 KB) is only ever read from SQLite.
std::unique_ptr<storage::Incident> InMemory(storage::Incident inc) {
  std::string().swap(inc.evidence);
  return std::make_unique<storage::Incident>(std::move(inc));
}

std::unique_ptr<probes::Diagnosis> Held(probes::Diagnosis d) {
  return std::make_unique<probes::Diagnosis>(std::move(d));
}

double FailureRatio(const probes::Evidence& e) {
  return e.results > 0 ? static_cast<double>(e.failures) / static_cast<double>(e.results) : 0.0;
}

std::string Ms(std::optional<std::chrono::microseconds> us) {
  if (!us) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, " in %.0fms", static_cast<double>(us->count()) / 1000.0);
  return buf;
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::string FactsLine(const probes::ResultFacts& f) {
  std::string s(probes::ToString(f.outcome));
  if (f.http_status > 0) s += " (" + std::to_string(f.http_status) + ")";
  if (f.http_status >= 500 && f.emitter != probes::Emitter::kNone) {
    s += " from " + std::string(probes::ToString(f.emitter));
    if (f.reason != probes::Reason::kUnknown) s += "/" + std::string(probes::ToString(f.reason));
  }
  return s + Ms(f.total) + " from " + f.region;
}

}  // namespace

std::vector<std::string> EvidenceLines(const probes::Diagnosis& d, size_t max_lines) {
  const probes::Evidence& e = d.evidence;
  std::vector<std::string> lines;
  if (!e.failing_regions.empty()) {
    std::string line = "failing in " + Join(e.failing_regions);
    if (!e.healthy_regions.empty()) line += "; healthy in " + Join(e.healthy_regions);
    if (e.failing_since) line += " (since " + FormatTime(*e.failing_since) + ")";
    lines.push_back(std::move(line));
  }
  if (e.latest_failure) {
    // Only a monitor with linked upstreams is known to be a gateway.
    lines.push_back((e.upstreams.empty() ? e.monitor : "gateway " + e.monitor) + " answered " +
                    FactsLine(*e.latest_failure));
  }
  for (size_t i = 0; i < e.upstreams.size(); ++i) {
    const probes::UpstreamEvidence& u = e.upstreams[i];
    if (lines.size() + 1 >= max_lines && i + 1 < e.upstreams.size()) {
      lines.push_back("and " + std::to_string(e.upstreams.size() - i) + " more upstreams");
      break;
    }
    std::string line = "upstream " + u.name + ": " + std::string(probes::ToString(u.state));
    if (u.latest) line += ", " + FactsLine(*u.latest);
    lines.push_back(std::move(line));
  }
  if (e.tls) {
    lines.push_back("certificate " + e.tls->subject + " issued by " + e.tls->issuer +
                    (e.tls->earliest_expiry ? ", expires " + FormatTime(*e.tls->earliest_expiry) : ""));
  }
  if (e.dns_change) {
    lines.push_back("resolved addresses changed in " + e.dns_change->region + ": " + Join(e.dns_change->before) +
                    " -> " + Join(e.dns_change->after));
  }
  if (lines.size() > max_lines) lines.resize(max_lines);
  return lines;
}

Diagnostics::Diagnostics(const Clock& clock, storage::IncidentStore& incidents, storage::Store& results,
                         DiagnosisOptions options)
    : clock_(clock), incidents_(incidents), results_(results), options_(options) {}

Result<void> Diagnostics::Configure(std::shared_ptr<const Config> config) {
  config_ = std::move(config);
  gateways_of_.clear();
  window_.clear();
  close_after_.clear();
  std::set<std::string> names;
  for (const auto& m : config_->monitors) {
    names.insert(m.name);
    for (const auto& u : m.upstreams) gateways_of_[u].push_back(m.name);
    close_after_[m.name] = 2 * m.probe.interval;
  }
  for (const auto& rule : config_->alerts) {
    for (const auto& m : rule.monitors) {
      auto [w, fresh] = window_.emplace(m, rule.window);
      if (!fresh) w->second = std::max(w->second, rule.window);
      auto& close = close_after_[m];
      close = std::max(fresh ? Duration(0) : close, rule.resolve_for);
    }
  }
  if (!resumed_) {
    auto open = incidents_.OpenIncidents();
    if (!open) return Error("open incidents: " + open.error());
    for (auto& inc : *open) {
      MonitorState& s = monitors_[inc.monitor];
      s.incident = InMemory(std::move(inc));
      s.dirty = true;
      active_.insert(s.incident->monitor);
    }
    resumed_ = true;
    log::Info("incidents resumed").Kv("open", static_cast<uint64_t>(open->size()));
  }
  // A monitor removed from the config: its incident closes with the verdict it had.
  const SystemTime now = clock_.Now();
  for (auto it = monitors_.begin(); it != monitors_.end();) {
    if (names.contains(it->first)) {
      ++it;
      continue;
    }
    if (it->second.incident) {
      if (auto ok = incidents_.Close(it->second.incident->id, now); !ok) {
        log::Error("incident close failed").Kv("monitor", it->first).Kv("error", ok.error());
      }
    }
    active_.erase(it->first);
    it = monitors_.erase(it);
  }
  Publish();
  return {};
}

bool Diagnostics::Failing(const MonitorState& s) const {
  return std::any_of(s.failing.begin(), s.failing.end(), [](const auto& kv) { return kv.second; });
}

bool Diagnostics::InTrouble(const std::string& monitor) const {
  const auto it = monitors_.find(monitor);
  if (it != monitors_.end() && (Failing(it->second) || it->second.incident)) return true;
  const probes::MonitorConfig* m = config_ ? config_->FindMonitor(monitor) : nullptr;
  if (m == nullptr) return false;
  return std::any_of(m->upstreams.begin(), m->upstreams.end(), [&](const std::string& u) {
    const auto up = monitors_.find(u);
    return up != monitors_.end() && Failing(up->second);
  });
}

void Diagnostics::Observe(const probes::ProbeResult& r) {
  if (!r.confirmed) return;
  MonitorState& s = monitors_[r.monitor];
  const bool failed = probes::IsFailure(r.outcome);
  if (failed) s.last_failure = std::max(s.last_failure.value_or(SystemTime{}), r.started_at);
  auto [it, fresh] = s.failing.emplace(r.region, failed);
  const bool flipped = fresh ? failed : it->second != failed;
  it->second = failed;
  // Keep the newest results of monitors in trouble, and of the upstreams of gateways in
  // trouble (the onset confirmation): the writer may not have committed them yet.
  bool keep = InTrouble(r.monitor);
  if (!keep) {
    if (auto g = gateways_of_.find(r.monitor); g != gateways_of_.end()) {
      keep = std::any_of(g->second.begin(), g->second.end(), [&](const auto& gw) { return InTrouble(gw); });
    }
  }
  if (keep) {
    // Only those the writer may not have committed yet add anything (SQLite rows win): the
    // newest few. Only the newest keeps its body snippet (up to 4 KiB). Both bounds matter in
    // a mass outage: 8 full results of each of 10,000 monitors held ~75 MB.
    if (!s.recent.empty()) std::string().swap(s.recent.back().body_snippet);
    const SystemTime oldest = r.started_at - options_.recent_max_age;
    size_t drop = 0;
    while (drop < s.recent.size() &&
           (s.recent[drop].started_at < oldest || s.recent.size() - drop >= kMaxRecentResults)) {
      ++drop;
    }
    s.recent.erase(s.recent.begin(), s.recent.begin() + static_cast<std::ptrdiff_t>(drop));
    s.recent.push_back(r);
  } else if (!s.recent.empty()) {
    std::vector<probes::ProbeResult>().swap(s.recent);
  }
  if (!flipped) return;
  s.dirty = true;
  active_.insert(r.monitor);
  if (auto g = gateways_of_.find(r.monitor); g != gateways_of_.end()) {
    for (const auto& gateway : g->second) {
      monitors_[gateway].dirty = true;  // an upstream changed: the gateway's verdict may too
      active_.insert(gateway);
    }
  }
}

Duration Diagnostics::WindowOf(const std::string& monitor) const {
  const auto it = window_.find(monitor);
  return it == window_.end() ? options_.default_window : it->second;
}

Duration Diagnostics::CloseAfterOf(const std::string& monitor) const {
  const auto it = close_after_.find(monitor);
  return it == close_after_.end() ? Duration(2000) : std::max(it->second, Duration(1000));
}

std::vector<probes::ProbeResult> Diagnostics::ResultsOf(const std::string& monitor, SystemTime since) {
  std::vector<probes::ProbeResult> out;
  storage::ResultQuery q;
  q.monitor = monitor;
  q.since = since;
  q.limit = storage::kMaxResultLimit;
  if (auto rows = results_.Results(q)) {
    out = std::move(rows).value();
  } else {
    log::Warn("diagnosis: reading results failed").Kv("monitor", monitor).Kv("error", rows.error());
  }
  const auto it = monitors_.find(monitor);
  if (it == monitors_.end()) return out;
  std::set<std::tuple<std::string, SystemTime, int>> stored;
  for (const auto& r : out) stored.emplace(r.region, r.started_at, r.attempt);
  for (const auto& r : it->second.recent) {
    if (r.started_at >= since && !stored.contains({r.region, r.started_at, r.attempt})) out.push_back(r);
  }
  return out;
}

probes::Diagnosis Diagnostics::Diagnose(const std::string& monitor, SystemTime now, bool alert_fired) {
  probes::DiagnosisInput in;
  in.monitor = monitor;
  in.now = now;
  in.window = WindowOf(monitor);
  in.alert_fired = alert_fired;
  const SystemTime since = now - in.window;
  in.results = ResultsOf(monitor, since);
  if (const probes::MonitorConfig* m = config_->FindMonitor(monitor)) {
    for (const auto& u : m->upstreams) in.upstreams[u] = ResultsOf(u, since);
  }
  return probes::Diagnose(in);
}

void Diagnostics::AlertFired(const std::string& monitor) {
  MonitorState& s = monitors_[monitor];
  const SystemTime now = clock_.Now();
  if (!s.incident) {
    s.dirty = true;
    Decide(monitor, s, now);
  }
  if (!s.incident) return;
  storage::Incident& inc = *s.incident;
  inc.alert_fired = true;
  // The message leads with this verdict: never one older than `settle`, which may not have
  // seen everything that came before the alert (see DiagnosisOptions::settle).
  if (!s.diagnosis || now - s.diagnosed_at >= options_.settle) {
    s.diagnosis = Held(Diagnose(monitor, now, true));
    s.diagnosed_at = now;
    s.provisional = false;
  }
  Record(monitor, inc, *s.diagnosis, now);
}

bool Diagnostics::Record(const std::string& monitor, storage::Incident& inc, const probes::Diagnosis& d,
                         SystemTime now) {
  const std::string verdict(probes::ToString(d.verdict));
  if (verdict != inc.verdict) {
    log::Info("incident verdict changed")
        .Kv("monitor", monitor)
        .Kv("from", inc.verdict)
        .Kv("to", verdict)
        .Kv("summary", d.summary);
  }
  const double ratio = FailureRatio(d.evidence);
  if (auto ok = incidents_.Update(inc.id, verdict, d.summary, probes::EvidenceToJson(d), d.evidence.failing_regions,
                                  ratio, inc.alert_fired, now);
      !ok) {
    log::Error("incident update failed").Kv("monitor", monitor).Kv("error", ok.error());
    return false;
  }
  inc.verdict = verdict;
  inc.summary = d.summary;
  inc.peak_ratio = std::max(inc.peak_ratio, ratio);
  return true;
}

bool Diagnostics::Decide(const std::string& monitor, MonitorState& s, SystemTime now) {
  const probes::MonitorConfig* m = config_->FindMonitor(monitor);
  bool upstream_failing = false;
  if (m != nullptr) {
    for (const auto& u : m->upstreams) {
      const auto up = monitors_.find(u);
      upstream_failing |= up != monitors_.end() && Failing(up->second);
    }
  }
  const bool failing_now = Failing(s) || upstream_failing;
  if (!s.incident) {
    if (!s.dirty || !failing_now) {
      s.dirty = false;
      return false;
    }
    s.dirty = false;
    probes::Diagnosis d = Diagnose(monitor, now, false);
    if (d.verdict == probes::Verdict::kHealthy || d.verdict == probes::Verdict::kTransient) return true;
    if (d.evidence.results == 0) {
      s.dirty = true;  // an upstream failed before the monitor's own first result: judge it then
      return true;
    }
    auto inc = incidents_.OpenIncident(monitor, std::string(probes::ToString(d.verdict)), d.summary,
                                       probes::EvidenceToJson(d), d.evidence.failing_regions,
                                       FailureRatio(d.evidence), now);
    if (!inc) {
      log::Error("incident open failed").Kv("monitor", monitor).Kv("error", inc.error());
      s.dirty = true;  // retried next tick
      return true;
    }
    log::Warn("incident opened")
        .Kv("monitor", monitor)
        .Kv("verdict", probes::ToString(d.verdict))
        .Kv("summary", d.summary);
    s.incident = InMemory(std::move(inc).value());
    s.diagnosis = Held(std::move(d));
    s.diagnosed_at = now;
    s.provisional = true;
    s.healthy_since.reset();
    return true;
  }
  storage::Incident& inc = *s.incident;
  if (failing_now) {
    s.healthy_since.reset();
  } else if (!s.healthy_since) {
    s.healthy_since = now;
  }
  if (s.healthy_since && now - *s.healthy_since >= CloseAfterOf(monitor)) {
    // Closes: transient if no alert fired and it was over within the alert window, else the
    // root cause as of its last failure.
    probes::Diagnosis final = Diagnose(monitor, now, inc.alert_fired);
    if (!inc.alert_fired && now - inc.opened_at < WindowOf(monitor)) {
      if (final.verdict != probes::Verdict::kTransient) {
        final.verdict = probes::Verdict::kTransient;
        final.summary = monitor + " failed briefly and recovered before any alert fired";
      }
    } else if ((final.verdict == probes::Verdict::kHealthy || final.verdict == probes::Verdict::kTransient) &&
               s.diagnosis) {
      final = *s.diagnosis;  // the window no longer shows it: the last diagnosis while open
    }
    const std::string verdict(probes::ToString(final.verdict));
    if (auto ok = incidents_.Close(inc.id, now, verdict, final.summary); !ok) {
      log::Error("incident close failed").Kv("monitor", monitor).Kv("error", ok.error());
      return true;  // retried next tick
    }
    log::Info("incident closed").Kv("monitor", monitor).Kv("verdict", verdict).Kv("summary", final.summary);
    s.incident.reset();
    s.diagnosis.reset();
    s.closed = Held(std::move(final));  // what a "resolved" that comes later names as root cause
    s.closed_at = now;
    s.healthy_since.reset();
    s.dirty = false;
    return true;
  }
  const bool settled = s.provisional && now - s.diagnosed_at >= options_.settle;
  if (!s.dirty && !settled && now - s.diagnosed_at < options_.refresh) return false;
  s.dirty = false;
  s.provisional = false;
  s.diagnosed_at = now;
  probes::Diagnosis d = Diagnose(monitor, now, inc.alert_fired);
  if (d.verdict == probes::Verdict::kHealthy) return true;  // nothing in the window any more
  if (Record(monitor, inc, d, now)) s.diagnosis = Held(std::move(d));
  return true;
}

void Diagnostics::Tick(SystemTime now) {
  // Visits every active monitor at most once, starting where the last tick ran out of
  // budget; only real diagnoses count against it. (Counting every visit from the start of
  // the set let the first max_per_tick open incidents starve the rest: in a mass outage no
  // incident opened beyond the first few hundred.)
  size_t diagnosed = 0;
  const size_t n = active_.size();
  auto it = active_.lower_bound(tick_cursor_);
  for (size_t visited = 0; visited < n && diagnosed < options_.max_per_tick; ++visited) {
    if (it == active_.end()) it = active_.begin();
    if (it == active_.end()) break;
    MonitorState& s = monitors_[*it];
    if ((s.dirty || s.incident) && Decide(*it, s, now)) ++diagnosed;
    it = (s.dirty || s.incident) ? std::next(it) : active_.erase(it);
  }
  tick_cursor_ = it == active_.end() ? std::string() : *it;
  Publish();
}

std::optional<probes::Diagnosis> Diagnostics::Current(const std::string& monitor) {
  const probes::MonitorConfig* m = config_ ? config_->FindMonitor(monitor) : nullptr;
  if (m == nullptr) return std::nullopt;
  std::optional<probes::Diagnosis> d;
  auto it = monitors_.find(monitor);
  if (it != monitors_.end() && it->second.incident && it->second.diagnosis) {
    d = *it->second.diagnosis;
  } else if (it != monitors_.end() && it->second.closed && clock_.Now() - it->second.closed_at < WindowOf(monitor)) {
    d = *it->second.closed;  // e.g. the alert resolves after its incident closed
  } else {
    d = Diagnose(monitor, clock_.Now(), false);
    if (d->verdict == probes::Verdict::kHealthy) d.reset();
  }
  // An upstream on its own says little ("unknown": nothing to compare with); the gateway in
  // front of it knows more: its pool is degraded (partial_upstream_failure) or down.
  if (!m->upstreams.empty() || (d && d->verdict != probes::Verdict::kUnknown)) return d;
  const auto g = gateways_of_.find(monitor);
  if (g == gateways_of_.end()) return d;
  for (const auto& gateway : g->second) {
    if (config_->FindMonitor(gateway) == nullptr) continue;
    auto gs = monitors_.find(gateway);
    // Its incident's diagnosis if recent enough (see DiagnosisOptions::settle), else a new
    // one (also when its incident opens only on the next tick).
    const bool fresh = gs != monitors_.end() && gs->second.incident && gs->second.diagnosis &&
                       clock_.Now() - gs->second.diagnosed_at < options_.settle;
    probes::Diagnosis gd = fresh ? *gs->second.diagnosis : Diagnose(gateway, clock_.Now(), false);
    if (gd.verdict == probes::Verdict::kPartialUpstreamFailure || gd.verdict == probes::Verdict::kUpstreamDown) {
      return gd;
    }
  }
  return d;
}

std::vector<OpenIncident> Diagnostics::GatewayIncidents(const std::string& monitor) const {
  std::vector<OpenIncident> out;
  const auto g = gateways_of_.find(monitor);
  if (g == gateways_of_.end()) return out;
  for (const auto& gateway : g->second) {
    const auto it = monitors_.find(gateway);
    if (it == monitors_.end() || !it->second.incident) continue;
    const storage::Incident& inc = *it->second.incident;
    out.push_back({inc.monitor, inc.verdict, inc.summary, inc.opened_at});
  }
  return out;
}

void Diagnostics::Publish() {
  std::vector<OpenIncident> open;
  for (const auto& name : active_) {
    const auto it = monitors_.find(name);
    if (it == monitors_.end() || !it->second.incident) continue;
    const auto& inc = *it->second.incident;
    open.push_back({inc.monitor, inc.verdict, inc.summary, inc.opened_at});
  }
  std::lock_guard lock(snapshot_mu_);
  snapshot_ = std::move(open);
}

size_t Diagnostics::ResultsHeld() const {
  size_t n = 0;
  for (const auto& [name, s] : monitors_) n += s.recent.size();
  return n;
}

std::vector<OpenIncident> Diagnostics::OpenSnapshot() const {
  std::lock_guard lock(snapshot_mu_);
  return snapshot_;
}

}  // namespace gatewatch::daemon
