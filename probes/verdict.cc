#include "probes/verdict.h"

#include <algorithm>
#include <initializer_list>
#include <utility>

#include "probes/verdict_internal.h"

namespace gatewatch::probes {
namespace {

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

}  // namespace

namespace verdict_internal {
namespace {

using std::chrono::microseconds;

// ---------------------------------------------------------------------------------------------
// The rows (docs/alerts-and-diagnosis.md), first match wins. Each sets the summary and its own evidence only
// when it matches.

// The upstreams in state `s`, by name.
std::vector<const Upstream*> InState(const Analysis& a, UpstreamState s) {
  std::vector<const Upstream*> out;
  for (const Upstream& u : a.upstreams) {
    if (u.state == s) out.push_back(&u);
  }
  return out;
}

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

enum class Healed : uint8_t { kTransientOrReRun, kAsOfLastFailure };

Diagnosis Decide(const Analysis& a, Healed healed);

// Row 16 (transient) with alert_fired: the verdict as of the last failure, so that a closing incident keeps
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

}  // namespace
}  // namespace verdict_internal

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
  verdict_internal::Limits limits;
  if (input.window > Duration::zero()) limits.from = input.now - input.window;
  return verdict_internal::Decide(verdict_internal::Analyze(input, limits, limits),
                                  verdict_internal::Healed::kTransientOrReRun);
}

}  // namespace gatewatch::probes
