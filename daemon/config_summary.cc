#include "daemon/config.h"

#include <sstream>

#include "daemon/toml_reader.h"

namespace gatewatch::daemon {

using internal::Ratio;

std::string Summarize(const Config& cfg) {
  std::ostringstream os;
  double probes_per_second = 0;
  for (const auto& m : cfg.monitors) {
    probes_per_second += static_cast<double>(m.regions.size()) * 1000.0 /
                         static_cast<double>(m.probe.interval.count());
  }
  os << "config OK: " << cfg.source << "\n";
  os << "  regions:   " << cfg.regions.size() << " (";
  for (size_t i = 0; i < cfg.regions.size(); ++i) {
    const auto& r = cfg.regions[i];
    os << (i ? ", " : "") << r.name;
    if (!r.proxy.empty()) os << " via proxy";
    if (!r.dns_servers.empty()) os << " own DNS";
    if (!r.source_address.empty()) os << " from " << r.source_address;
  }
  os << ")\n";
  os << "  monitors:  " << cfg.monitors.size() << " x regions = " << cfg.ProbeSlots()
     << (cfg.ProbeSlots() == 1 ? " probe schedule, ~" : " probe schedules, ~") << Ratio(probes_per_second) << " probes/s\n";
  for (const auto& m : cfg.monitors) {
    auto url = ParseHttpUrl(m.url);
    os << "    " << m.name << "  " << (url ? url->scheme + "://" + url->host : std::string("?"))
       << "  every " << FormatDuration(m.probe.interval) << "  regions " << m.regions.size();
    if (!m.upstreams.empty()) os << "  upstreams " << m.upstreams.size();
    os << "\n";
  }
  os << "  alerts:    " << cfg.alerts.size() << "\n";
  for (const auto& a : cfg.alerts) {
    os << "    " << a.name << "  " << alerting::ToString(a.kind) << "  monitors " << a.monitors.size()
       << "  notify " << a.notify.size() << "\n";
  }
  os << "  notifiers: " << cfg.notifiers.size();
  if (!cfg.notifiers.empty()) {
    os << " (";
    for (size_t i = 0; i < cfg.notifiers.size(); ++i) {
      os << (i ? ", " : "") << cfg.notifiers[i].name << ": " << alerting::ToString(cfg.notifiers[i].type);
    }
    os << ")";
  }
  os << "\n  silences:  " << cfg.silences.size() << "\n";
  return os.str();
}

}  // namespace gatewatch::daemon
