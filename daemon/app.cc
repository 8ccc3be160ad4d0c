#include "daemon/app.h"

#include <csignal>
#include <iostream>
#include <memory>

#include "daemon/config.h"
#include "daemon/http_server.h"
#include "probes/log.h"

namespace gatewatch::daemon {
namespace {

void LogErrors(const ConfigErrors& errors, std::string_view msg) {
  for (const ConfigError& e : errors) log::Error(msg).Kv("error", e.ToString());
}

void LogLoaded(const Config& cfg, std::string_view msg) {
  log::Info(msg)
      .Kv("config", cfg.source)
      .Kv("regions", static_cast<uint64_t>(cfg.regions.size()))
      .Kv("monitors", static_cast<uint64_t>(cfg.monitors.size()))
      .Kv("schedules", static_cast<uint64_t>(cfg.ProbeSlots()))
      .Kv("alerts", static_cast<uint64_t>(cfg.alerts.size()))
      .Kv("notifiers", static_cast<uint64_t>(cfg.notifiers.size()));
}

}  // namespace

int RunDaemon(const std::string& config_path) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGHUP);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  // Blocked before any thread starts, so every thread inherits the mask and the signals
  // are taken only by sigwait below.
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto loaded = LoadConfigFile(config_path);
  if (!loaded) {
    for (const ConfigError& e : loaded.error()) std::cerr << e.ToString() << "\n";
    log::Error("config invalid, not starting")
        .Kv("config", config_path)
        .Kv("errors", static_cast<uint64_t>(loaded.error().size()));
    return 2;
  }
  std::shared_ptr<const Config> config = std::make_shared<const Config>(std::move(loaded).value());
  LogLoaded(*config, "config loaded");

  // Ready once the config is loaded; storage and scheduler checks join when they exist.
  HttpServer server({config->server.listen_addr, [](std::string*) { return true; }});
  auto port = server.Start();
  if (!port) {
    log::Error("start-up failed").Kv("error", port.error());
    return 1;
  }
  log::Info("listening").Kv("addr", config->server.listen_addr.host + ":" + std::to_string(*port));

  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      auto reloaded = LoadConfigFile(config_path);
      if (!reloaded) {
        LogErrors(reloaded.error(), "config reload failed, keeping the previous config");
        continue;
      }
      if (reloaded->server.listen != config->server.listen) {
        log::Warn("server.listen changed; restart to apply").Kv("listen", config->server.listen);
      }
      config = std::make_shared<const Config>(std::move(reloaded).value());
      LogLoaded(*config, "config reloaded");
      continue;
    }
    log::Info("shutting down").Kv("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    break;
  }
  server.Stop();
  log::Info("stopped");
  return 0;
}

}  // namespace gatewatch::daemon
