#pragma once
// The extension families (Metrics::AddGaugeFamily() and AddCounterFamily(), metrics.h):
// compact state rendered as text, like the probe series.
// Not prometheus-cpp families: those hold ~0.5 KB per series at rest and build every series
// again as ClientMetric objects on each scrape; alert rules on 10,000 monitors
// (gatewatch_alert_state, _ratio and _silenced: 60,000 series) would cost tens of MB per
// scrape.

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>

#include "daemon/metrics.h"

namespace gatewatch::daemon {
namespace internal {

class ExtensionFamily {
 public:
  ExtensionFamily(std::string name, std::string help) : name_(std::move(name)), help_(std::move(help)) {}

  const std::string& help() const { return help_; }

  void Set(const MetricLabels& labels, double value);
  void Add(const MetricLabels& labels, double by);
  void Remove(const MetricLabels& labels);
  // Drops the series whose `monitor` label names a monitor not in `names`.
  void Retain(const std::set<std::string>& names);
  // HELP, TYPE and every series; nothing while no series exists.
  void Render(std::string& out, std::string_view type) const;

 private:
  struct Series {
    double value = 0;
    std::optional<std::string> monitor;  // the `monitor` label's value, for Retain()
  };

  // `{a="x",b="y"}` (MetricLabels is ordered by name, so the same labels give the same key),
  // or "" without labels; false, logged, when a label name is invalid.
  bool KeyOf(const MetricLabels& labels, std::string& key) const;

  Series& Slot(std::string key, const MetricLabels& labels);

  const std::string name_;
  const std::string help_;
  mutable std::mutex mu_;  // guards series_
  std::unordered_map<std::string, Series> series_;
};

class GaugeFamilyImpl final : public GaugeFamily {
 public:
  GaugeFamilyImpl(std::string name, std::string help) : family(std::move(name), std::move(help)) {}
  void Set(const MetricLabels& labels, double value) override { family.Set(labels, value); }
  void Remove(const MetricLabels& labels) override { family.Remove(labels); }
  ExtensionFamily family;
};

class CounterFamilyImpl final : public CounterFamily {
 public:
  CounterFamilyImpl(std::string name, std::string help) : family(std::move(name), std::move(help)) {}
  void Increment(const MetricLabels& labels, double by) override { family.Add(labels, by); }
  void Remove(const MetricLabels& labels) override { family.Remove(labels); }
  ExtensionFamily family;
};

}  // namespace internal

struct Metrics::Extensions {
  std::mutex mu;  // guards gauges and counters (the maps; the families lock themselves)
  std::map<std::string, std::unique_ptr<internal::GaugeFamilyImpl>> gauges;
  std::map<std::string, std::unique_ptr<internal::CounterFamilyImpl>> counters;
};

}  // namespace gatewatch::daemon
