#include "daemon/config.h"

#include <algorithm>
#include <fstream>

#include "daemon/config_references.h"
#include "daemon/config_sections.h"
#include "daemon/toml_reader.h"
#include "gatewatch_version.h"
#include "probes/text.h"

namespace gatewatch::daemon {

using namespace internal;

void Config::IndexMonitors() {
  monitor_index_.clear();
  monitor_index_.reserve(monitors.size());
  for (size_t i = 0; i < monitors.size(); ++i) monitor_index_.emplace(monitors[i].name, i);
}

const probes::MonitorConfig* Config::FindMonitor(std::string_view name) const {
  // The diagnosis and the API look monitors up per result: at 10,000 monitors a scan was
  // 13% of the daemon's CPU. A duplicate name (a config error) leaves the index short.
  if (monitor_index_.size() == monitors.size()) {
    const auto it = monitor_index_.find(name);
    if (it != monitor_index_.end() && it->second < monitors.size() &&
        monitors[it->second].name == name) {
      return &monitors[it->second];
    }
  }
  for (const auto& m : monitors) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

const probes::RegionConfig* Config::FindRegion(std::string_view name) const {
  for (const auto& r : regions) {
    if (r.name == name) return &r;
  }
  return nullptr;
}

size_t Config::ProbeSlots() const {
  size_t n = 0;
  for (const auto& m : monitors) n += m.regions.size();
  return n;
}

std::string ConfigError::ToString() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line) + ":" + std::to_string(column);
  out += ": ";
  // One line whatever the file holds: control characters in keys and values are escaped.
  if (!path.empty()) out += OneLine(path) + ": ";
  out += OneLine(message);
  return out;
}

Result<Config, ConfigErrors> ParseConfig(std::string_view text, const std::string& source_name,
                                         const EnvLookup& env) {
  if (auto bound = CheckTextBounds(text)) {
    return Unexpected(
        ConfigErrors{{source_name, bound->line, bound->column, "", std::move(bound->message)}});
  }
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(source_name));
  } catch (const toml::parse_error& e) {
    const Pos pos = PosOf(e.source());
    return Unexpected(ConfigErrors{{source_name, pos.line, pos.column, "",
                                    "TOML syntax error: " + std::string(e.description())}});
  }

  Ctx ctx(source_name, env);
  Config cfg;
  cfg.source = source_name;
  TableReader top(ctx, root, "");

  if (auto v = top.Bool("allow_empty")) cfg.allow_empty = *v;
  if (const toml::table* t = top.Table("server")) {
    TableReader r(ctx, *t, "server");
    ReadServer(r, cfg.server);
  }
  if (const toml::table* t = top.Table("engine")) {
    TableReader r(ctx, *t, "engine");
    if (auto v = r.Int("max_in_flight", 1, 65536)) cfg.engine.max_in_flight = static_cast<int>(*v);
    r.Finish();
  }
  if (const toml::table* t = top.Table("storage")) {
    TableReader r(ctx, *t, "storage");
    ReadStorage(r, ctx, cfg.storage);
  }
  cfg.defaults.user_agent = std::string("gatewatch/") + kVersion;
  if (const toml::table* t = top.Table("defaults")) {
    TableReader r(ctx, *t, "defaults");
    ReadProbeSettings(r, ctx, cfg.defaults);
    r.Finish();
    ctx.AddFieldErrors("defaults", cfg.defaults.Validate());
  }
  if (const std::string marker = "<version>"; cfg.defaults.user_agent.find(marker) != std::string::npos) {
    cfg.defaults.user_agent.replace(cfg.defaults.user_agent.find(marker), marker.size(), kVersion);
  }

  cfg.regions.push_back(probes::RegionConfig{cfg.server.region, "", {}, ""});
  if (const toml::table* t = top.Table("regions")) {
    // [regions.NAME] sections, in file order (toml::table iterates by key).
    std::vector<std::pair<Pos, std::string>> order;
    for (const auto& [key, node] : *t) order.push_back({PosOf(node), std::string(key.str())});
    std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
      return std::tie(a.first.line, a.first.column) < std::tie(b.first.line, b.first.column);
    });
    TableReader regions(ctx, *t, "regions");
    for (const auto& [pos, name] : order) {
      const toml::node* n = regions.Get(name);
      const std::string path = regions.Path(name);
      if (!ValidName(name)) {
        ctx.AddAt(path, "invalid region name " + Quote(name) + ": use " + std::string(kNameRule));
        continue;
      }
      const auto* rt = n->as_table();
      if (rt == nullptr) {
        regions.WrongType(name, *n, "a table ([regions." + name + "] section)");
        continue;
      }
      probes::RegionConfig region;
      region.name = name;
      TableReader r(ctx, *rt, path);
      ReadRegion(r, region);
      ctx.AddFieldErrors(path, region.Validate());
      if (name == cfg.server.region) {
        cfg.regions.front() = std::move(region);  // configures this instance's own region
      } else {
        cfg.regions.push_back(std::move(region));
      }
    }
  }

  const auto monitor_tables = top.Tables("monitors");
  for (size_t i = 0; i < monitor_tables.size(); ++i) {
    if (monitor_tables[i] == nullptr) continue;
    const std::string path = Index("monitors", i);
    TableReader r(ctx, *monitor_tables[i], path);
    probes::MonitorConfig m;
    ReadMonitor(r, ctx, cfg.defaults, m);
    ctx.AddFieldErrors(path, m.Validate());
    cfg.monitors.push_back(std::move(m));
  }
  const auto alert_tables = top.Tables("alerts");
  for (size_t i = 0; i < alert_tables.size(); ++i) {
    if (alert_tables[i] == nullptr) continue;
    const std::string path = Index("alerts", i);
    TableReader r(ctx, *alert_tables[i], path);
    alerting::AlertRule a;
    ReadAlert(r, a);
    ctx.AddFieldErrors(path, a.Validate());
    cfg.alerts.push_back(std::move(a));
  }
  const auto notifier_tables = top.Tables("notifiers");
  for (size_t i = 0; i < notifier_tables.size(); ++i) {
    if (notifier_tables[i] == nullptr) continue;
    const std::string path = Index("notifiers", i);
    TableReader r(ctx, *notifier_tables[i], path);
    alerting::NotifierConfig n;
    if (ReadNotifier(r, n)) ctx.AddFieldErrors(path, n.Validate());
    cfg.notifiers.push_back(std::move(n));
  }
  const auto silence_tables = top.Tables("silences");
  for (size_t i = 0; i < silence_tables.size(); ++i) {
    if (silence_tables[i] == nullptr) continue;
    TableReader r(ctx, *silence_tables[i], Index("silences", i));
    alerting::SilenceConfig s;
    ReadSilence(r, ctx, i, s);
    cfg.silences.push_back(std::move(s));
  }
  top.Finish();

  CheckUnique(ctx, cfg.monitors, "monitors", "monitor");
  cfg.IndexMonitors();
  CheckUnique(ctx, cfg.alerts, "alerts", "alert");
  CheckUnique(ctx, cfg.notifiers, "notifiers", "notifier");
  CheckReferences(ctx, cfg);

  if (!ctx.ok()) return Unexpected(ctx.TakeErrors());
  return cfg;
}

std::optional<ConfigError> RequireMonitors(const Config& config) {
  if (!config.monitors.empty() || config.allow_empty) return std::nullopt;
  return ConfigError{config.source, 0, 0, "monitors",
                     "no monitors: the file defines no [[monitors]] (empty or truncated?); add "
                     "monitors, or set allow_empty = true at the top if that is meant"};
}

Result<Config, ConfigErrors> LoadConfigFile(const std::string& path, const EnvLookup& env) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Unexpected(ConfigErrors{{path, 0, 0, "", "cannot read config file: " +
                                                        std::string(std::strerror(errno))}});
  }
  // One byte past the bound is enough for ParseConfig to report it; a huge file (or an
  // endless one, such as /dev/zero) is never read whole.
  std::string text;
  while (text.size() <= kMaxConfigBytes && in) {
    const size_t have = text.size();
    const size_t want = std::min<size_t>(size_t{64} << 10, kMaxConfigBytes + 1 - have);
    text.resize(have + want);
    in.read(text.data() + have, static_cast<std::streamsize>(want));
    text.resize(have + static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) {
    return Unexpected(ConfigErrors{{path, 0, 0, "", "error while reading config file"}});
  }
  return ParseConfig(text, path, env);
}

}  // namespace gatewatch::daemon
