#pragma once
// The daemon's lifecycle (main thread): load the config, start the components, wait for
// signals, reload on SIGHUP, stop in order on SIGTERM/SIGINT.

#include <signal.h>

#include <string>

namespace gatewatch::daemon {

// Blocks SIGHUP, SIGINT and SIGTERM in the calling thread (and so in every thread it
// starts afterwards) and returns that set, for sigwait.
sigset_t BlockDaemonSignals();

// Runs `gatewatch run`; returns the process exit code (0 after a clean shutdown,
// 1 on a start-up failure, 2 on an invalid config).
// REQUIRES: called from the main thread before any other thread is started (it blocks
// SIGHUP/SIGINT/SIGTERM so that they are taken with sigwait).
int RunDaemon(const std::string& config_path);

}  // namespace gatewatch::daemon
