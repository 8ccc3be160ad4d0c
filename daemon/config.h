#pragma once
// The whole configuration (docs/configuration.md): TOML in, each module's plain config
// structs out. The loader's own files (daemon/config*.cc, daemon/toml_reader.*) are the only
// places that know TOML.
//
// Errors are collected, not thrown: a TOML syntax error stops at the first (toml++
// does), every validation error of a syntactically valid file is reported together,
// each with file:line:col, the key path and what was expected.

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "alerting/config.h"
#include "daemon/config_text.h"
#include "probes/config.h"
#include "probes/result.h"
#include "probes/url.h"
#include "storage/config.h"

namespace gatewatch::daemon {

using namespace std::chrono_literals;

struct ServerConfig {
  std::string listen = "0.0.0.0:9464";
  HostPort listen_addr{"0.0.0.0", 9464};
  std::string api_token;  // secret; empty = write and ingest endpoints answer 403
  std::string region = "local";
  std::string tls_cert;
  std::string tls_key;
  int shard_index = 1;  // shard = "i/N": this replica probes its share of monitors
  int shard_count = 1;
  Duration shutdown_grace = 5s;
  // The HTTP listener's bounds (daemon/http_listener.h), fixed at start.
  int64_t max_connections = 1024;
  int64_t max_connections_per_peer = 128;
  Duration request_timeout = 10s;  // a request's head and body, from its first byte
};

struct Config {
  std::string source;  // the file it came from
  bool allow_empty = false;  // top-level `allow_empty`: a config without monitors is meant
  ServerConfig server;
  probes::EngineConfig engine;
  storage::StorageConfig storage;
  probes::ProbeSettings defaults;
  std::vector<probes::RegionConfig> regions;  // server.region first, then file order
  std::vector<probes::MonitorConfig> monitors;
  std::vector<alerting::AlertRule> alerts;
  std::vector<alerting::NotifierConfig> notifiers;
  std::vector<alerting::SilenceConfig> silences;

  // By name: O(1) once IndexMonitors() ran on the final monitor list (the loader does);
  // a name the index does not hold (a Config built by hand or changed since) is scanned for.
  const probes::MonitorConfig* FindMonitor(std::string_view name) const;
  void IndexMonitors();
  const probes::RegionConfig* FindRegion(std::string_view name) const;
  // Monitor x region pairs: the number of independent probe schedules.
  size_t ProbeSlots() const;

 private:
  struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  // monitor name -> position in `monitors` (positions survive copies of the Config).
  std::unordered_map<std::string, size_t, NameHash, std::equal_to<>> monitor_index_;
};

struct ConfigError {
  std::string file;
  int line = 0;  // 1-based; 0 when the error has no position (file unreadable)
  int column = 0;
  std::string path;  // "monitors[2].url"; empty for syntax errors
  std::string message;

  // "gatewatch.toml:31:9: monitors[2].url: expected an http:// or https:// URL, ..."
  std::string ToString() const;
};
using ConfigErrors = std::vector<ConfigError>;

// What the daemon and `validate` require beyond a valid file: monitors, unless the file says
// `allow_empty = true` (an empty or truncated file must not silently stop all probing).
std::optional<ConfigError> RequireMonitors(const Config& config);

// Parses config text; `source_name` is used in error messages. Text beyond the bounds of
// CheckTextBounds() (config_text.h) is one positioned error, and the TOML parser never sees it.
Result<Config, ConfigErrors> ParseConfig(std::string_view text, const std::string& source_name,
                                         const EnvLookup& env = ProcessEnv());
// Reads at most kMaxConfigBytes + 1 bytes of the file, then ParseConfig().
Result<Config, ConfigErrors> LoadConfigFile(const std::string& path,
                                            const EnvLookup& env = ProcessEnv());

// Human summary for `gatewatch validate` (no secrets).
std::string Summarize(const Config& config);

}  // namespace gatewatch::daemon
