#pragma once
// `gatewatch check URL [--upstream URL]...`: one probe now (and one of each upstream),
// phase timings, outcome, fingerprint, TLS facts, and a comparison line.

#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "probes/duration.h"

namespace gatewatch::daemon {

struct CheckOptions {
  std::string url;
  std::vector<std::string> upstreams;
  std::optional<std::string> config;  // probe defaults and regions from this file
  std::optional<std::string> region;  // requires config (unless it is the local region)
  std::optional<Duration> timeout;
  std::optional<std::string> ca_file;
  bool insecure = false;  // tls_skip_verify
  bool json = false;
};

// Returns the exit code: 0 when the target and every upstream are healthy, 1 when any
// probe failed, 2 on bad usage or config.
int RunCheck(const CheckOptions& options, std::ostream& out, std::ostream& err);

}  // namespace gatewatch::daemon
