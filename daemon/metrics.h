#pragma once
// The Prometheus exposition of gatewatch (docs/metrics.md; names and labels are a contract).
//
// Per-monitor series come from probe results: Observe() folds each attempt into a compact
// per monitor x region state (a few numbers and counters, label text escaped once), and
// Render() writes the text format from that state itself. prometheus-cpp's Collect() +
// TextSerializer take ~300 ms for the ~120k series of 10,000 monitors (docs/building.md "Metrics
// at scale"); rendering from the state takes a fraction of that (docs/metrics.md). The
// self metrics (from a SelfStats snapshot) are few and go through prometheus-cpp (a Registry
// and TextSerializer); the families added through the extension point below (alert and
// incident series, up to several per monitor) are compact state rendered as text too.
//
// A labelled series exists only once its value has been seen. Gauges follow the last
// *confirmed* result; counters count every attempt (docs/probes.md).
//
// Threads: Observe() runs on the engine thread for every attempt; it takes one mutex for a
// map lookup and a few stores, and allocates only the first time a monitor x region, an
// HTTP code or an emitter/reason pair is seen. Render() runs on HTTP threads; it walks the
// state in slices of a few hundred monitors, taking that mutex once per slice, so an
// Observe() waits at most one slice (well under a millisecond), never a whole scrape.
// RetainMonitors() comes from the main thread (reload). Everything here is thread-safe.

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "alerting/delivery.h"
#include "daemon/probe_loop.h"
#include "probes/clock.h"
#include "probes/probe_result.h"
#include "probes/result.h"

namespace gatewatch::daemon {

class HttpServer;

// A snapshot of the daemon's own state, filled by the daemon (app.cc) at each scrape.
struct SelfStats {
  int64_t probes_in_flight = 0;       // gatewatch_probes_in_flight
  uint64_t probes_queued = 0;         // gatewatch_probes_queued: submitted, waiting for a slot
  uint64_t skipped_overload = 0;      // gatewatch_probes_skipped_total{reason="overload"}
  uint64_t skipped_backpressure = 0;  // ...{reason="backpressure"}: the writer was full
  uint64_t skipped_missed = 0;        // ...{reason="missed"}: the scheduler loop fell behind
  // Scheduler lag, per bucket (not cumulative), LagHistogram::kBoundsMs then +Inf.
  std::array<uint64_t, LagHistogram::kBoundsMs.size() + 1> lag_buckets{};
  double lag_sum_seconds = 0;
  uint64_t db_rows_written = 0;      // gatewatch_db_rows_written_total
  uint64_t db_batches = 0;           // gatewatch_db_write_batches_total
  double db_last_batch_seconds = 0;  // gatewatch_db_write_batch_seconds (last committed batch)
  uint64_t db_queue_depth = 0;       // gatewatch_db_queue_depth
  uint64_t db_rows_lost = 0;         // gatewatch_db_rows_lost_total
  uint64_t db_write_errors = 0;      // gatewatch_db_write_errors_total
  SystemTime start_time{};           // process_start_time_seconds
  // Alerting (absent: no alerting series at all).
  struct Alerting {
    std::map<std::string, alerting::NotifierStats> notifiers;  // gatewatch_notifications_total
    int64_t outbox_pending = 0;                                // gatewatch_outbox_pending
    uint64_t results_evaluated = 0;  // gatewatch_alert_results_evaluated_total
    uint64_t results_dropped = 0;    // gatewatch_alert_results_dropped_total (queue full)
    double evaluation_seconds = 0;   // gatewatch_alert_evaluation_seconds_total
  };
  std::optional<Alerting> alerting;
  // The HTTP listener (absent: no gatewatch_http_* series).
  struct Http {
    uint64_t open = 0;      // gatewatch_http_connections
    uint64_t accepted = 0;  // gatewatch_http_connections_accepted_total
    uint64_t requests = 0;  // gatewatch_http_requests_total
    // gatewatch_http_connections_closed_total{reason}: closed by the listener's bounds.
    uint64_t peer_limit = 0;
    uint64_t total_limit = 0;
    uint64_t evicted = 0;
    uint64_t timeout = 0;
    uint64_t bad_request = 0;
  };
  std::optional<Http> http;
};

// Fills the lag fields of `out` from the probe loop's histogram.
void FillLag(const LagHistogram& lag, SelfStats& out);

// Label name -> value of one series of an extension family.
using MetricLabels = std::map<std::string, std::string>;

// Extension point for the families of later modules (gatewatch_alert_state,
// gatewatch_notifications_total, ...): a labelled family whose series exist once set.
// Thread-safe; each call costs a label-set lookup (~1-2 us), fine for alert-rate updates.
class GaugeFamily {
 public:
  virtual ~GaugeFamily() = default;
  virtual void Set(const MetricLabels& labels, double value) = 0;
  virtual void Remove(const MetricLabels& labels) = 0;  // no-op when absent
};

class CounterFamily {
 public:
  virtual ~CounterFamily() = default;
  // REQUIRES: by >= 0.
  virtual void Increment(const MetricLabels& labels, double by = 1) = 0;
  virtual void Remove(const MetricLabels& labels) = 0;  // no-op when absent
};

class Metrics {
 public:
  // `version` goes to gatewatch_build_info{version}.
  explicit Metrics(std::string version);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Folds one probe attempt in. Engine thread; cheap (see the file comment).
  void Observe(const probes::ProbeResult& r);

  // After a reload: every series whose monitor is not in `names` disappears (probe
  // series, TLS expiry, and extension-family series with a `monitor` label), and later
  // results of monitors outside `names` are ignored (a probe still in flight during the
  // reload cannot bring a removed monitor back). Before the first call every monitor is
  // accepted.
  void RetainMonitors(const std::set<std::string>& names);

  // The source of the self metrics, called once per Render(). Set it before serving.
  // Replacing or clearing it (nullptr: no self metrics but build info) waits for a call
  // in progress to finish, so the objects it reads may be destroyed right after
  // SetSelfStats(nullptr) returns.
  void SetSelfStats(std::function<SelfStats()> source);

  // Extension families, registered once at start-up and owned by this object (the
  // pointer lives as long as it). Registering the same name and help again returns the
  // same family. Errors: an invalid name, or the name taken by another kind or help.
  Result<GaugeFamily*> AddGaugeFamily(const std::string& name, const std::string& help);
  Result<CounterFamily*> AddCounterFamily(const std::string& name, const std::string& help);

  // The whole exposition (text format 0.0.4). Any thread.
  std::string Render() const;

  // How many probe series Render() would write now (for tests and sizing).
  size_t ProbeSeriesCountForTest() const;

 private:
  struct State;
  struct Extensions;

  std::string RenderSelf() const;

  const std::string version_;
  std::unique_ptr<State> state_;  // the probe series; has its own mutex

  mutable std::mutex self_mu_;  // guards self_source_; held while calling it
  std::function<SelfStats()> self_source_;

  std::unique_ptr<Extensions> extensions_;  // the extension families (thread-safe)
};

inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// GET /metrics. `metrics` must outlive the server.
void RegisterMetricsRoute(HttpServer& server, Metrics& metrics);

}  // namespace gatewatch::daemon
