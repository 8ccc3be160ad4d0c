#pragma once
// What one probe attempt found (docs/probes.md). A failed probe is data, not an error.

#include <array>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "probes/clock.h"
#include "probes/fingerprint.h"
#include "probes/outcome.h"

namespace gatewatch::probes {

// blackbox_exporter's phase names. A phase that was not reached is empty, never a fake
// zero. total includes resolve.
struct PhaseTimings {
  std::optional<std::chrono::microseconds> resolve, connect, tls, processing, transfer, total;
};

// Every phase by name, in the order above: what the API, the metrics, latency rules and
// ingest spell as a phase (docs/probes.md).
struct PhaseField {
  std::string_view name;
  std::optional<std::chrono::microseconds> PhaseTimings::*member;
};
inline constexpr std::array<PhaseField, 6> kPhases = {{{"resolve", &PhaseTimings::resolve},
                                                       {"connect", &PhaseTimings::connect},
                                                       {"tls", &PhaseTimings::tls},
                                                       {"processing", &PhaseTimings::processing},
                                                       {"transfer", &PhaseTimings::transfer},
                                                       {"total", &PhaseTimings::total}}};

struct TlsFacts {
  std::string version;  // "TLSv1.3"; empty for plain HTTP or before the handshake
  std::string subject;  // of the leaf certificate
  std::string issuer;
  std::optional<SystemTime> earliest_expiry;  // earliest notAfter in the presented chain
  std::string earliest_expiry_subject;        // whose notAfter that is
};

// Response headers kept in results (docs/probes.md), lower-case names.
inline constexpr std::array<std::string_view, 7> kSelectedHeaders = {
    "server", "via", "cf-ray", "x-served-by", "x-cache", "x-envoy-upstream-service-time",
    "retry-after"};

inline constexpr size_t kBodySnippetBytes = 1024;  // first bytes of a 5xx body kept

struct ProbeResult {
  std::string monitor;
  std::string region;
  SystemTime started_at{};
  SystemTime due{};  // when the schedule wanted it (zero when unscheduled); not stored
  int attempt = 0;         // 0 = the scheduled probe, 1.. = confirmation retries
  bool confirmed = false;  // the attempt that decides (success, or the last retry)
  Outcome outcome = Outcome::kOk;
  int http_status = 0;  // 0 = no response
  PhaseTimings phases;
  int64_t bytes_read = 0;      // body bytes read (capped at max_body)
  std::string remote_ip;       // the address connected to (empty through a proxy)
  std::vector<std::string> resolved;  // the set of addresses the name resolved to, sorted
  std::string http_version;    // "1.1", "2"
  TlsFacts tls;
  Emitter emitter = Emitter::kNone;  // 5xx only
  Reason reason = Reason::kUnknown;
  std::vector<std::pair<std::string, std::string>> headers;  // kSelectedHeaders present
  std::string body_snippet;  // first bytes of a 5xx body
  std::string detail;        // short error detail for humans; never a label
};

}  // namespace gatewatch::probes
