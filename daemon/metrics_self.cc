#include "daemon/metrics.h"

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "daemon/metrics_extensions.h"

namespace gatewatch::daemon {
namespace {

prometheus::MetricFamily OneValue(std::string name, std::string help, prometheus::MetricType type,
                                  double value,
                                  std::vector<prometheus::ClientMetric::Label> labels = {}) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  if (type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f.metric.push_back(std::move(m));
  return f;
}

prometheus::MetricFamily Gauge(std::string name, std::string help, double value,
                               std::vector<prometheus::ClientMetric::Label> labels = {}) {
  return OneValue(std::move(name), std::move(help), prometheus::MetricType::Gauge, value,
                  std::move(labels));
}

prometheus::MetricFamily Counter(std::string name, std::string help, uint64_t value) {
  return OneValue(std::move(name), std::move(help), prometheus::MetricType::Counter,
                  static_cast<double>(value));
}

// Notification delivery and rule evaluation (docs/metrics.md: gatewatch_notifications_total,
// gatewatch_outbox_pending; plus delivery latency and the evaluator's own cost).
void AppendAlerting(const SelfStats::Alerting& a, std::vector<prometheus::MetricFamily>& families) {
  prometheus::MetricFamily results;
  results.name = "gatewatch_notifications_total";
  results.help =
      "Notification delivery attempts by notifier and result (delivered, retry, rate_limited, "
      "rejected, gave_up, dropped, refreshed, refresh_failed).";
  results.type = prometheus::MetricType::Counter;
  prometheus::MetricFamily latency;
  latency.name = "gatewatch_notification_delivery_seconds";
  latency.help = "Time from a notification's creation to its recorded delivery (retries included).";
  latency.type = prometheus::MetricType::Histogram;
  for (const auto& [notifier, stats] : a.notifiers) {
    for (const auto& [result, count] : stats.results) {
      prometheus::ClientMetric m;
      m.label = {{"notifier", notifier}, {"result", result}};
      m.counter.value = static_cast<double>(count);
      results.metric.push_back(std::move(m));
    }
    if (stats.latency_count == 0) continue;
    prometheus::ClientMetric h;
    h.label = {{"notifier", notifier}};
    uint64_t cumulative = 0;
    for (size_t i = 0; i < alerting::kDeliveryLatencyBuckets.size(); ++i) {
      cumulative += stats.latency_buckets[i];
      h.histogram.bucket.push_back({cumulative, alerting::kDeliveryLatencyBuckets[i]});
    }
    cumulative += stats.latency_buckets.back();
    h.histogram.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
    h.histogram.sample_count = cumulative;
    h.histogram.sample_sum = stats.latency_sum_seconds;
    latency.metric.push_back(std::move(h));
  }
  if (!results.metric.empty()) families.push_back(std::move(results));
  if (!latency.metric.empty()) families.push_back(std::move(latency));
  families.push_back(Gauge("gatewatch_outbox_pending", "Notifications waiting for delivery.",
                           static_cast<double>(a.outbox_pending)));
  families.push_back(Counter("gatewatch_alert_results_evaluated_total",
                             "Confirmed probe results evaluated by the alert rules.", a.results_evaluated));
  families.push_back(Counter("gatewatch_alert_results_dropped_total",
                             "Confirmed probe results not evaluated because the alert queue was full.",
                             a.results_dropped));
  families.push_back(OneValue("gatewatch_alert_evaluation_seconds_total",
                              "Time the alert evaluator spent on probe results.",
                              prometheus::MetricType::Counter, a.evaluation_seconds));
}

}  // namespace

void FillLag(const LagHistogram& lag, SelfStats& out) {
  out.lag_buckets = lag.Buckets();
  out.lag_sum_seconds = lag.SumSeconds();
}

void Metrics::SetSelfStats(std::function<SelfStats()> source) {
  std::lock_guard lock(self_mu_);
  self_source_ = std::move(source);
}

std::string Metrics::RenderSelf() const {
  using prometheus::ClientMetric;
  using prometheus::MetricFamily;
  std::string extension_text;
  {
    std::lock_guard lock(extensions_->mu);
    for (const auto& [name, impl] : extensions_->gauges) impl->family.Render(extension_text, "gauge");
    for (const auto& [name, impl] : extensions_->counters) impl->family.Render(extension_text, "counter");
  }
  std::vector<MetricFamily> families;

  std::optional<SelfStats> s;
  {
    std::lock_guard lock(self_mu_);
    if (self_source_) s = self_source_();
  }
  if (s) {
    MetricFamily lag;
    lag.name = "gatewatch_scheduler_lag_seconds";
    lag.help = "Delay between a scheduled probe's due time and its start.";
    lag.type = prometheus::MetricType::Histogram;
    ClientMetric h;
    uint64_t cumulative = 0;
    for (size_t i = 0; i < LagHistogram::kBoundsMs.size(); ++i) {
      cumulative += s->lag_buckets[i];
      h.histogram.bucket.push_back(
          {cumulative, static_cast<double>(LagHistogram::kBoundsMs[i]) / 1000.0});
    }
    cumulative += s->lag_buckets.back();
    // The count is the buckets' sum (not a separately read counter), so +Inf == _count.
    h.histogram.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
    h.histogram.sample_count = cumulative;
    h.histogram.sample_sum = s->lag_sum_seconds;
    lag.metric.push_back(std::move(h));
    families.push_back(std::move(lag));

    families.push_back(Gauge("gatewatch_probes_in_flight", "Probes running now.",
                             static_cast<double>(s->probes_in_flight)));
    families.push_back(Gauge("gatewatch_probes_queued",
                             "Probes submitted and waiting for an in-flight slot.",
                             static_cast<double>(s->probes_queued)));
    MetricFamily skipped;
    skipped.name = "gatewatch_probes_skipped_total";
    skipped.help =
        "Scheduled probes that did not run: overload (not started by the next due time), "
        "backpressure (the database writer's queue was full), missed (the scheduler loop fell "
        "more than an interval behind).";
    skipped.type = prometheus::MetricType::Counter;
    for (const auto& [reason, value] : {std::pair{"overload", s->skipped_overload},
                                        std::pair{"backpressure", s->skipped_backpressure},
                                        std::pair{"missed", s->skipped_missed}}) {
      ClientMetric m;
      m.label = {{"reason", reason}};
      m.counter.value = static_cast<double>(value);
      skipped.metric.push_back(std::move(m));
    }
    families.push_back(std::move(skipped));
    families.push_back(Gauge("gatewatch_db_write_batch_seconds",
                             "Duration of the last committed database write batch.",
                             s->db_last_batch_seconds));
    families.push_back(Counter("gatewatch_db_write_batches_total",
                               "Database write batches (transactions) committed.", s->db_batches));
    families.push_back(
        Counter("gatewatch_db_rows_written_total", "Result rows committed.", s->db_rows_written));
    families.push_back(Gauge("gatewatch_db_queue_depth",
                             "Results accepted by the writer and not yet committed or lost.",
                             static_cast<double>(s->db_queue_depth)));
    families.push_back(Counter("gatewatch_db_rows_lost_total",
                               "Accepted result rows given up after repeated write errors.",
                               s->db_rows_lost));
    families.push_back(Counter("gatewatch_db_write_errors_total",
                               "Failed attempts to commit a write batch.", s->db_write_errors));
  }
  if (s && s->alerting) AppendAlerting(*s->alerting, families);
  if (s && s->http) {
    const SelfStats::Http& h = *s->http;
    families.push_back(Gauge("gatewatch_http_connections", "Connections open to the HTTP listener.",
                             static_cast<double>(h.open)));
    families.push_back(Counter("gatewatch_http_connections_accepted_total",
                               "Connections accepted by the HTTP listener.", h.accepted));
    MetricFamily closed;
    closed.name = "gatewatch_http_connections_closed_total";
    closed.help =
        "Connections the HTTP listener closed by its bounds: peer_limit and total_limit (refused "
        "at accept), evicted (the oldest waiting connection, to make room), timeout (a request, "
        "idle or write deadline passed mid-request), bad_request (a malformed or oversized "
        "request).";
    closed.type = prometheus::MetricType::Counter;
    for (const auto& [reason, value] : {std::pair{"peer_limit", h.peer_limit}, std::pair{"total_limit", h.total_limit},
                                        std::pair{"evicted", h.evicted}, std::pair{"timeout", h.timeout},
                                        std::pair{"bad_request", h.bad_request}}) {
      ClientMetric m;
      m.label = {{"reason", reason}};
      m.counter.value = static_cast<double>(value);
      closed.metric.push_back(std::move(m));
    }
    families.push_back(std::move(closed));
    families.push_back(Counter("gatewatch_http_requests_total", "Requests the HTTP listener answered.", h.requests));
  }
  families.push_back(Gauge("gatewatch_build_info", "gatewatch build; the value is always 1.", 1,
                           {{"version", version_}}));
  if (s) {
    families.push_back(Gauge(
        "process_start_time_seconds", "Start time of the process since the Unix epoch in seconds.",
        static_cast<double>(
            std::chrono::duration_cast<std::chrono::milliseconds>(s->start_time.time_since_epoch())
                .count()) /
            1000.0));
  }

  std::ostringstream text;
  prometheus::TextSerializer().Serialize(text, families);
  return extension_text + std::move(text).str();
}

}  // namespace gatewatch::daemon
