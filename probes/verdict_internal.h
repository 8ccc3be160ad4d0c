#pragma once
// The verdict engine's private interface between its files (probes/verdict.h is the public
// one): the analysis of a monitor and its upstreams that every row reads
// (verdict_analysis.cc), the summary phrases (verdict_summary.cc) and the evidence gathered
// for every verdict (verdict_evidence.cc). The rows themselves are in verdict.cc, the JSON
// form of the evidence in verdict_json.cc. Pointers point into the DiagnosisInput.

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "probes/verdict.h"

namespace gatewatch::probes::verdict_internal {

constexpr size_t kOutcomeCount = kOutcomeNames.size();

// ---------------------------------------------------------------------------------------------
// Analysis (verdict_analysis.cc).

struct Limits {
  std::optional<SystemTime> from;                         // inclusive
  std::map<std::string, SystemTime, std::less<>> before;  // per region, exclusive (re-run cut)
};

enum class Skip : uint8_t { kNone, kUnconfirmed, kOtherMonitor, kOutside };

Skip Check(const ProbeResult& r, std::string_view name, const Limits& lim);

// Input order breaks ties in started_at.
bool NewerOrSame(const ProbeResult& r, const ProbeResult* cur);
bool Older(const ProbeResult& r, const ProbeResult* cur);

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

using ByRegion = std::map<std::string, const ProbeResult*, std::less<>>;

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
                 const Limits& upstream_limits);

// The earliest onset over the failing regions; empty when none fails.
std::optional<SystemTime> FailingSince(const Analysis& a);

// The newest compared result of an upstream, preferring failing ones when it is failing.
const ProbeResult* Shown(const Upstream& u);

// Facts about single results.
bool GatewayClass(const ProbeResult& r);
bool GatewaySide(const Analysis& a, const std::string& region);
bool BlamesOrigin(const ProbeResult& r);

// The first failing region (by name) whose current failure satisfies `pred`.
template <typename Pred>
const std::string* FirstFailing(const Analysis& a, Pred pred) {
  for (const std::string& f : a.failing) {
    if (pred(f)) return &f;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Summary phrases (verdict_summary.cc).

std::string Time(SystemTime t);
std::string Latency(std::chrono::microseconds us);
std::string Seconds(std::chrono::microseconds us);
std::string Status(int status);
std::string Verb(const ProbeResult& r);
std::string Describe(const ProbeResult& r);
std::string GatewayAnswer(const ProbeResult& r);
std::string NameList(const std::vector<std::string>& names);
std::string Fraction(size_t n, size_t of, std::string_view what);
std::string Regions(const Analysis& a);
std::string Since(const Analysis& a);
std::string UpstreamFailures(const std::vector<const Upstream*>& ups);
std::string EarliestSince(const std::vector<const Upstream*>& ups, const Analysis& a);
std::string Where(const Analysis& a);
std::string Fit(std::string text, std::string_view suffix = {});

// The summaries of the verdicts no row gives.
std::string Unknown(const Analysis& a);
std::string Healthy(const Analysis& a);
std::string Transient(const Analysis& a, const Evidence& ev);

// ---------------------------------------------------------------------------------------------
// Evidence (verdict_evidence.cc).

Evidence Collect(const Analysis& a);

}  // namespace gatewatch::probes::verdict_internal
