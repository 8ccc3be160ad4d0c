#pragma once
// The families gatewatch writes itself: the probe families, rendered from the probe state
// (daemon/metrics.cc), and the self metrics (daemon/metrics_self.cc). Their names are not
// for the extension point (daemon/metrics_extensions.cc).

#include <algorithm>
#include <array>
#include <cstddef>
#include <string_view>

namespace gatewatch::daemon::internal {

// The probe families, in output order.
enum Family : size_t {
  kSuccess,
  kPhase,
  kStatus,
  kProbesTotal,
  kResponsesTotal,
  kEmitterTotal,
  kTlsExpiry,
  kFamilyCount,
};

struct FamilyInfo {
  std::string_view name;
  std::string_view type;
  std::string_view help;
};

inline constexpr std::array<FamilyInfo, kFamilyCount> kFamilies = {{
    {"gatewatch_probe_success", "gauge",
     "1 if the last confirmed probe of the monitor in the region succeeded (ok or excused), "
     "else 0."},
    {"gatewatch_probe_phase_seconds", "gauge",
     "Phase durations of the last confirmed probe (resolve, connect, tls, processing, "
     "transfer, total); a phase that was not reached has no series."},
    {"gatewatch_probe_http_status_code", "gauge",
     "HTTP status of the last confirmed probe (0 = no response)."},
    {"gatewatch_probes_total", "counter", "Probe attempts by outcome class, retries included."},
    {"gatewatch_http_responses_total", "counter",
     "HTTP responses received by probes, by status code (every attempt)."},
    {"gatewatch_probe_emitter_total", "counter",
     "5xx responses by the layer that most likely produced them (emitter) and the reason it "
     "gave (every attempt)."},
    {"gatewatch_tls_cert_expiry_timestamp_seconds", "gauge",
     "Earliest notAfter in the certificate chain seen by the last confirmed probes of the "
     "monitor (earliest over regions), as a Unix timestamp."},
}};

// Names the extension point may not take.
inline constexpr std::array<std::string_view, 19> kReservedNames = {
    "gatewatch_scheduler_lag_seconds",
    "gatewatch_probes_in_flight",
    "gatewatch_probes_queued",
    "gatewatch_probes_skipped_total",
    "gatewatch_db_write_batch_seconds",
    "gatewatch_db_write_batches_total",
    "gatewatch_db_rows_written_total",
    "gatewatch_db_queue_depth",
    "gatewatch_db_rows_lost_total",
    "gatewatch_db_write_errors_total",
    "gatewatch_http_connections",
    "gatewatch_http_connections_accepted_total",
    "gatewatch_http_connections_closed_total",
    "gatewatch_http_requests_total",
    "gatewatch_build_info",
    "process_start_time_seconds",
    "gatewatch_probe_success",
    "gatewatch_probe_phase_seconds",
    "gatewatch_probe_http_status_code",
};

inline bool Reserved(std::string_view name) {
  if (std::find(kReservedNames.begin(), kReservedNames.end(), name) != kReservedNames.end()) {
    return true;
  }
  return std::any_of(kFamilies.begin(), kFamilies.end(),
                     [&](const FamilyInfo& f) { return f.name == name; });
}

}  // namespace gatewatch::daemon::internal
