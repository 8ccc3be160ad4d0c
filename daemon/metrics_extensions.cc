#include "daemon/metrics_extensions.h"

#include <algorithm>

#include "daemon/metrics_families.h"
#include "daemon/metrics_text.h"
#include "probes/log.h"

namespace gatewatch::daemon {

using namespace internal;

namespace {

bool ValidName(std::string_view name, bool colons) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colons && c == ':') ||
                    (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// Series errors (an invalid label name) are programming errors of the caller; they are
// logged, never thrown across the module.
void LogSeriesError(const std::string& family, const std::string& error) {
  log::Error("metrics: series rejected").Kv("family", family).Kv("error", error);
}

}  // namespace

namespace internal {

void ExtensionFamily::Set(const MetricLabels& labels, double value) {
  std::string key;
  if (!KeyOf(labels, key)) return;
  std::lock_guard lock(mu_);
  Slot(std::move(key), labels).value = value;
}

void ExtensionFamily::Add(const MetricLabels& labels, double by) {
  std::string key;
  if (!KeyOf(labels, key)) return;
  std::lock_guard lock(mu_);
  Slot(std::move(key), labels).value += by;
}

void ExtensionFamily::Remove(const MetricLabels& labels) {
  std::string key;
  if (!KeyOf(labels, key)) return;
  std::lock_guard lock(mu_);
  series_.erase(key);
}

void ExtensionFamily::Retain(const std::set<std::string>& names) {
  std::lock_guard lock(mu_);
  std::erase_if(series_, [&](const auto& kv) {
    return kv.second.monitor && names.count(*kv.second.monitor) == 0;
  });
}

void ExtensionFamily::Render(std::string& out, std::string_view type) const {
  std::lock_guard lock(mu_);
  if (series_.empty()) return;
  out += "# HELP ";
  out += name_;
  out += ' ';
  for (char c : help_) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  out += "\n# TYPE ";
  out += name_;
  out += ' ';
  out += type;
  out += '\n';
  for (const auto& [key, series] : series_) {
    out += name_;
    out += key;
    out += ' ';
    AppendDouble(out, series.value);
    out += '\n';
  }
}

bool ExtensionFamily::KeyOf(const MetricLabels& labels, std::string& key) const {
  if (labels.empty()) return true;
  key += '{';
  for (const auto& [label, value] : labels) {
    if (!ValidName(label, false) || label.starts_with("__")) {
      LogSeriesError(name_, "invalid label name \"" + label + "\"");
      return false;
    }
    if (key.size() > 1) key += ',';
    key += label;
    key += "=\"";
    AppendEscaped(key, value);
    key += '"';
  }
  key += '}';
  return true;
}

ExtensionFamily::Series& ExtensionFamily::Slot(std::string key, const MetricLabels& labels) {
  auto [it, fresh] = series_.try_emplace(std::move(key));
  if (auto m = labels.find("monitor"); fresh && m != labels.end()) it->second.monitor = m->second;
  return it->second;
}

}  // namespace internal

Result<GaugeFamily*> Metrics::AddGaugeFamily(const std::string& name, const std::string& help) {
  Extensions& ext = *extensions_;
  std::lock_guard lock(ext.mu);
  if (Reserved(name) || ext.counters.count(name))
    return Error("metric " + name + " exists already");
  if (auto it = ext.gauges.find(name); it != ext.gauges.end()) {
    if (it->second->family.help() != help) return Error("metric " + name + " exists with another help");
    return static_cast<GaugeFamily*>(it->second.get());
  }
  if (!ValidName(name, true)) return Error("metric " + name + ": invalid metric name");
  auto impl = std::make_unique<GaugeFamilyImpl>(name, help);
  GaugeFamily* out = impl.get();
  ext.gauges.emplace(name, std::move(impl));
  return out;
}

Result<CounterFamily*> Metrics::AddCounterFamily(const std::string& name, const std::string& help) {
  Extensions& ext = *extensions_;
  std::lock_guard lock(ext.mu);
  if (Reserved(name) || ext.gauges.count(name)) return Error("metric " + name + " exists already");
  if (auto it = ext.counters.find(name); it != ext.counters.end()) {
    if (it->second->family.help() != help) return Error("metric " + name + " exists with another help");
    return static_cast<CounterFamily*>(it->second.get());
  }
  if (!ValidName(name, true)) return Error("metric " + name + ": invalid metric name");
  auto impl = std::make_unique<CounterFamilyImpl>(name, help);
  CounterFamily* out = impl.get();
  ext.counters.emplace(name, std::move(impl));
  return out;
}

}  // namespace gatewatch::daemon
