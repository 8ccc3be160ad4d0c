#include <array>
#include <map>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "probes/verdict_internal.h"

namespace gatewatch::probes::verdict_internal {
namespace {

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

}  // namespace

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

}  // namespace gatewatch::probes::verdict_internal
