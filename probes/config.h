#pragma once
// Plain configuration of the probe side: engine limits, regions (egress profiles)
// and monitors. Filled by the config loader (daemon/config.h) from TOML; nothing here knows TOML.

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "probes/duration.h"

namespace gatewatch::probes {

using namespace std::chrono_literals;

// A rule broken inside one struct: `field` is the config key it concerns (the loader
// maps it to a file position), `message` says what is wrong and what is expected.
struct FieldError {
  std::string field;
  std::string message;
};

struct EngineConfig {
  int max_in_flight = 256;  // probes in flight at once
};

// A vantage point. In one instance a region is an egress profile (docs/regions.md).
struct RegionConfig {
  std::string name;
  std::string proxy;                     // "http://host:port" HTTP CONNECT proxy; empty = direct
  std::vector<std::string> dns_servers;  // "ip:port" resolvers; empty = system resolver
  std::string source_address;            // bind address; empty = any

  std::vector<FieldError> Validate() const;
};

// An accepted response status: one code (301) or a class (2 = "2xx").
struct StatusMatcher {
  int code = 0;   // 100..599, or 0 when this matches a class
  int klass = 0;  // 1..5 when this matches a class
  bool Matches(int status) const {
    return code != 0 ? status == code : status / 100 == klass;
  }
  std::string ToString() const;
  bool operator==(const StatusMatcher&) const = default;
};

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// How one monitor is probed. [defaults] fills one of these; each monitor starts from
// it and overrides keys.
struct ProbeSettings {
  Duration interval = 30s;
  Duration timeout = 10s;  // whole probe, resolve included
  std::optional<Duration> connect_timeout;
  std::optional<Duration> resolve_timeout;
  std::optional<Duration> tls_timeout;
  int retries = 1;  // confirmation re-probes right after a failure
  Duration retry_delay = 2s;
  int64_t max_body = 64 * 1024;  // bytes read from a response body
  bool follow_redirects = false;  // at most 10 hops when true
  bool tls_skip_verify = false;
  std::string user_agent;  // empty = "gatewatch/<version>"
  std::string method = "GET";
  std::string body;  // request body (POST/PUT/PATCH)
  std::vector<StatusMatcher> expect_status = {StatusMatcher{0, 2}};
  HeaderList headers;  // sent with the request

  std::vector<FieldError> Validate() const;
};

struct MonitorConfig {
  std::string name;
  std::string url;
  std::vector<std::string> regions;    // resolved: every region when the config lists none
  std::vector<std::string> upstreams;  // names of monitors behind this gateway
  std::optional<std::string> body_contains;
  HeaderList header_contains;  // header name (lower case) -> substring of its value
  ProbeSettings probe;

  std::vector<FieldError> Validate() const;
};

inline constexpr int kMaxRedirects = 10;
inline constexpr int kMaxRetries = 10;
inline constexpr int64_t kMaxBodyLimit = int64_t{16} << 20;

}  // namespace gatewatch::probes
