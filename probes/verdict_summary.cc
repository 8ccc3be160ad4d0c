// The summary: one line for people, built from phrases that name the outcome, the regions,
// the upstreams and what the gateway answers, cut to kSummaryMaxBytes.

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "probes/verdict_internal.h"

namespace gatewatch::probes::verdict_internal {
namespace {

using std::chrono::microseconds;

constexpr size_t kNamesInSummary = 2;  // "a, b and 3 more"

}  // namespace

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

std::string Since(const Analysis& a) {
  const auto since = FailingSince(a);
  return since ? " since " + Time(*since) : std::string();
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
std::string Fit(std::string text, std::string_view suffix) {
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

// " in 1/2 regions since <t>" and, with several failing regions, which.
std::string Where(const Analysis& a) {
  std::string s = " in " + Regions(a);
  if (a.monitor.size() > 1) s += " (" + NameList(a.failing) + ")";
  return s + Since(a);
}

// ---------------------------------------------------------------------------------------------
// The outcomes that are not table rows on failing regions.

namespace {

std::string MostCommon(const std::vector<NameCount>& counts) {
  const auto it =
      std::max_element(counts.begin(), counts.end(),
                       [](const NameCount& x, const NameCount& y) { return x.count < y.count; });
  return it == counts.end() ? std::string() : it->name;
}

}  // namespace

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

}  // namespace gatewatch::probes::verdict_internal
