#include "daemon/demo.h"

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "daemon/app.h"
#include "fleet/demo_fleet.h"
#include "probes/log.h"

namespace gatewatch::daemon {
namespace {

// The demo's config: the gateway with its two upstreams linked, each upstream on its
// own, probed every 5 s with one confirmation retry, and an alert on the gateway's 502s.
std::string DemoConfig(const fleet::DemoFleet& fleet, const std::string& listen,
                       const std::string& db_path, Duration phase_length) {
  // Several probes per phase: every 5 s for 20 s phases, faster for short ones.
  const Duration interval = std::clamp<Duration>(phase_length / 4, std::chrono::seconds(1),
                                                 std::chrono::seconds(5));
  const Duration timeout = std::min<Duration>(interval, std::chrono::seconds(2));
  std::string toml;
  toml += "# Written by `gatewatch demo`: a loopback site that fails on purpose.\n";
  toml += "[server]\nlisten = \"" + listen + "\"\nregion = \"local\"\n\n";
  toml += "[storage]\npath = \"" + db_path + "\"\n\n";
  toml += "[defaults]\ninterval = \"" + FormatDuration(interval) + "\"\ntimeout = \"" +
          FormatDuration(timeout) + "\"\nretries = 1\nretry_delay = \"" + FormatDuration(interval / 5) +
          "\"\n\n";
  toml += "[[monitors]]\nname = \"shop\"\nurl = \"" + fleet.GatewayUrl() +
          "\"\nupstreams = [\"api-1\", \"api-2\"]\nbody_contains = \"ok\"\n\n";
  for (int i = 0; i < fleet::DemoFleet::kUpstreams; ++i) {
    toml += "[[monitors]]\nname = \"" + fleet::DemoFleet::UpstreamName(i) + "\"\nurl = \"" +
            fleet.UpstreamUrl(i) + "\"\n\n";
  }
  toml += "[[alerts]]\nname = \"shop-502\"\nmonitors = [\"shop\"]\nkind = \"status_rate\"\n"
          "codes = [502]\nabove = 0.2\nwindow = \"1m\"\nmin_samples = 3\nfor = \"0s\"\n"
          "resolve_for = \"15s\"\nnotify = [\"console\"]\n\n";
  toml += "[[alerts]]\nname = \"api-down\"\nmonitors = [\"api-*\"]\nkind = \"down\"\nafter = 2\n"
          "for = \"0s\"\nresolve_for = \"5s\"\nnotify = [\"console\"]\n\n";
  toml += "[[notifiers]]\nname = \"console\"\ntype = \"console\"\n";
  return toml;
}

}  // namespace

int RunDemo(const DemoOptions& options) {
  // Block the daemon's signals before the fleet starts its threads (RunDaemon takes them
  // with sigwait; a fleet thread must never receive one).
  BlockDaemonSignals();

  const char* tmp = std::getenv("TMPDIR");
  std::string dir = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/gatewatch-demo-XXXXXX";
  if (mkdtemp(dir.data()) == nullptr) {
    log::Error("start-up failed").Kv("error", "cannot create a temporary directory");
    return 1;
  }
  int code = 0;
  {
    fleet::DemoFleet fleet(options.phase_length, [](fleet::DemoFleet::Phase phase) {
      log::Info("demo phase")
          .Kv("phase", fleet::DemoFleet::PhaseName(phase))
          .Kv("expect", fleet::DemoFleet::PhaseDescription(phase));
    });
    const std::string config_path = dir + "/gatewatch.toml";
    {
      std::ofstream out(config_path);
      out << DemoConfig(fleet, options.listen, dir + "/gatewatch.db", options.phase_length);
      if (!out) {
        log::Error("start-up failed").Kv("error", "cannot write " + config_path);
        return 1;
      }
    }
    log::Info("demo started")
        .Kv("gateway", fleet.GatewayUrl())
        .Kv("api-1", fleet.UpstreamUrl(0))
        .Kv("api-2", fleet.UpstreamUrl(1))
        .Kv("phase_length", FormatDuration(options.phase_length))
        .Kv("dir", dir);
    log::Info("demo phase")
        .Kv("phase", fleet::DemoFleet::PhaseName(fleet.phase()))
        .Kv("expect", fleet::DemoFleet::PhaseDescription(fleet.phase()));
    code = RunDaemon(config_path);
  }
  if (!options.keep) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  } else {
    log::Info("demo files kept").Kv("dir", dir);
  }
  return code;
}

}  // namespace gatewatch::daemon
