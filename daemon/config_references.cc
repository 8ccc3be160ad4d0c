#include "daemon/config_references.h"

#include <algorithm>
#include <set>

#include "alerting/glob.h"

namespace gatewatch::daemon::internal {
namespace {

// Resolves globs against monitor names; a pattern matching nothing is an error.
std::vector<std::string> ResolvePatterns(Ctx& ctx, const Config& cfg,
                                         const std::vector<std::string>& patterns,
                                         const std::string& path) {
  std::vector<std::string> names;
  std::vector<std::string> all_names;
  for (const auto& m : cfg.monitors) all_names.push_back(m.name);
  for (size_t i = 0; i < patterns.size(); ++i) {
    bool matched = false;
    for (const auto& m : cfg.monitors) {
      if (alerting::GlobMatch(patterns[i], m.name)) {
        matched = true;
        if (std::find(names.begin(), names.end(), m.name) == names.end()) names.push_back(m.name);
      }
    }
    if (!matched) {
      std::string msg = Quote(patterns[i]) + " matches no monitor";
      if (!alerting::HasGlobChars(patterns[i])) {
        if (auto near = Suggest(patterns[i], all_names)) msg += "; did you mean " + Quote(*near) + "?";
      }
      ctx.AddAt(Index(path, i), msg);
    }
  }
  return names;
}

}  // namespace

void CheckReferences(Ctx& ctx, Config& cfg) {
  std::vector<std::string> region_names, monitor_names, notifier_names;
  for (const auto& r : cfg.regions) region_names.push_back(r.name);
  for (const auto& m : cfg.monitors) monitor_names.push_back(m.name);
  for (const auto& n : cfg.notifiers) notifier_names.push_back(n.name);

  // Every entry of `refs` must name one of `names`, once. `skip` (a monitor's own name
  // among its upstreams) is reported by MonitorConfig::Validate() instead.
  const auto check_list = [&](const std::vector<std::string>& refs,
                              const std::vector<std::string>& names, const std::string& path,
                              std::string_view what, std::string_view skip = {}) {
    std::set<std::string> seen;
    for (size_t i = 0; i < refs.size(); ++i) {
      if (!skip.empty() && refs[i] == skip) continue;
      if (!seen.insert(refs[i]).second) {
        ctx.AddAt(Index(path, i), "lists " + Quote(refs[i]) + " twice");
      } else if (std::find(names.begin(), names.end(), refs[i]) == names.end()) {
        std::string msg = "unknown " + std::string(what) + " " + Quote(refs[i]);
        if (auto near = Suggest(refs[i], names)) msg += "; did you mean " + Quote(*near) + "?";
        ctx.AddAt(Index(path, i), msg);
      }
    }
  };

  for (size_t i = 0; i < cfg.monitors.size(); ++i) {
    auto& m = cfg.monitors[i];
    const std::string path = Index("monitors", i);
    if (m.regions.empty()) {
      m.regions = region_names;
    } else {
      check_list(m.regions, region_names, Join(path, "regions"), "region");
    }
    check_list(m.upstreams, monitor_names, Join(path, "upstreams"), "monitor", m.name);
  }
  for (size_t i = 0; i < cfg.alerts.size(); ++i) {
    auto& a = cfg.alerts[i];
    const std::string path = Index("alerts", i);
    a.monitors = ResolvePatterns(ctx, cfg, a.monitor_patterns, Join(path, "monitors"));
    check_list(a.notify, notifier_names, Join(path, "notify"), "notifier");
    for (const std::string& name : a.monitors) {
      const auto* m = cfg.FindMonitor(name);
      if (m != nullptr && static_cast<int>(m->regions.size()) < a.min_regions &&
          a.kind != alerting::AlertKind::kCertExpiry) {
        ctx.AddAt(Join(path, "min_regions"),
                  "min_regions = " + std::to_string(a.min_regions) + " but monitor " + Quote(name) +
                      " is probed from " + std::to_string(m->regions.size()) +
                      " region(s): the alert could never fire for it");
        break;
      }
    }
  }
  for (size_t i = 0; i < cfg.silences.size(); ++i) {
    auto& s = cfg.silences[i];
    s.monitors = ResolvePatterns(ctx, cfg, s.monitor_patterns, Join(Index("silences", i), "monitors"));
  }
}

}  // namespace gatewatch::daemon::internal
