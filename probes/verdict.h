#pragma once
// The verdict engine (docs/alerts-and-diagnosis.md): from a monitor's results and its linked upstreams'
// results over a window, one verdict of the table plus structured evidence.
//
// Diagnose() is pure: no I/O, no clock reads, no global state; the same input gives the same
// output. It is safe on any thread. The daemon calls it on the pipeline thread for a monitor
// whenever its evidence changes; `gatewatch check` calls it on live results.
//
// Cost: linear in the results given. Each series (the monitor, every upstream) is walked a
// fixed number of times (at most four, doubled when a closed incident is re-run); per result
// the work is a map lookup by region (O(log regions)), for the monitor one by resolved address
// set (at most kMaxAddressSets kept), and for an upstream one bound check per failing monitor
// region (O(results x regions); regions are few). Nothing compares results pairwise.
//
// Semantics (the choices a plain reading leaves open are marked "decided"):
// - Only confirmed results count (ProbeResult::confirmed). Results whose `monitor` is set and
//   differs from the series name, unconfirmed attempts and results before the window are
//   ignored and counted in Evidence::ignored (never dropped silently).
// - Window: results with started_at >= now - window count. Decided: there is no upper bound,
//   because a remote agent's clock may run slightly ahead of the daemon's, and dropping its
//   newest result would misstate that region. window <= 0 means "every result given counts".
// - Current state of a (series, region) = its newest confirmed result (ties in started_at:
//   the later one in the input wins). A failing region = a region whose current monitor result
//   is a failure (IsFailure); a healthy region = one whose current result is not.
// - Onset of a failing region = the first failure after its last healthy result (or its first
//   failure in the window). "since" in summaries is the earliest onset over failing regions.
// - Upstream compared results. With failing regions F: for each f in F, the upstream's result
//   from f that can describe the time of f's current failure: among those started no later
//   than that failure ended (started_at + total) plus kConfirmationSlack, the one started
//   closest to the failure (the onset confirmation, or the regular probe next to it); when it
//   has none from f, (decided) the closest such result from any region. Decided: newer upstream results are
//   not compared, because the monitor's failure is older than them: an upstream that came back
//   after the gateway's last 502 must not turn upstream_down into gateway_fault (docs/alerts-and-diagnosis.md: "the
//   comparison is made within the same second"; the confirmation probe started at once after
//   the failure falls inside the slack). With no failing region: the upstream's current result
//   in every region it has. An upstream is `failing` when any compared result fails, `healthy`
//   when all are healthy, `no_data` when nothing could be compared.
// - Gateway-side failure of a region: IsGatewayError(status, emitter), or (relay) its failure
//   is the outcome a failing upstream shows in that region, e.g. nginx passing a garbage-
//   speaking upstream through as malformed_response. Decided: only outcomes that need a
//   connection to the gateway can be relayed (not dns/connect/tls/proxy errors), so a dead
//   gateway host is never blamed on its upstreams.
//
// Rows, first match wins (F = failing regions, "any f" = the current failure of some f in F):
//  1 proxy_region   F non-empty and every f fails with proxy_error.
//  2 dns            any f is dns_error, or in some f the resolved address set differs between
//                   the last healthy result and the onset (decided: only when both are non-empty;
//                   through a proxy nothing is resolved locally).
//  3 tls            any f is tls_error / tls_cert_invalid; evidence.tls holds its certificate.
//  4 regional       F non-empty and at least one other region is healthy.
//  5 upstream_down  at least one upstream is linked, every linked upstream is failing (one with
//                   no_data blocks this row), and either any f is gateway-side or a timeout
//                   (timeout_ttfb, timeout_body: a gateway that keeps retrying a dead upstream
//                   does not answer within the probe's timeout, as HAProxy's default retries
//                   do), or F is empty: the gateway still answers (from a server not linked, a
//                   cache, or by passing the upstream's reply through), which the summary says.
//  6 upstream_slow  at least one upstream is healthy (answers) and any f either answers 504 or
//                   carries reason upstream_timeout, or (timing) is a gateway's own 5xx that
//                   arrived after T >= kMinGiveUp, where T is near-constant over that region's
//                   gateway-class failures (max <= min x kGiveUpSpread), and a healthy upstream's
//                   compared result took longer than T: the gateway gives up before the upstream
//                   answers (Apache, Varnish and h2o say so with a 502 or 503, not a 504).
//                   evidence.slowest_upstream names the slowest; evidence.gives_up_after is T.
//  7 partial_upstream_failure  some but not all linked upstreams failing (no_data counts as
//                   not failing), with or without F.
//                   Evaluated before row 16, so a degraded pool wins over `transient` and over
//                   the re-run of a closed incident: the pool is still degraded now.
//  8 cdn_origin     any f comes from a CDN emitter that blames the origin. Decided: CDN emitters
//                   are cloudflare, cloudflare_origin, cloudfront, fastly and akamai (aws_alb and
//                   google_lb are load balancers in front of your own backends: they belong to
//                   rows 5/6/9). It blames the origin when it is cloudflare with status 520-530,
//                   cloudflare_origin (the origin itself returned the 5xx), or the reason is
//                   one of upstream_connect_failed, upstream_timeout, upstream_reset,
//                   invalid_upstream_response, no_healthy_upstream, origin_tls,
//                   origin_unreachable.
//  9 gateway_fault  any f is IsGatewayError and every linked upstream (at least one) is healthy.
// The rows below need no linked upstream: the failure itself says where it happened.
// 10 application_error  any f is a 5xx the application generated itself (emitter application),
//                   possibly relayed by a gateway.
// 11 behind_gateway any f is gateway-class (a gateway's own 5xx page, or a 502/504 no known page
//                   names): the gateway reports its upstream failing, but no linked upstream
//                   confirms which (none linked, or without results).
// 12 not_listening  any f is connect_refused: nothing listens on the address and port.
// 13 network_path   any f is connect_timeout or network_unreachable: packets dropped on the way
//                   (firewall, host down) or no route.
// 14 connection_failure  any f connected and then failed without an HTTP answer: timeout_ttfb,
//                   timeout_body, connection_reset, empty_reply, malformed_response.
// 15 bad_response   any f answered, but not as the monitor expects: http_4xx, unexpected_status,
//                   assertion_failed, redirect_loop.
// 16 transient      F empty (healthy in every region), failures in the window, !alert_fired.
//                   With alert_fired the rows are re-run "as of the last failure": each region
//                   that failed keeps its monitor results up to its last failure (upstream
//                   results are aligned to those failures as above, so the confirmation probed
//                   right after a failure counts and later recoveries do not). The verdict and
//                   evidence are those of the re-run, with as_of / recovered_at set (recovered_at
//                   = when the last region to recover did).
// 17 unknown        F non-empty and nothing above matched (a 500/503 no page or header
//                   attributes: nothing tells which layer sent it); also: no confirmed monitor result
//                   in the window (decided: "healthy" would be a claim without evidence).
//  - healthy        no failing region, no failure in the window, no failing upstream.
//
// Summaries are one line under kSummaryMaxBytes: they name the upstreams (at most two, then
// "and N more"), the outcome, "N/M regions", "since <RFC 3339, seconds>" and what the gateway
// answers.

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "probes/clock.h"
#include "probes/duration.h"
#include "probes/fingerprint.h"
#include "probes/outcome.h"
#include "probes/probe_result.h"

namespace gatewatch::probes {

// Stable names (docs: the verdict table): healthy, proxy_region, dns, tls, regional,
// upstream_down, upstream_slow, partial_upstream_failure, cdn_origin, gateway_fault,
// application_error, behind_gateway, not_listening, network_path, connection_failure,
// bad_response, transient, unknown.
enum class Verdict : uint8_t {
  kHealthy,
  kProxyRegion,
  kDns,
  kTls,
  kRegional,
  kUpstreamDown,
  kUpstreamSlow,
  kPartialUpstreamFailure,
  kCdnOrigin,
  kGatewayFault,
  kApplicationError,
  kBehindGateway,
  kNotListening,
  kNetworkPath,
  kConnectionFailure,
  kBadResponse,
  kTransient,
  kUnknown,
};

std::string_view ToString(Verdict v);
std::optional<Verdict> VerdictFromString(std::string_view name);
std::span<const Verdict> AllVerdicts();  // declaration order

inline constexpr size_t kSummaryMaxBytes = 200;               // summaries are at most this long
inline constexpr std::chrono::seconds kConfirmationSlack{5};  // see "compared results" above
inline constexpr size_t kMaxAddressSets = 8;     // distinct resolved sets kept in evidence
inline constexpr size_t kSampleBodyBytes = 256;  // of the latest failure's body snippet
// Row 6's timing rule: a gateway "gives up after T" when its failures took at least
// kMinGiveUp (an instant 502 is no timeout) and the slowest took at most kGiveUpSpread times
// the fastest (a timer, not a varying failure).
inline constexpr std::chrono::milliseconds kMinGiveUp{500};
inline constexpr double kGiveUpSpread = 1.25;

struct DiagnosisInput {
  std::string monitor;
  std::vector<ProbeResult> results;  // the monitor's results, any order, any region
  std::map<std::string, std::vector<ProbeResult>> upstreams;  // linked upstream -> its results
  SystemTime now{};
  Duration window{};         // <= 0: no lower bound
  bool alert_fired = false;  // an alert fired during the current incident (row 16's re-run)
};

// One result as evidence shows it.
struct ResultFacts {
  std::string region;
  SystemTime started_at{};
  Outcome outcome = Outcome::kOk;
  int http_status = 0;
  Emitter emitter = Emitter::kNone;
  Reason reason = Reason::kUnknown;
  std::optional<std::chrono::microseconds> processing, total;
  std::string detail;
};

struct NameCount {
  std::string name;
  int count = 0;
};

struct RegionEvidence {
  std::string region;
  int results = 0;  // confirmed, counted
  int failures = 0;
  std::vector<NameCount> outcomes;          // non-zero counts, Outcome order
  std::optional<SystemTime> failing_since;  // onset; empty when the region is healthy
  ResultFacts current;                      // its newest confirmed result
};

enum class UpstreamState : uint8_t { kHealthy, kFailing, kNoData };
std::string_view ToString(UpstreamState s);  // healthy, failing, no_data

struct UpstreamEvidence {
  std::string name;
  UpstreamState state = UpstreamState::kNoData;
  std::vector<std::string> regions;  // regions of the compared results
  int results = 0;                   // confirmed, counted, all regions
  int failures = 0;
  std::optional<ResultFacts> latest;  // newest compared result (newest failing one if failing)
  std::optional<SystemTime> failing_since;  // start of the streak of its failing compared result
  std::optional<std::chrono::microseconds> max_processing, max_total;  // over compared results
};

struct AddressSet {
  std::vector<std::string> addresses;  // sorted, as ProbeResult::resolved
  int results = 0;
  std::vector<std::string> regions;
};

struct DnsChange {
  std::string region;
  std::vector<std::string> before, after;  // last healthy result, onset failure
  SystemTime at{};                         // onset
};

struct Ignored {
  int unconfirmed = 0;
  int outside_window = 0;  // before the window (or, in a re-run, after a region's last failure)
  int other_monitor = 0;   // ProbeResult::monitor set to another name
};

struct Evidence {
  std::string monitor;
  std::optional<SystemTime> window_start;  // empty: no lower bound
  SystemTime window_end{};                 // DiagnosisInput::now
  int results = 0;                         // the monitor's confirmed results counted
  int failures = 0;
  Ignored ignored;  // monitor and upstream results together
  std::optional<SystemTime> first_failure, last_failure, failing_since;
  std::vector<RegionEvidence> regions;  // by name
  std::vector<std::string> failing_regions, healthy_regions;
  std::vector<NameCount> outcomes, emitters, reasons;  // over the monitor's failures
  std::optional<ResultFacts> latest_failure;
  std::vector<std::pair<std::string, std::string>> sample_headers;  // of latest_failure
  std::string sample_body;                                          // its first bytes
  std::vector<UpstreamEvidence> upstreams;                          // by name
  std::string slowest_upstream;                                     // upstream_slow only
  std::optional<std::chrono::microseconds> gives_up_after;  // upstream_slow by timing: T
  std::vector<AddressSet> resolved_sets;  // distinct sets the monitor's name resolved to
  std::optional<DnsChange> dns_change;    // dns only
  std::optional<TlsFacts> tls;            // tls only: the failing result's certificate
  std::string tls_region;
  std::optional<SystemTime> as_of, recovered_at;  // re-run of a closed incident (row 16)
  std::vector<std::string> notes;                 // why a row did not apply, data problems
};

struct Diagnosis {
  Verdict verdict = Verdict::kUnknown;
  std::string summary;  // one line for humans, at most kSummaryMaxBytes
  Evidence evidence;
};

Diagnosis Diagnose(const DiagnosisInput& input);

// One JSON object: {"verdict", "summary", "monitor", "window": {"start"|null, "end"}, "results",
// "failures", "ignored": {"unconfirmed", "outside_window", "other_monitor"}, "first_failure",
// "last_failure", "failing_since", "regions": [{"region", "results", "failures", "outcomes":
// {name: n}, "failing_since", "current": Facts}], "failing_regions", "healthy_regions",
// "outcomes"/"emitters"/"reasons": {name: n}, "latest_failure": Facts|null, "sample_headers":
// {name: value} (first of each name), "sample_body", "upstreams": [{"name", "state", "regions",
// "results", "failures", "latest": Facts|null, "failing_since", "max_processing_ms",
// "max_total_ms"}], "slowest_upstream"|null, "gives_up_after_ms"|null, "resolved_sets": [{"addresses", "results",
// "regions"}], "dns_change"|null, "tls"|null, "as_of", "recovered_at", "notes": [...]}.
// Facts = {"region", "started_at", "outcome", "http_status", "emitter", "reason",
// "processing_ms", "total_ms", "detail"}. Times are RFC 3339 with ms (FormatTime) or null;
// latencies are ms as numbers or null. Invalid UTF-8 (body snippets, details) is replaced with
// U+FFFD, never thrown.
std::string EvidenceToJson(const Diagnosis& d);

}  // namespace gatewatch::probes
