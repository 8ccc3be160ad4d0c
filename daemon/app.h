#pragma once
// The daemon's lifecycle (main thread): load the config, start the components, wait for
// signals, reload on SIGHUP, stop in order on SIGTERM/SIGINT.

#include <string>

namespace gatewatch::daemon {

// Runs `gatewatch run`; returns the process exit code (0 after a clean shutdown,
// 1 on a start-up failure, 2 on an invalid config).
// REQUIRES: called from the main thread before any other thread is started (it blocks
// SIGHUP/SIGINT/SIGTERM so that they are taken with sigwait).
int RunDaemon(const std::string& config_path);

}  // namespace gatewatch::daemon
