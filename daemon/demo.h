#pragma once
// `gatewatch demo`: a site on loopback — an nginx-like gateway in front of two upstreams
// (fleet::DemoFleet) cycling every 20 s through healthy, one upstream down, both
// upstreams down and gateway misrouted — watched by the daemon with a temporary
// database, so a newcomer sees probes and failures with emitters within a minute.

#include <optional>
#include <string>

#include "probes/duration.h"

namespace gatewatch::daemon {

struct DemoOptions {
  std::string listen = "127.0.0.1:9464";
  Duration phase_length = std::chrono::seconds(20);
  bool keep = false;  // keep the temporary directory (config + database) on exit
};

// Blocks until SIGINT/SIGTERM; returns the exit code like RunDaemon.
// REQUIRES: called from the main thread before any other thread is started.
int RunDemo(const DemoOptions& options);

}  // namespace gatewatch::daemon
