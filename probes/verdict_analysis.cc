// What the rows read: which results count, the state of every region of the monitor and of
// each upstream, the upstream results compared with the monitor's failures, and facts about
// single results.

#include <algorithm>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "probes/verdict_internal.h"

namespace gatewatch::probes::verdict_internal {
namespace {

using std::chrono::microseconds;

}  // namespace

// ---------------------------------------------------------------------------------------------
// Which results count, and what each region of a series says.

Skip Check(const ProbeResult& r, std::string_view name, const Limits& lim) {
  if (!r.confirmed) return Skip::kUnconfirmed;
  if (!r.monitor.empty() && r.monitor != name) return Skip::kOtherMonitor;
  if (lim.from && r.started_at < *lim.from) return Skip::kOutside;
  const auto it = lim.before.find(r.region);
  if (it != lim.before.end() && r.started_at >= it->second) return Skip::kOutside;
  return Skip::kNone;
}

// Input order breaks ties in started_at, so the result is deterministic for any input order.
bool NewerOrSame(const ProbeResult& r, const ProbeResult* cur) {
  return cur == nullptr || r.started_at >= cur->started_at;
}
bool Older(const ProbeResult& r, const ProbeResult* cur) {
  return cur == nullptr || r.started_at < cur->started_at;
}

namespace {

void CountSkip(Ignored& ignored, Skip s) {
  if (s == Skip::kUnconfirmed) ++ignored.unconfirmed;
  if (s == Skip::kOtherMonitor) ++ignored.other_monitor;
  if (s == Skip::kOutside) ++ignored.outside_window;
}

void AddToTrack(Track& t, const ProbeResult& r) {
  ++t.results;
  ++t.outcomes[static_cast<size_t>(r.outcome)];
  if (NewerOrSame(r, t.newest)) t.newest = &r;
  if (!IsFailure(r.outcome)) {
    if (NewerOrSame(r, t.last_healthy)) t.last_healthy = &r;
    return;
  }
  ++t.failures;
  if (Older(r, t.first_failure)) t.first_failure = &r;
  if (NewerOrSame(r, t.last_failure)) t.last_failure = &r;
}

// For each region in `ends` (region -> a failing result of it), the first failure of the streak
// that ends there: the earliest failure after the last healthy result before it. Two linear
// passes (the last healthy result must be known first).
ByRegion StreakStarts(const std::vector<ProbeResult>& results, std::string_view name,
                      const Limits& lim, const ByRegion& ends) {
  std::map<std::string_view, SystemTime> healthy_before;
  for (const ProbeResult& r : results) {
    const auto end = ends.find(r.region);
    if (end == ends.end() || IsFailure(r.outcome) || Check(r, name, lim) != Skip::kNone) continue;
    if (r.started_at >= end->second->started_at) continue;
    const auto [it, added] = healthy_before.emplace(end->first, r.started_at);
    if (!added) it->second = std::max(it->second, r.started_at);
  }
  ByRegion starts = ends;
  for (const ProbeResult& r : results) {
    const auto end = ends.find(r.region);
    if (end == ends.end() || !IsFailure(r.outcome) || Check(r, name, lim) != Skip::kNone) continue;
    if (r.started_at > end->second->started_at) continue;
    const auto healthy = healthy_before.find(end->first);
    if (healthy != healthy_before.end() && r.started_at <= healthy->second) continue;
    const ProbeResult*& start = starts.find(end->first)->second;
    if (r.started_at < start->started_at) start = &r;
  }
  return starts;
}

// The state of every region in one pass, then the onset of each failing one.
Tracks BuildTracks(const std::vector<ProbeResult>& results, std::string_view name,
                   const Limits& lim, Ignored& ignored) {
  Tracks tracks;
  for (const ProbeResult& r : results) {
    const Skip s = Check(r, name, lim);
    if (s != Skip::kNone) {
      CountSkip(ignored, s);
      continue;
    }
    auto it = tracks.find(r.region);
    if (it == tracks.end()) it = tracks.emplace(r.region, Track{}).first;
    AddToTrack(it->second, r);
  }
  ByRegion ends;
  for (const auto& [region, t] : tracks) {
    if (t.Failing()) ends[region] = t.newest;
  }
  for (const auto& [region, start] : StreakStarts(results, name, lim, ends)) {
    tracks.find(region)->second.onset = start;
  }
  return tracks;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The comparison the rows look at.

namespace {

// The newest upstream result that can describe the time of monitor failure `r`: started no
// later than the failure ended plus kConfirmationSlack (header comment).
SystemTime AlignBound(const ProbeResult& r) {
  return r.started_at + r.phases.total.value_or(microseconds::zero()) + kConfirmationSlack;
}

// Whether upstream result `r` is closer in time to the failure `f` started than `best` (ties:
// the newer one). The closest is the onset confirmation, started right after the failure, or
// the regular probe next to it; a later recovery within the slack must not stand for the
// failure's time (an upstream that came back a second later did not serve that 502).
bool Closer(const ProbeResult& r, const ProbeResult* best, const ProbeResult& f) {
  if (best == nullptr) return true;
  const auto d = [&](const ProbeResult& x) {
    const auto diff = x.started_at - f.started_at;
    return diff < SystemTime::duration::zero() ? -diff : diff;
  };
  return d(r) < d(*best) || (d(r) == d(*best) && NewerOrSame(r, best));
}

// Per failing monitor region, the upstream's result from that region within the bound that is
// closest in time to the failure, else the closest from any region within it. One pass,
// O(results x failing regions).
std::vector<Compared> Aligned(const std::vector<ProbeResult>& results, std::string_view name,
                              const Limits& lim, const std::vector<Compared>& failures) {
  std::vector<Compared> same(failures.size()), any(failures.size());
  for (const ProbeResult& r : results) {
    if (Check(r, name, lim) != Skip::kNone) continue;
    for (size_t i = 0; i < failures.size(); ++i) {
      const ProbeResult& f = *failures[i].result;
      if (r.started_at > AlignBound(f)) continue;
      if (Closer(r, any[i].result, f)) any[i].result = &r;
      if (r.region == failures[i].monitor_region && Closer(r, same[i].result, f)) same[i].result = &r;
    }
  }
  std::vector<Compared> out;
  for (size_t i = 0; i < failures.size(); ++i) {
    const ProbeResult* r = same[i].result != nullptr ? same[i].result : any[i].result;
    if (r != nullptr) out.push_back({failures[i].monitor_region, r});
  }
  return out;
}

// `failures`: the current failure of every failing monitor region (empty when none fails).
Upstream Compare(std::string name, const std::vector<ProbeResult>& results, const Limits& lim,
                 const std::vector<Compared>& failures, Ignored& ignored) {
  Upstream u;
  u.name = std::move(name);
  u.tracks = BuildTracks(results, u.name, lim, ignored);
  if (failures.empty()) {
    for (const auto& [region, t] : u.tracks) u.compared.push_back({"", t.newest});
  } else {
    u.compared = Aligned(results, u.name, lim, failures);
  }
  ByRegion ends;  // per upstream region, its newest failing compared result
  for (const Compared& c : u.compared) {
    if (!IsFailure(c.result->outcome)) continue;
    const ProbeResult*& end = ends[c.result->region];
    if (NewerOrSame(*c.result, end)) end = c.result;
  }
  if (!u.compared.empty())
    u.state = ends.empty() ? UpstreamState::kHealthy : UpstreamState::kFailing;
  for (const auto& [region, start] : StreakStarts(results, u.name, lim, ends)) {
    if (!u.failing_since || start->started_at < *u.failing_since)
      u.failing_since = start->started_at;
  }
  return u;
}

}  // namespace

Analysis Analyze(const DiagnosisInput& in, const Limits& monitor_limits,
                 const Limits& upstream_limits) {
  Analysis a;
  a.in = &in;
  a.monitor_limits = monitor_limits;
  a.upstream_limits = upstream_limits;
  a.monitor = BuildTracks(in.results, in.monitor, monitor_limits, a.ignored);
  std::vector<Compared> failures;
  for (const auto& [region, t] : a.monitor) {
    (t.Failing() ? a.failing : a.healthy).push_back(region);
    if (t.Failing()) failures.push_back({region, t.newest});
  }
  for (const auto& [name, results] : in.upstreams) {
    a.upstreams.push_back(Compare(name, results, upstream_limits, failures, a.ignored));
  }
  return a;
}

std::optional<SystemTime> FailingSince(const Analysis& a) {
  std::optional<SystemTime> since;
  for (const std::string& f : a.failing) {
    const SystemTime t = a.At(f).onset->started_at;
    if (!since || t < *since) since = t;
  }
  return since;
}

// The newest compared result of an upstream, preferring failing ones when it is failing.
const ProbeResult* Shown(const Upstream& u) {
  const ProbeResult* shown = nullptr;
  const bool failing = u.state == UpstreamState::kFailing;
  for (const Compared& c : u.compared) {
    if (failing && !IsFailure(c.result->outcome)) continue;
    if (NewerOrSame(*c.result, shown)) shown = c.result;
  }
  return shown;
}

// ---------------------------------------------------------------------------------------------
// Facts about single results.

bool GatewayClass(const ProbeResult& r) { return IsGatewayError(r.http_status, r.emitter); }

namespace {

// Failures that happen before the gateway answers anything cannot have been relayed from an
// upstream: they are about reaching the gateway itself.
bool Relayable(Outcome o) {
  switch (o) {
    case Outcome::kDnsError:
    case Outcome::kConnectRefused:
    case Outcome::kConnectTimeout:
    case Outcome::kNetworkUnreachable:
    case Outcome::kTlsError:
    case Outcome::kTlsCertInvalid:
    case Outcome::kProxyError:
      return false;
    default:
      return IsFailure(o);
  }
}

bool Relayed(const Analysis& a, const std::string& region) {
  const ProbeResult& cur = a.Current(region);
  if (!Relayable(cur.outcome)) return false;
  for (const Upstream& u : a.upstreams) {
    for (const Compared& c : u.compared) {
      if (c.monitor_region == region && c.result->outcome == cur.outcome) return true;
    }
  }
  return false;
}

bool IsCdn(Emitter e) {
  return e == Emitter::kCloudflare || e == Emitter::kCloudflareOrigin ||
         e == Emitter::kCloudFront || e == Emitter::kFastly || e == Emitter::kAkamai;
}

}  // namespace

bool GatewaySide(const Analysis& a, const std::string& region) {
  return GatewayClass(a.Current(region)) || Relayed(a, region);
}

bool BlamesOrigin(const ProbeResult& r) {
  if (!IsCdn(r.emitter)) return false;
  if (r.emitter == Emitter::kCloudflareOrigin) return true;
  if (r.emitter == Emitter::kCloudflare && r.http_status >= 520 && r.http_status <= 530)
    return true;
  return r.reason != Reason::kUnknown && r.reason != Reason::kOverloaded;
}

}  // namespace gatewatch::probes::verdict_internal
