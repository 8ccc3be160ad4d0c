#include "probes/verdict.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>

namespace gatewatch::probes {
namespace {

using std::chrono::microseconds;

constexpr std::array<std::string_view, 18> kVerdictNames = {
    "healthy",          "proxy_region",       "dns",
    "tls",              "regional",           "upstream_down",
    "upstream_slow",    "partial_upstream_failure", "cdn_origin",
    "gateway_fault",    "application_error",  "behind_gateway",
    "not_listening",    "network_path",       "connection_failure",
    "bad_response",     "transient",          "unknown"};
static_assert(kVerdictNames.size() == static_cast<size_t>(Verdict::kUnknown) + 1);

constexpr auto kAllVerdicts = [] {
  std::array<Verdict, kVerdictNames.size()> all{};
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<Verdict>(i);
  return all;
}();

constexpr size_t kOutcomeCount = kOutcomeNames.size();
constexpr size_t kNamesInSummary = 2;  // "a, b and 3 more"

// ---------------------------------------------------------------------------------------------
// Which results count, and what each region of a series says.

struct Limits {
  std::optional<SystemTime> from;                         // inclusive
  std::map<std::string, SystemTime, std::less<>> before;  // per region, exclusive (re-run cut)
};

enum class Skip : uint8_t { kNone, kUnconfirmed, kOtherMonitor, kOutside };

Skip Check(const ProbeResult& r, std::string_view name, const Limits& lim) {
  if (!r.confirmed) return Skip::kUnconfirmed;
  if (!r.monitor.empty() && r.monitor != name) return Skip::kOtherMonitor;
  if (lim.from && r.started_at < *lim.from) return Skip::kOutside;
  const auto it = lim.before.find(r.region);
  if (it != lim.before.end() && r.started_at >= it->second) return Skip::kOutside;
  return Skip::kNone;
}

void CountSkip(Ignored& ignored, Skip s) {
  if (s == Skip::kUnconfirmed) ++ignored.unconfirmed;
  if (s == Skip::kOtherMonitor) ++ignored.other_monitor;
  if (s == Skip::kOutside) ++ignored.outside_window;
}

// Input order breaks ties in started_at, so the result is deterministic for any input order.
bool NewerOrSame(const ProbeResult& r, const ProbeResult* cur) {
  return cur == nullptr || r.started_at >= cur->started_at;
}
bool Older(const ProbeResult& r, const ProbeResult* cur) {
  return cur == nullptr || r.started_at < cur->started_at;
}

// One region of one series. Pointers point into the DiagnosisInput.
struct Track {
  const ProbeResult* newest = nullptr;
  const ProbeResult* last_healthy = nullptr;
  const ProbeResult* first_failure = nullptr;
  const ProbeResult* last_failure = nullptr;
  const ProbeResult* onset = nullptr;  // first failure after last_healthy; set when failing
  int results = 0;
  int failures = 0;
  std::array<int, kOutcomeCount> outcomes{};

  bool Failing() const { return newest != nullptr && IsFailure(newest->outcome); }
};
using Tracks = std::map<std::string, Track, std::less<>>;

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

using ByRegion = std::map<std::string, const ProbeResult*, std::less<>>;

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

// ---------------------------------------------------------------------------------------------
// The comparison the rows look at.

struct Compared {
  std::string monitor_region;  // the failing monitor region it stands for; empty: none failing
  const ProbeResult* result = nullptr;
};

struct Upstream {
  std::string name;
  Tracks tracks;
  std::vector<Compared> compared;
  UpstreamState state = UpstreamState::kNoData;
  std::optional<SystemTime> failing_since;  // earliest streak start of a failing compared result
};

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

struct Analysis {
  const DiagnosisInput* in = nullptr;
  Limits monitor_limits, upstream_limits;
  Tracks monitor;
  std::vector<std::string> failing, healthy;  // monitor regions, by name
  std::vector<Upstream> upstreams;            // by name
  Ignored ignored;

  const Track& At(std::string_view region) const { return monitor.find(region)->second; }
  const ProbeResult& Current(std::string_view region) const { return *At(region).newest; }
  size_t CountUpstreams(UpstreamState s) const {
    return static_cast<size_t>(std::count_if(upstreams.begin(), upstreams.end(),
                                             [s](const Upstream& u) { return u.state == s; }));
  }
};

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

// ---------------------------------------------------------------------------------------------
// Facts about single results.

bool GatewayClass(const ProbeResult& r) { return IsGatewayError(r.http_status, r.emitter); }

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

bool GatewaySide(const Analysis& a, const std::string& region) {
  return GatewayClass(a.Current(region)) || Relayed(a, region);
}

bool IsCdn(Emitter e) {
  return e == Emitter::kCloudflare || e == Emitter::kCloudflareOrigin ||
         e == Emitter::kCloudFront || e == Emitter::kFastly || e == Emitter::kAkamai;
}

bool BlamesOrigin(const ProbeResult& r) {
  if (!IsCdn(r.emitter)) return false;
  if (r.emitter == Emitter::kCloudflareOrigin) return true;
  if (r.emitter == Emitter::kCloudflare && r.http_status >= 520 && r.http_status <= 530)
    return true;
  return r.reason != Reason::kUnknown && r.reason != Reason::kOverloaded;
}

// The first failing region (by name) whose current failure satisfies `pred`.
template <typename Pred>
const std::string* FirstFailing(const Analysis& a, Pred pred) {
  for (const std::string& f : a.failing) {
    if (pred(f)) return &f;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Summary phrases.

// RFC 3339 to the second: summaries are read by people.
std::string Time(SystemTime t) {
  std::string s = FormatTime(t);
  const size_t dot = s.rfind('.');
  if (dot != std::string::npos) s.erase(dot, s.size() - 1 - dot);
  return s;
}

std::string Latency(microseconds us) {
  return FormatDuration(std::chrono::duration_cast<Duration>(us));
}

// "2.0 s", "850 ms": for times a person compares ("gives up after ~2.0 s").
std::string Seconds(microseconds us) {
  char buf[32];
  if (us >= std::chrono::seconds(1)) {
    std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(us.count()) / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%lld ms", static_cast<long long>(us.count() / 1000));
  }
  return buf;
}

std::string Status(int status) { return std::to_string(status); }

// What a result did, as a verb phrase: "refuses connections".
std::string Verb(const ProbeResult& r) {
  switch (r.outcome) {
    case Outcome::kDnsError:
      return "does not resolve";
    case Outcome::kConnectRefused:
      return "refuses connections";
    case Outcome::kConnectTimeout:
      return "does not accept connections";
    case Outcome::kNetworkUnreachable:
      return "is unreachable";
    case Outcome::kTlsError:
      return "fails the TLS handshake";
    case Outcome::kTlsCertInvalid:
      return "has an invalid certificate";
    case Outcome::kTimeoutTtfb:
      return "does not answer in time";
    case Outcome::kTimeoutBody:
      return "does not finish its body in time";
    case Outcome::kConnectionReset:
      return "resets connections";
    case Outcome::kEmptyReply:
      return "closes without answering";
    case Outcome::kMalformedResponse:
      return "answers with invalid HTTP";
    case Outcome::kProxyError:
      return "is not reachable through the region's proxy";
    case Outcome::kRedirectLoop:
      return "redirects in a loop";
    case Outcome::kAssertionFailed:
      return "fails its assertions";
    default:
      return r.http_status > 0 ? "answers " + Status(r.http_status) : "fails";
  }
}

// "http_502 from nginx (upstream_timeout)" or "connect_refused".
std::string Describe(const ProbeResult& r) {
  std::string s(ToString(r.outcome));
  if (r.http_status >= 500 && r.emitter != Emitter::kNone) {
    s += " from " + std::string(ToString(r.emitter));
    if (r.reason != Reason::kUnknown) s += " (" + std::string(ToString(r.reason)) + ")";
  }
  return s;
}

// "gateway nginx answers 502", "gateway answers 500 from the application".
std::string GatewayAnswer(const ProbeResult& r) {
  if (r.http_status <= 0) return "gateway shows " + std::string(ToString(r.outcome));
  std::string s = "gateway";
  if (IsGatewayEmitter(r.emitter)) s += " " + std::string(ToString(r.emitter));
  s += " answers " + Status(r.http_status);
  if (r.emitter == Emitter::kApplication) s += " from the application";
  if (r.reason != Reason::kUnknown) s += " (" + std::string(ToString(r.reason)) + ")";
  return s;
}

// "a", "a, b", "a, b and 3 more".
std::string NameList(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < kNamesInSummary; ++i) {
    s += (i == 0 ? "" : ", ") + names[i];
  }
  if (names.size() > kNamesInSummary) {
    s += " and " + std::to_string(names.size() - kNamesInSummary) + " more";
  }
  return s;
}

std::string Fraction(size_t n, size_t of, std::string_view what) {
  return std::to_string(n) + "/" + std::to_string(of) + " " + std::string(what);
}

std::string Regions(const Analysis& a) {
  return Fraction(a.failing.size(), a.monitor.size(), "regions");
}

std::optional<SystemTime> FailingSince(const Analysis& a) {
  std::optional<SystemTime> since;
  for (const std::string& f : a.failing) {
    const SystemTime t = a.At(f).onset->started_at;
    if (!since || t < *since) since = t;
  }
  return since;
}

std::string Since(const Analysis& a) {
  const auto since = FailingSince(a);
  return since ? " since " + Time(*since) : std::string();
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

std::vector<const Upstream*> InState(const Analysis& a, UpstreamState s) {
  std::vector<const Upstream*> out;
  for (const Upstream& u : a.upstreams) {
    if (u.state == s) out.push_back(&u);
  }
  return out;
}

// "upstream a refuses connections (connect_refused)" for one; for several
// "a (connect_refused), b (timeout_ttfb) and 1 more".
std::string UpstreamFailures(const std::vector<const Upstream*>& ups) {
  if (ups.size() == 1) {
    const ProbeResult& r = *Shown(*ups[0]);
    return "upstream " + ups[0]->name + " " + Verb(r) + " (" + std::string(ToString(r.outcome)) +
           ")";
  }
  std::vector<std::string> names;
  for (const Upstream* u : ups)
    names.push_back(u->name + " (" + std::string(ToString(Shown(*u)->outcome)) + ")");
  return NameList(names);
}

std::string EarliestSince(const std::vector<const Upstream*>& ups, const Analysis& a) {
  std::optional<SystemTime> since;
  for (const Upstream* u : ups) {
    const auto t = u->failing_since;
    if (t && (!since || *t < *since)) since = t;
  }
  if (!since) since = FailingSince(a);
  return since ? " since " + Time(*since) : std::string();
}

// Cuts at a UTF-8 boundary so that the text plus `suffix` fits kSummaryMaxBytes.
std::string Fit(std::string text, std::string_view suffix = {}) {
  const size_t room = kSummaryMaxBytes - std::min(suffix.size(), kSummaryMaxBytes);
  if (text.size() > room) {
    constexpr std::string_view kEllipsis = "...";
    size_t cut = room >= kEllipsis.size() ? room - kEllipsis.size() : 0;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    text.resize(cut);
    if (room >= kEllipsis.size()) text += kEllipsis;
  }
  text += suffix;
  return text.substr(0, kSummaryMaxBytes);
}

// ---------------------------------------------------------------------------------------------
// The rows (docs/alerts-and-diagnosis.md), first match wins. Each sets the summary and its own evidence only
// when it matches.

bool ProxyRegion(const Analysis& a, Diagnosis& d) {
  if (a.failing.empty()) return false;
  for (const std::string& f : a.failing) {
    if (a.Current(f).outcome != Outcome::kProxyError) return false;
  }
  d.summary = "egress proxy fails (proxy_error) in " + Regions(a) + " (" + NameList(a.failing) +
              ")" + Since(a) + ": our vantage point is broken, not the site";
  return true;
}

bool Dns(const Analysis& a, Diagnosis& d) {
  if (FirstFailing(
          a, [&](const std::string& f) { return a.Current(f).outcome == Outcome::kDnsError; })) {
    d.summary = a.in->monitor + " does not resolve (dns_error) in " + Regions(a) + Since(a);
    return true;
  }
  for (const std::string& f : a.failing) {
    const Track& t = a.At(f);
    if (t.last_healthy == nullptr || t.last_healthy->resolved.empty()) continue;
    if (t.onset->resolved.empty() || t.onset->resolved == t.last_healthy->resolved) continue;
    d.evidence.dns_change =
        DnsChange{f, t.last_healthy->resolved, t.onset->resolved, t.onset->started_at};
    d.summary = "resolved addresses changed in " + f + " at onset (" +
                NameList(t.last_healthy->resolved) + " -> " + NameList(t.onset->resolved) + "); " +
                Describe(*t.newest) + " in " + Regions(a) + Since(a);
    return true;
  }
  return false;
}

bool Tls(const Analysis& a, Diagnosis& d) {
  const std::string* f = FirstFailing(a, [&](const std::string& region) {
    const Outcome o = a.Current(region).outcome;
    return o == Outcome::kTlsError || o == Outcome::kTlsCertInvalid;
  });
  if (f == nullptr) return false;
  const ProbeResult& r = a.Current(*f);
  d.evidence.tls = r.tls;
  d.evidence.tls_region = *f;
  d.summary = "TLS fails (" + std::string(ToString(r.outcome)) + ") in " + Regions(a) + Since(a);
  if (!r.tls.subject.empty()) d.summary += "; certificate " + r.tls.subject;
  if (r.tls.earliest_expiry) {
    d.summary += (*r.tls.earliest_expiry <= r.started_at ? " expired " : " expires ") +
                 Time(*r.tls.earliest_expiry);
  }
  return true;
}

bool Regional(const Analysis& a, Diagnosis& d) {
  if (a.failing.empty() || a.healthy.empty()) return false;
  d.summary = a.in->monitor + " fails in " + Regions(a) + " (" + a.failing.front() + ": " +
              Describe(a.Current(a.failing.front())) + (a.failing.size() > 1 ? ", ..." : "") + ")" +
              Since(a) + "; healthy in " + NameList(a.healthy);
  return true;
}

bool IsTimeout(Outcome o) { return o == Outcome::kTimeoutTtfb || o == Outcome::kTimeoutBody; }

bool UpstreamDown(const Analysis& a, Diagnosis& d) {
  if (a.upstreams.empty() || a.CountUpstreams(UpstreamState::kFailing) != a.upstreams.size())
    return false;
  const auto ups = InState(a, UpstreamState::kFailing);
  std::string what = ups.size() == 1 ? UpstreamFailures(ups)
                                     : "all " + std::to_string(ups.size()) +
                                           " upstreams fail: " + UpstreamFailures(ups);
  if (a.failing.empty()) {
    d.summary = what + EarliestSince(ups, a) + "; the gateway still answers in " +
                Fraction(a.monitor.size(), a.monitor.size(), "regions") +
                " (from a server not linked, a cache, or by passing the reply through)";
    return true;
  }
  const std::string* f = FirstFailing(a, [&](const std::string& region) {
    return GatewaySide(a, region) || IsTimeout(a.Current(region).outcome);
  });
  if (f == nullptr) return false;
  const ProbeResult& r = a.Current(*f);
  d.summary = what + " from " + Regions(a) + EarliestSince(ups, a) + "; ";
  if (!GatewaySide(a, *f)) {
    d.summary += "the gateway " + Verb(r) + " (" + std::string(ToString(r.outcome)) +
                 ") while it waits on the dead upstream";
    d.evidence.notes.push_back("the gateway did not answer within the probe's timeout while " +
                               std::string(ups.size() == 1 ? "its upstream was" : "its upstreams were") +
                               " failing: it was still waiting on (or retrying) the dead upstream");
  } else {
    d.summary += GatewayAnswer(r);
  }
  return true;
}

// Over the compared results of the healthy (answering) upstreams.
std::pair<const Upstream*, const ProbeResult*> Slowest(const Analysis& a) {
  std::pair<const Upstream*, const ProbeResult*> slowest{nullptr, nullptr};
  for (const Upstream* u : InState(a, UpstreamState::kHealthy)) {
    for (const Compared& c : u->compared) {
      const auto total = c.result->phases.total.value_or(microseconds::zero());
      if (slowest.second == nullptr ||
          total > slowest.second->phases.total.value_or(microseconds::zero())) {
        slowest = {u, c.result};
      }
    }
  }
  return slowest;
}

// T of the timing rule for a failing region: the time its gateway-class failures in the window
// took when that is near-constant and at least kMinGiveUp (header comment, row 6); else none.
std::optional<microseconds> GivesUpAfter(const Analysis& a, const std::string& region) {
  if (!GatewayClass(a.Current(region)) || !IsGatewayEmitter(a.Current(region).emitter)) return {};
  std::optional<microseconds> lo, hi;
  for (const ProbeResult& r : a.in->results) {
    if (r.region != region || !GatewayClass(r) || !r.phases.total) continue;
    if (Check(r, a.in->monitor, a.monitor_limits) != Skip::kNone) continue;
    lo = std::min(lo.value_or(*r.phases.total), *r.phases.total);
    hi = std::max(hi.value_or(*r.phases.total), *r.phases.total);
  }
  if (!lo || *lo < kMinGiveUp) return {};
  if (static_cast<double>(hi->count()) > static_cast<double>(lo->count()) * kGiveUpSpread) return {};
  return *hi;
}

bool UpstreamSlow(const Analysis& a, Diagnosis& d) {
  if (a.CountUpstreams(UpstreamState::kHealthy) == 0) return false;
  const auto [u, r] = Slowest(a);
  const microseconds slowest = r->phases.total.value_or(microseconds::zero());
  std::optional<microseconds> gives_up;
  const std::string* f = FirstFailing(a, [&](const std::string& region) {
    const ProbeResult& cur = a.Current(region);
    gives_up.reset();  // describes the region that matches, not one looked at before
    if (cur.http_status == 504 || cur.reason == Reason::kUpstreamTimeout) return true;
    gives_up = GivesUpAfter(a, region);
    return gives_up && slowest > *gives_up;
  });
  if (f == nullptr) return false;
  d.evidence.slowest_upstream = u->name;
  d.summary = GatewayAnswer(a.Current(*f)) + " in " + Regions(a) + Since(a);
  if (gives_up) {
    d.evidence.gives_up_after = gives_up;
    d.summary += ": the gateway gives up after ~" + Seconds(*gives_up) + "; upstream " + u->name +
                 " answers in " + Seconds(slowest);
    return true;
  }
  d.summary += " while upstreams answer; slowest " + u->name;
  if (r->phases.total) d.summary += " took " + Latency(*r->phases.total);
  if (r->phases.processing) d.summary += " (processing " + Latency(*r->phases.processing) + ")";
  return true;
}

bool PartialUpstreamFailure(const Analysis& a, Diagnosis& d) {
  const size_t failing = a.CountUpstreams(UpstreamState::kFailing);
  if (failing == 0 || failing == a.upstreams.size()) return false;
  const auto ups = InState(a, UpstreamState::kFailing);
  d.summary = Fraction(failing, a.upstreams.size(), "upstreams failing: ") + UpstreamFailures(ups) +
              EarliestSince(ups, a) + "; ";
  if (a.failing.empty()) {
    d.summary +=
        "gateway still healthy in " + Fraction(a.monitor.size(), a.monitor.size(), "regions");
  } else {
    d.summary += GatewayAnswer(a.Current(a.failing.front())) + " in " + Regions(a);
  }
  return true;
}

bool CdnOrigin(const Analysis& a, Diagnosis& d) {
  const std::string* f =
      FirstFailing(a, [&](const std::string& region) { return BlamesOrigin(a.Current(region)); });
  if (f == nullptr) return false;
  const ProbeResult& r = a.Current(*f);
  const std::string cdn(ToString(r.emitter));
  if (r.emitter == Emitter::kCloudflareOrigin) {
    d.summary = "the origin answers " + Status(r.http_status) + " through cloudflare";
  } else {
    d.summary = cdn + " cannot reach the origin: answers " + Status(r.http_status);
    if (r.reason != Reason::kUnknown) d.summary += " (" + std::string(ToString(r.reason)) + ")";
  }
  d.summary += " in " + Regions(a) + Since(a);
  return true;
}

bool GatewayFault(const Analysis& a, Diagnosis& d) {
  const std::string* f =
      FirstFailing(a, [&](const std::string& region) { return GatewayClass(a.Current(region)); });
  if (f == nullptr || a.upstreams.empty()) return false;
  if (a.CountUpstreams(UpstreamState::kHealthy) != a.upstreams.size()) return false;
  std::vector<std::string> names;
  for (const Upstream& u : a.upstreams) names.push_back(u.name);
  d.summary = GatewayAnswer(a.Current(*f)) + " in " + Regions(a) + Since(a) + " while " +
              (names.size() == 1 ? "upstream " + names[0] + " is"
                                 : "all upstreams (" + NameList(names) + ") are") +
              " healthy: gateway config or its path to the upstream";
  return true;
}


// The rows below need no linked upstream: the monitor's own failure says where it happened.

// The first failing region whose current failure has one of `outcomes`.
const std::string* FirstWith(const Analysis& a, std::initializer_list<Outcome> outcomes) {
  return FirstFailing(a, [&](const std::string& region) {
    const Outcome o = a.Current(region).outcome;
    return std::find(outcomes.begin(), outcomes.end(), o) != outcomes.end();
  });
}

std::string HeaderValue(const ProbeResult& r, std::string_view name) {
  for (const auto& [n, v] : r.headers) {
    if (n == name) return v;
  }
  return {};
}

// " in 1/2 regions since <t>" and, with several failing regions, which.
std::string Where(const Analysis& a) {
  std::string s = " in " + Regions(a);
  if (a.monitor.size() > 1) s += " (" + NameList(a.failing) + ")";
  return s + Since(a);
}

bool ApplicationError(const Analysis& a, Diagnosis& d) {
  const std::string* f = FirstFailing(a, [&](const std::string& region) {
    const ProbeResult& r = a.Current(region);
    return r.http_status >= 500 && r.emitter == Emitter::kApplication;
  });
  if (f == nullptr) return false;
  const ProbeResult& r = a.Current(*f);
  d.summary = a.in->monitor + "'s application answers " + Status(r.http_status) +
              " itself (its own response, not a gateway's error page)" + Where(a);
  if (const std::string retry = HeaderValue(r, "retry-after"); !retry.empty()) {
    d.summary += "; Retry-After: " + retry;
  }
  return true;
}

bool BehindGateway(const Analysis& a, Diagnosis& d) {
  const std::string* f =
      FirstFailing(a, [&](const std::string& region) { return GatewayClass(a.Current(region)); });
  if (f == nullptr) return false;
  const ProbeResult& r = a.Current(*f);
  if (IsGatewayEmitter(r.emitter)) {
    d.summary = "gateway " + std::string(ToString(r.emitter)) + " answers " + Status(r.http_status);
    d.summary += r.reason != Reason::kUnknown
                     ? " (" + std::string(ToString(r.reason)) + ")"
                     : std::string(" (its page does not say why)");
  } else {
    d.summary = a.in->monitor + " answers " + Status(r.http_status) +
                " from a layer whose page names neither itself nor the cause";
  }
  d.summary += Where(a) + ": its upstream fails; ";
  d.summary += a.upstreams.empty() ? "link the upstream monitors to name which"
                                   : "the linked upstreams have no results to tell which";
  return true;
}

bool NotListening(const Analysis& a, Diagnosis& d) {
  if (FirstWith(a, {Outcome::kConnectRefused}) == nullptr) return false;
  d.summary = a.in->monitor + " refuses connections (connect_refused)" + Where(a) +
              ": nothing listens on that address and port (service down or wrong port)";
  return true;
}

bool NetworkPath(const Analysis& a, Diagnosis& d) {
  const std::string* f = FirstWith(a, {Outcome::kConnectTimeout, Outcome::kNetworkUnreachable});
  if (f == nullptr) return false;
  if (a.Current(*f).outcome == Outcome::kConnectTimeout) {
    d.summary = a.in->monitor + " does not accept connections in time (connect_timeout)" + Where(a) +
                ": packets are dropped on the way (firewall, security group) or the host is down";
  } else {
    d.summary = a.in->monitor + " is unreachable (network_unreachable)" + Where(a) +
                ": no route to the host from here";
  }
  return true;
}

bool ConnectionFailure(const Analysis& a, Diagnosis& d) {
  const std::string* f =
      FirstWith(a, {Outcome::kTimeoutTtfb, Outcome::kTimeoutBody, Outcome::kConnectionReset,
                    Outcome::kEmptyReply, Outcome::kMalformedResponse});
  if (f == nullptr) return false;
  const ProbeResult& r = a.Current(*f);
  d.summary = a.in->monitor + " accepts connections but " + Verb(r) + " (" +
              std::string(ToString(r.outcome)) + ")";
  if (IsTimeout(r.outcome) && r.phases.total) d.summary += " after " + Seconds(*r.phases.total);
  d.summary += Where(a);
  return true;
}

bool BadResponse(const Analysis& a, Diagnosis& d) {
  const std::string* f =
      FirstWith(a, {Outcome::kHttp4xx, Outcome::kUnexpectedStatus, Outcome::kAssertionFailed,
                    Outcome::kRedirectLoop});
  if (f == nullptr) return false;
  const ProbeResult& r = a.Current(*f);
  d.summary = a.in->monitor + " " + Verb(r) + " (" + std::string(ToString(r.outcome)) + ")" +
              Where(a) + ": it answers, but not what the monitor expects";
  if (!r.detail.empty()) d.summary += ": " + r.detail;
  return true;
}

using Row = bool (*)(const Analysis&, Diagnosis&);
constexpr std::pair<Verdict, Row> kRows[] = {
    {Verdict::kProxyRegion, ProxyRegion},
    {Verdict::kDns, Dns},
    {Verdict::kTls, Tls},
    {Verdict::kRegional, Regional},
    {Verdict::kUpstreamDown, UpstreamDown},
    {Verdict::kUpstreamSlow, UpstreamSlow},
    {Verdict::kPartialUpstreamFailure, PartialUpstreamFailure},
    {Verdict::kCdnOrigin, CdnOrigin},
    {Verdict::kGatewayFault, GatewayFault},
    {Verdict::kApplicationError, ApplicationError},
    {Verdict::kBehindGateway, BehindGateway},
    {Verdict::kNotListening, NotListening},
    {Verdict::kNetworkPath, NetworkPath},
    {Verdict::kConnectionFailure, ConnectionFailure},
    {Verdict::kBadResponse, BadResponse},
};

// ---------------------------------------------------------------------------------------------
// Evidence common to every verdict.

ResultFacts Facts(const ProbeResult& r) {
  return ResultFacts{r.region, r.started_at,        r.outcome,      r.http_status, r.emitter,
                     r.reason, r.phases.processing, r.phases.total, r.detail};
}

std::vector<NameCount> NonZero(std::span<const int> counts, auto name_of) {
  std::vector<NameCount> out;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] > 0) out.push_back({std::string(name_of(i)), counts[i]});
  }
  return out;
}

std::string_view OutcomeName(size_t i) { return ToString(static_cast<Outcome>(i)); }

void FillRegions(const Analysis& a, Evidence& ev) {
  std::array<int, kOutcomeCount> outcomes{};
  const ProbeResult* latest_failure = nullptr;
  for (const auto& [region, t] : a.monitor) {
    RegionEvidence re{region,       t.results,       t.failures, NonZero(t.outcomes, OutcomeName),
                      std::nullopt, Facts(*t.newest)};
    if (t.Failing()) re.failing_since = t.onset->started_at;
    ev.regions.push_back(std::move(re));
    ev.results += t.results;
    ev.failures += t.failures;
    for (size_t i = 0; i < kOutcomeCount; ++i) {
      if (IsFailure(static_cast<Outcome>(i))) outcomes[i] += t.outcomes[i];
    }
    if (t.first_failure && (!ev.first_failure || t.first_failure->started_at < *ev.first_failure)) {
      ev.first_failure = t.first_failure->started_at;
    }
    if (t.last_failure && NewerOrSame(*t.last_failure, latest_failure))
      latest_failure = t.last_failure;
  }
  ev.outcomes = NonZero(outcomes, OutcomeName);
  ev.failing_regions = a.failing;
  ev.healthy_regions = a.healthy;
  ev.failing_since = FailingSince(a);
  if (latest_failure != nullptr) {
    ev.last_failure = latest_failure->started_at;
    ev.latest_failure = Facts(*latest_failure);
    ev.sample_headers = latest_failure->headers;
    ev.sample_body = latest_failure->body_snippet.substr(0, kSampleBodyBytes);
  }
}

// One more pass over the monitor's results for what the tracks do not keep.
void FillTally(const Analysis& a, Evidence& ev) {
  std::array<int, static_cast<size_t>(Emitter::kUnknown) + 1> emitters{};
  std::array<int, static_cast<size_t>(Reason::kOriginUnreachable) + 1> reasons{};
  struct SetAcc {
    int results = 0;
    std::set<std::string> regions;
  };
  std::map<std::vector<std::string>, SetAcc> sets;
  bool sets_cut = false;
  for (const ProbeResult& r : a.in->results) {
    if (Check(r, a.in->monitor, a.monitor_limits) != Skip::kNone) continue;
    if (IsFailure(r.outcome) && r.emitter != Emitter::kNone) {
      ++emitters[static_cast<size_t>(r.emitter)];
      ++reasons[static_cast<size_t>(r.reason)];
    }
    if (r.resolved.empty()) continue;
    auto it = sets.find(r.resolved);
    if (it == sets.end()) {
      if (sets.size() == kMaxAddressSets) {
        sets_cut = true;
        continue;
      }
      it = sets.emplace(r.resolved, SetAcc{}).first;
    }
    ++it->second.results;
    it->second.regions.insert(r.region);
  }
  ev.emitters = NonZero(emitters, [](size_t i) { return ToString(static_cast<Emitter>(i)); });
  ev.reasons = NonZero(reasons, [](size_t i) { return ToString(static_cast<Reason>(i)); });
  for (auto& [addrs, acc] : sets) {
    ev.resolved_sets.push_back({addrs, acc.results, {acc.regions.begin(), acc.regions.end()}});
  }
  if (sets_cut) {
    ev.notes.push_back("more than " + std::to_string(kMaxAddressSets) +
                       " distinct resolved address sets: the rest are not listed");
  }
}

UpstreamEvidence UpstreamFacts(const Upstream& u) {
  UpstreamEvidence ue;
  ue.name = u.name;
  ue.state = u.state;
  std::set<std::string> regions;
  for (const Compared& c : u.compared) {
    regions.insert(c.result->region);
    const auto& p = c.result->phases;
    if (p.processing && (!ue.max_processing || *p.processing > *ue.max_processing))
      ue.max_processing = p.processing;
    if (p.total && (!ue.max_total || *p.total > *ue.max_total)) ue.max_total = p.total;
  }
  ue.regions.assign(regions.begin(), regions.end());
  for (const auto& [region, t] : u.tracks) {
    ue.results += t.results;
    ue.failures += t.failures;
  }
  if (const ProbeResult* shown = Shown(u)) ue.latest = Facts(*shown);
  ue.failing_since = u.failing_since;
  return ue;
}

void FillNotes(const Analysis& a, Evidence& ev) {
  if (a.upstreams.empty() && !a.failing.empty()) {
    ev.notes.push_back("no upstreams linked: the failure is judged from " + a.in->monitor +
                       "'s own results; link the monitors behind it to compare");
  }
  for (const Upstream& u : a.upstreams) {
    if (u.state == UpstreamState::kNoData) {
      ev.notes.push_back("upstream " + u.name + " has no confirmed results in the window");
    }
  }
  if (ev.ignored.other_monitor > 0) {
    ev.notes.push_back("ignored " + std::to_string(ev.ignored.other_monitor) +
                       " result(s) whose monitor field names another series");
  }
}

Evidence Collect(const Analysis& a) {
  Evidence ev;
  ev.monitor = a.in->monitor;
  ev.window_start = a.monitor_limits.from;
  ev.window_end = a.in->now;
  ev.ignored = a.ignored;
  FillRegions(a, ev);
  FillTally(a, ev);
  for (const Upstream& u : a.upstreams) ev.upstreams.push_back(UpstreamFacts(u));
  FillNotes(a, ev);
  return ev;
}

// ---------------------------------------------------------------------------------------------
// The outcomes that are not table rows on failing regions.

std::string MostCommon(const std::vector<NameCount>& counts) {
  const auto it =
      std::max_element(counts.begin(), counts.end(),
                       [](const NameCount& x, const NameCount& y) { return x.count < y.count; });
  return it == counts.end() ? std::string() : it->name;
}

std::string Unknown(const Analysis& a) {
  const ProbeResult& r = a.Current(a.failing.front());
  if (r.http_status > 0) {
    return a.in->monitor + " answers " + Status(r.http_status) + Where(a) +
           ", and nothing in the response (page, headers) tells which layer sent it";
  }
  return a.in->monitor + " fails (" + std::string(ToString(r.outcome)) + ")" + Where(a);
}

std::string Healthy(const Analysis& a) {
  std::string s =
      a.in->monitor + " healthy in " + Fraction(a.monitor.size(), a.monitor.size(), "regions");
  if (!a.upstreams.empty()) {
    s += "; " + Fraction(a.CountUpstreams(UpstreamState::kHealthy), a.upstreams.size(),
                         "upstreams healthy");
  }
  return s;
}

std::string Transient(const Analysis& a, const Evidence& ev) {
  size_t regions = 0;
  for (const auto& [region, t] : a.monitor) regions += t.failures > 0 ? 1 : 0;
  return a.in->monitor + " failed " + std::to_string(ev.failures) + "x in " +
         Fraction(regions, a.monitor.size(), "regions") + " between " + Time(*ev.first_failure) +
         " and " + Time(*ev.last_failure) + " (" + MostCommon(ev.outcomes) +
         "); healthy again before any alert fired";
}

enum class Healed : uint8_t { kTransientOrReRun, kAsOfLastFailure };

Diagnosis Decide(const Analysis& a, Healed healed);

// Row 10 with alert_fired: the verdict as of the last failure, so that a closing incident keeps
// its root cause (header comment). Each region that failed keeps its results up to its last
// failure; upstream results are aligned to those failures as always.
Diagnosis AsOfLastFailure(const Analysis& a) {
  Limits monitor = a.monitor_limits;
  SystemTime last_failure{};
  for (const auto& [region, t] : a.monitor) {
    if (t.last_failure == nullptr) continue;
    monitor.before[region] = t.last_failure->started_at + SystemTime::duration(1);
    last_failure = std::max(last_failure, t.last_failure->started_at);
  }
  // Recovered when the last region to recover did: per region its first healthy result after
  // its last failure, the latest of those.
  ByRegion recovery;
  for (const ProbeResult& r : a.in->results) {
    if (IsFailure(r.outcome) || Check(r, a.in->monitor, a.monitor_limits) != Skip::kNone) continue;
    const Track& t = a.At(r.region);
    if (t.last_failure == nullptr || r.started_at <= t.last_failure->started_at) continue;
    const ProbeResult*& first = recovery[r.region];
    if (Older(r, first)) first = &r;
  }
  std::optional<SystemTime> recovered_at;
  for (const auto& [region, r] : recovery) {
    recovered_at = std::max(recovered_at.value_or(r->started_at), r->started_at);
  }
  const Analysis as_of = Analyze(*a.in, monitor, a.upstream_limits);
  Diagnosis d = Decide(as_of, Healed::kAsOfLastFailure);
  d.evidence.as_of = last_failure;
  d.evidence.recovered_at = recovered_at;
  d.evidence.notes.push_back("verdict as of the last failure at " + Time(last_failure) +
                             ": an alert fired and the monitor is healthy again");
  d.summary = Fit(d.summary, recovered_at ? "; healthy again since " + Time(*recovered_at) : "");
  return d;
}

Diagnosis Decide(const Analysis& a, Healed healed) {
  Diagnosis d;
  d.evidence = Collect(a);
  if (a.monitor.empty()) {
    d.verdict = Verdict::kUnknown;
    d.summary = Fit("no confirmed results for " + a.in->monitor + " in the window");
    d.evidence.notes.push_back("no confirmed monitor results: nothing to judge");
    return d;
  }
  for (const auto& [verdict, row] : kRows) {
    if (row(a, d)) {
      d.verdict = verdict;
      d.summary = Fit(d.summary);
      return d;
    }
  }
  if (!a.failing.empty()) {
    d.verdict = Verdict::kUnknown;
    d.summary = Fit(Unknown(a));
  } else if (d.evidence.failures == 0) {
    d.verdict = Verdict::kHealthy;
    d.summary = Fit(Healthy(a));
  } else if (healed == Healed::kTransientOrReRun && !a.in->alert_fired) {
    d.verdict = Verdict::kTransient;
    d.summary = Fit(Transient(a, d.evidence));
  } else if (healed == Healed::kTransientOrReRun) {
    return AsOfLastFailure(a);
  } else {
    // Only reachable when a failure and a recovery share one instant: nothing left to judge.
    d.verdict = Verdict::kUnknown;
    d.summary = Fit(a.in->monitor + ": the last failure could not be reconstructed");
  }
  return d;
}

// ---------------------------------------------------------------------------------------------
// JSON.

using nlohmann::json;

json TimeJson(const std::optional<SystemTime>& t) {
  return t ? json(FormatTime(*t)) : json(nullptr);
}

json MsJson(const std::optional<microseconds>& us) {
  return us ? json(static_cast<double>(us->count()) / 1000.0) : json(nullptr);
}

json CountsJson(const std::vector<NameCount>& counts) {
  json j = json::object();
  for (const auto& c : counts) j[c.name] = c.count;
  return j;
}

json FactsJson(const ResultFacts& f) {
  return {{"region", f.region},
          {"started_at", FormatTime(f.started_at)},
          {"outcome", ToString(f.outcome)},
          {"http_status", f.http_status},
          {"emitter", ToString(f.emitter)},
          {"reason", ToString(f.reason)},
          {"processing_ms", MsJson(f.processing)},
          {"total_ms", MsJson(f.total)},
          {"detail", f.detail}};
}

json FactsJson(const std::optional<ResultFacts>& f) { return f ? FactsJson(*f) : json(nullptr); }

json RegionJson(const RegionEvidence& r) {
  return {{"region", r.region},
          {"results", r.results},
          {"failures", r.failures},
          {"outcomes", CountsJson(r.outcomes)},
          {"failing_since", TimeJson(r.failing_since)},
          {"current", FactsJson(r.current)}};
}

json UpstreamJson(const UpstreamEvidence& u) {
  return {{"name", u.name},
          {"state", ToString(u.state)},
          {"regions", u.regions},
          {"results", u.results},
          {"failures", u.failures},
          {"latest", FactsJson(u.latest)},
          {"failing_since", TimeJson(u.failing_since)},
          {"max_processing_ms", MsJson(u.max_processing)},
          {"max_total_ms", MsJson(u.max_total)}};
}

json TlsJson(const Evidence& ev) {
  if (!ev.tls) return nullptr;
  return {{"region", ev.tls_region},
          {"version", ev.tls->version},
          {"subject", ev.tls->subject},
          {"issuer", ev.tls->issuer},
          {"earliest_expiry", TimeJson(ev.tls->earliest_expiry)},
          {"earliest_expiry_subject", ev.tls->earliest_expiry_subject}};
}

json DnsJson(const Evidence& ev) {
  if (!ev.dns_change) return nullptr;
  return {{"region", ev.dns_change->region},
          {"before", ev.dns_change->before},
          {"after", ev.dns_change->after},
          {"at", FormatTime(ev.dns_change->at)}};
}

json ListJson(const auto& items, auto to_json) {
  json j = json::array();
  for (const auto& item : items) j.push_back(to_json(item));
  return j;
}

}  // namespace

std::string_view ToString(Verdict v) {
  const auto i = static_cast<size_t>(v);
  return i < kVerdictNames.size() ? kVerdictNames[i] : "unknown";
}

std::optional<Verdict> VerdictFromString(std::string_view name) {
  for (size_t i = 0; i < kVerdictNames.size(); ++i) {
    if (kVerdictNames[i] == name) return static_cast<Verdict>(i);
  }
  return std::nullopt;
}

std::span<const Verdict> AllVerdicts() { return kAllVerdicts; }

std::string_view ToString(UpstreamState s) {
  switch (s) {
    case UpstreamState::kHealthy:
      return "healthy";
    case UpstreamState::kFailing:
      return "failing";
    case UpstreamState::kNoData:
      return "no_data";
  }
  return "no_data";
}

Diagnosis Diagnose(const DiagnosisInput& input) {
  Limits limits;
  if (input.window > Duration::zero()) limits.from = input.now - input.window;
  return Decide(Analyze(input, limits, limits), Healed::kTransientOrReRun);
}

std::string EvidenceToJson(const Diagnosis& d) {
  const Evidence& ev = d.evidence;
  json headers = json::object();
  for (const auto& [name, value] : ev.sample_headers) {
    if (!headers.contains(name)) headers[name] = value;
  }
  json j = {
      {"verdict", ToString(d.verdict)},
      {"summary", d.summary},
      {"monitor", ev.monitor},
      {"window", {{"start", TimeJson(ev.window_start)}, {"end", FormatTime(ev.window_end)}}},
      {"results", ev.results},
      {"failures", ev.failures},
      {"ignored",
       {{"unconfirmed", ev.ignored.unconfirmed},
        {"outside_window", ev.ignored.outside_window},
        {"other_monitor", ev.ignored.other_monitor}}},
      {"first_failure", TimeJson(ev.first_failure)},
      {"last_failure", TimeJson(ev.last_failure)},
      {"failing_since", TimeJson(ev.failing_since)},
      {"regions", ListJson(ev.regions, [](const RegionEvidence& r) { return RegionJson(r); })},
      {"failing_regions", ev.failing_regions},
      {"healthy_regions", ev.healthy_regions},
      {"outcomes", CountsJson(ev.outcomes)},
      {"emitters", CountsJson(ev.emitters)},
      {"reasons", CountsJson(ev.reasons)},
      {"latest_failure", FactsJson(ev.latest_failure)},
      {"sample_headers", headers},
      {"sample_body", ev.sample_body},
      {"upstreams",
       ListJson(ev.upstreams, [](const UpstreamEvidence& u) { return UpstreamJson(u); })},
      {"slowest_upstream", ev.slowest_upstream.empty() ? json(nullptr) : json(ev.slowest_upstream)},
      {"gives_up_after_ms", MsJson(ev.gives_up_after)},
      {"resolved_sets", ListJson(ev.resolved_sets,
                                 [](const AddressSet& s) {
                                   return json{{"addresses", s.addresses},
                                               {"results", s.results},
                                               {"regions", s.regions}};
                                 })},
      {"dns_change", DnsJson(ev)},
      {"tls", TlsJson(ev)},
      {"as_of", TimeJson(ev.as_of)},
      {"recovered_at", TimeJson(ev.recovered_at)},
      {"notes", ev.notes},
  };
  // Body snippets and details are bytes from the network: replace invalid UTF-8, never throw.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace gatewatch::probes
