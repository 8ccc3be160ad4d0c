#include "daemon/app.h"

#include <csignal>
#include <filesystem>
#include <iostream>
#include <memory>
#include <set>

#include "alerting/delivery.h"
#include "daemon/alert_pipeline.h"
#include "daemon/api.h"
#include "daemon/config.h"
#include "daemon/config_holder.h"
#include "daemon/http_server.h"
#include "daemon/ingest.h"
#include "daemon/metrics.h"
#include "daemon/probe_loop.h"
#include "daemon/readiness.h"
#include "daemon/status_page.h"
#include "gatewatch_version.h"
#include "probes/http_prober.h"
#include "probes/log.h"
#include "probes/scheduler.h"
#include "storage/writer.h"

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

// The monitors this replica probes (all of them unless server.shard splits the work),
// as pointers that keep the whole config alive while a probe of it runs.
std::vector<std::shared_ptr<const probes::MonitorConfig>> MonitorsOf(
    const std::shared_ptr<const Config>& cfg) {
  std::vector<std::shared_ptr<const probes::MonitorConfig>> out;
  for (const auto& m : cfg->monitors) {
    if (probes::InShard(m.name, cfg->server.shard_index, cfg->server.shard_count)) {
      out.emplace_back(cfg, &m);
    }
  }
  return out;
}

std::vector<std::shared_ptr<const probes::RegionConfig>> RegionsOf(
    const std::shared_ptr<const Config>& cfg) {
  std::vector<std::shared_ptr<const probes::RegionConfig>> out;
  for (const auto& r : cfg->regions) out.emplace_back(cfg, &r);
  return out;
}

void ApplySchedule(probes::Scheduler& scheduler, ProbeLoop& loop, const std::shared_ptr<const Config>& cfg) {
  const auto monitors = MonitorsOf(cfg);
  scheduler.Update(monitors, RegionsOf(cfg));
  loop.SetTargets(monitors, RegionsOf(cfg));
  log::Info("schedule updated")
      .Kv("monitors", static_cast<uint64_t>(monitors.size()))
      .Kv("schedules", static_cast<uint64_t>(scheduler.size()))
      .Kv("shard", std::to_string(cfg->server.shard_index) + "/" + std::to_string(cfg->server.shard_count));
}

Result<std::unique_ptr<storage::Writer>> OpenWriter(const Config& cfg, const Clock& clock) {
  const std::filesystem::path path(cfg.storage.path);
  if (path.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    if (ec) {
      return Error("storage: cannot create the directory of storage.path " +
                   path.parent_path().string() + ": " + ec.message());
    }
  }
  storage::WriterOptions options;
  options.path = cfg.storage.path;
  options.retention = cfg.storage;
  return storage::Writer::Start(options, clock);
}

// --- Metrics wiring (daemon/metrics.h) ---
SelfStats CollectSelfStats(const ProbeLoop& loop, const probes::HttpProber& prober,
                           const storage::Writer& writer, const probes::Scheduler& scheduler,
                           const AlertPipeline& pipeline, const alerting::Delivery& delivery,
                           SystemTime started) {
  SelfStats s;
  const probes::HttpProber::Stats ps = prober.GetStats();
  s.probes_in_flight = ps.in_flight;
  s.probes_queued = ps.queued;
  s.skipped_overload = loop.stats().skipped_overload.load();
  s.skipped_backpressure = loop.stats().skipped_backpressure.load();
  s.skipped_missed = scheduler.missed();
  FillLag(loop.stats().lag, s);
  const storage::WriterStats ws = writer.Stats();
  s.db_rows_written = ws.rows_written;
  s.db_batches = ws.batches;
  s.db_last_batch_seconds = static_cast<double>(ws.last_batch_latency.count()) / 1e6;
  s.db_queue_depth = ws.queue_depth;
  s.db_rows_lost = ws.rows_lost;
  s.db_write_errors = ws.write_errors;
  s.start_time = started;
  s.alerting = SelfStats::Alerting{};  // not emplace(): clang cannot default-construct a nested NSDMI struct there
  SelfStats::Alerting& a = *s.alerting;
  a.notifiers = delivery.Stats();
  a.outbox_pending = delivery.Pending();
  a.results_evaluated = pipeline.stats().results.load();
  a.results_dropped = pipeline.stats().dropped.load();
  a.evaluation_seconds = static_cast<double>(pipeline.stats().eval_ns.load()) / 1e9;
  return s;
}

// gatewatch_alert_state / _silenced / _ratio from the pipeline's changed states.
class AlertGauges {
 public:
  explicit AlertGauges(Metrics& metrics)
      : state_(Family(metrics, "gatewatch_alert_state",
                      "Alert rule state per monitor: 0 ok, 1 pending, 2 firing, 3 resolving.")),
        silenced_(Family(metrics, "gatewatch_alert_silenced",
                         "1 while a silence mutes the alert's notifications (state is still tracked).")),
        ratio_(Family(metrics, "gatewatch_alert_ratio",
                      "The value the alert rule compares, per region: the share of matching probes "
                      "(status_rate), seconds (latency), consecutive failures (down).")) {}

  // Pipeline thread.
  void Update(const std::vector<alerting::AlertStatus>& changed,
              const std::vector<std::pair<std::string, std::string>>& removed) {
    for (const auto& a : changed) {
      const MetricLabels labels{{"alert", a.alert}, {"monitor", a.monitor}};
      state_->Set(labels, static_cast<double>(a.state));
      silenced_->Set(labels, a.silenced ? 1 : 0);
      auto& regions = regions_[{a.alert, a.monitor}];
      for (const auto& [region, value] : a.region_ratio) {
        ratio_->Set({{"alert", a.alert}, {"monitor", a.monitor}, {"region", region}}, value);
        regions.insert(region);
      }
    }
    for (const auto& [alert, monitor] : removed) {
      state_->Remove({{"alert", alert}, {"monitor", monitor}});
      silenced_->Remove({{"alert", alert}, {"monitor", monitor}});
      for (const auto& region : regions_[{alert, monitor}]) {
        ratio_->Remove({{"alert", alert}, {"monitor", monitor}, {"region", region}});
      }
      regions_.erase({alert, monitor});
    }
  }

 private:
  static GaugeFamily* Family(Metrics& metrics, const std::string& name, const std::string& help) {
    auto f = metrics.AddGaugeFamily(name, help);
    if (!f) std::abort();  // a fixed, valid name registered once: cannot fail
    return *f;
  }
  GaugeFamily* state_;
  GaugeFamily* silenced_;
  GaugeFamily* ratio_;
  std::map<std::pair<std::string, std::string>, std::set<std::string>> regions_;
};

// gatewatch_incident_open{monitor,verdict}: 1 while open; the series of a closed incident
// (or of a verdict it no longer has) goes away.
class IncidentGauges {
 public:
  explicit IncidentGauges(Metrics& metrics) {
    auto f = metrics.AddGaugeFamily("gatewatch_incident_open",
                                    "1 while the monitor has an open incident, labelled with its current verdict.");
    if (!f) std::abort();  // a fixed, valid name registered once: cannot fail
    open_ = *f;
  }
  // Pipeline thread.
  void Update(const std::vector<OpenIncident>& incidents) {
    std::map<std::string, std::string> now;
    for (const auto& inc : incidents) now[inc.monitor] = inc.verdict;
    for (const auto& [monitor, verdict] : shown_) {
      auto it = now.find(monitor);
      if (it == now.end() || it->second != verdict) open_->Remove({{"monitor", monitor}, {"verdict", verdict}});
    }
    for (const auto& [monitor, verdict] : now) open_->Set({{"monitor", monitor}, {"verdict", verdict}}, 1);
    shown_ = std::move(now);
  }

 private:
  GaugeFamily* open_;
  std::map<std::string, std::string> shown_;  // monitor -> verdict set last
};

std::set<std::string> MonitorNames(const Config& cfg) {
  std::set<std::string> names;
  for (const auto& m : cfg.monitors) names.insert(m.name);
  return names;
}

}  // namespace

sigset_t BlockDaemonSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGHUP);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

int RunDaemon(const std::string& config_path) {
  // Blocked before any thread starts, so every thread inherits the mask and the signals
  // are taken only by sigwait below.
  sigset_t signals = BlockDaemonSignals();

  auto loaded = LoadConfigFile(config_path);
  if (loaded) {
    if (auto empty = RequireMonitors(*loaded)) loaded = Unexpected(ConfigErrors{*empty});
  }
  if (!loaded) {
    for (const ConfigError& e : loaded.error()) std::cerr << e.ToString() << "\n";
    log::Error("config invalid, not starting")
        .Kv("config", config_path)
        .Kv("errors", static_cast<uint64_t>(loaded.error().size()));
    return 2;
  }
  std::shared_ptr<const Config> config = std::make_shared<const Config>(std::move(loaded).value());
  LogLoaded(*config, "config loaded");

  // Owners in dependency order: each is destroyed after everything that uses it.
  RealClock clock;
  auto writer_or = OpenWriter(*config, clock);
  if (!writer_or) {
    log::Error("start-up failed").Kv("error", writer_or.error());  // says "storage: ..."
    return 1;
  }
  std::unique_ptr<storage::Writer> writer = std::move(writer_or).value();
  log::Info("storage open").Kv("path", config->storage.path);

  Metrics metrics(kVersion);  // outlives the server, which serves it

  // Alerting: the delivery thread, then the pipeline that feeds it (docs/reliability.md).
  alerting::DeliveryOptions delivery_options;
  delivery_options.db_path = config->storage.path;
  delivery_options.notifiers = config->notifiers;
  auto delivery_or = alerting::Delivery::Start(delivery_options, clock);
  if (!delivery_or) {
    log::Error("start-up failed").Kv("error", "notification delivery: " + delivery_or.error());
    writer->Stop();
    return 1;
  }
  std::unique_ptr<alerting::Delivery> delivery = std::move(delivery_or).value();
  AlertGauges alert_gauges(metrics);
  IncidentGauges incident_gauges(metrics);
  AlertPipelineOptions pipeline_options;
  pipeline_options.db_path = config->storage.path;
  pipeline_options.on_enqueued = [&delivery] { delivery->Wake(); };
  pipeline_options.on_states = [&alert_gauges](const auto& changed, const auto& removed) {
    alert_gauges.Update(changed, removed);
  };
  pipeline_options.on_incidents = [&incident_gauges](const auto& open) { incident_gauges.Update(open); };
  auto pipeline_or = AlertPipeline::Start(pipeline_options, config, clock);
  if (!pipeline_or) {
    log::Error("start-up failed").Kv("error", "alerting: " + pipeline_or.error());
    delivery->Stop(config->server.shutdown_grace);
    writer->Stop();
    return 1;
  }
  std::unique_ptr<AlertPipeline> pipeline = std::move(pipeline_or).value();

  // Every result, probed here or pushed by an agent, takes the same way: the metrics, the
  // alert pipeline, then the writer (false: its queue is full and the result is lost, counted
  // by the caller).
  const auto fan_out = [&writer, &metrics, &pipeline](probes::ProbeResult r) {
    metrics.Observe(r);
    pipeline->Offer(r);
    return writer->Enqueue(std::move(r));
  };
  probes::Scheduler scheduler(clock);
  const int retries_room = 1;
  ProbeLoop loop(clock, scheduler, {[&writer] { return writer->HasRoom(retries_room); }, fan_out, {}});
  ApplySchedule(scheduler, loop, config);

  probes::HttpProber::Options engine_options;
  engine_options.max_in_flight = config->engine.max_in_flight;
  engine_options.on_tick = [&loop](probes::Prober& p) { return loop.Tick(p); };
  auto prober = std::make_unique<probes::HttpProber>(engine_options, clock);

  ConfigHolder current(config);
  Readiness readiness(*writer, [&loop] { return loop.LastTick(); }, clock);
  HttpServer::Options server_options;
  server_options.listen = config->server.listen_addr;
  server_options.ready = [&readiness](std::string* why) { return readiness.Ready(why); };
  server_options.tls_cert = config->server.tls_cert;
  server_options.tls_key = config->server.tls_key;
  server_options.limits.max_connections = static_cast<size_t>(config->server.max_connections);
  server_options.limits.max_connections_per_peer = static_cast<size_t>(config->server.max_connections_per_peer);
  server_options.limits.request_timeout =
      std::chrono::duration_cast<std::chrono::milliseconds>(config->server.request_timeout);
  HttpServer server(server_options);
  metrics.SetSelfStats([&loop, &prober, &writer, &scheduler, &pipeline, &delivery, &server, started = clock.Now()] {
    SelfStats s = CollectSelfStats(loop, *prober, *writer, scheduler, *pipeline, *delivery, started);
    const ListenerStats ls = server.Stats();
    s.http = SelfStats::Http{ls.open,  ls.accepted,  ls.requests,   ls.refused_peer_limit, ls.refused_total_limit,
                             ls.evicted, ls.timed_out, ls.bad_requests};
    return s;
  });
  // Agent result batches (docs/regions.md): their own series, alerts and rows, like local ones.
  RegisterIngestRoute(server, {&current, [&writer](size_t rows) { return writer->HasRoom(rows); }, fan_out});

  RegisterMetricsRoute(server, metrics);
  // JSON API and status page (daemon/api.h, daemon/status_page.h): read-only, each HTTP
  // thread on its own SQLite connection.
  const ApiDeps api_deps{current, config->storage.path, clock, [&pipeline] { return pipeline->Snapshot(); }};
  RegisterApiRoutes(server, api_deps);
  RegisterStatusPage(server, api_deps);
  auto port = server.Start();
  if (!port) {
    log::Error("start-up failed").Kv("error", port.error());
    prober->Stop();
    pipeline->Stop();
    delivery->Stop(config->server.shutdown_grace);
    writer->Stop();
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
      if (auto empty = RequireMonitors(*reloaded)) {
        log::Error("config reload refused, keeping the previous config: the new file has no monitors")
            .Kv("config", config_path)
            .Kv("monitors", static_cast<uint64_t>(config->monitors.size()))
            .Kv("error", empty->ToString());
        continue;
      }
      if (reloaded->server.listen != config->server.listen) {
        log::Warn("server.listen changed; restart to apply").Kv("listen", config->server.listen);
      }
      if (reloaded->storage.path != config->storage.path) {
        log::Warn("storage.path changed; restart to apply").Kv("path", config->storage.path);
      }
      if (reloaded->engine.max_in_flight != config->engine.max_in_flight) {
        log::Warn("engine.max_in_flight changed; restart to apply")
            .Kv("max_in_flight", config->engine.max_in_flight);
      }
      config = std::make_shared<const Config>(std::move(reloaded).value());
      current.Set(config);
      LogLoaded(*config, "config reloaded");
      ApplySchedule(scheduler, loop, config);
      metrics.RetainMonitors(MonitorNames(*config));
      delivery->Reconfigure(config->notifiers);  // first: new notifiers exist before messages for them
      pipeline->Reconfigure(config);
      prober->Wake();
      continue;
    }
    log::Info("shutting down").Kv("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    break;
  }
  // One deadline for every stage, so SIGTERM ends within shutdown_grace (plus the final
  // commit and at most a second for the listener), whatever is in flight. Stop in pipeline
  // order: no new probes, in-flight ones get what is left of the grace (their results
  // reach the writer and the alert pipeline), the pipeline commits what it has, delivery
  // gets what is left for the request in flight (the message stays in the outbox for the
  // next start), the listener closes, then the writer flushes.
  const auto deadline = std::chrono::steady_clock::now() + config->server.shutdown_grace;
  const auto left = [deadline] {
    return std::max(Duration::zero(), std::chrono::ceil<Duration>(deadline - std::chrono::steady_clock::now()));
  };
  prober->Stop(left());
  metrics.SetSelfStats(nullptr);  // reads the prober and the listener
  prober.reset();
  pipeline->Stop();
  delivery->Stop(left());
  // Before the writer: stopping the listener joins its worker threads, which closes their
  // read connections (daemon/api.h). The writer's is then the last connection to the
  // database, so its final checkpoint leaves the database file complete on its own
  // (storage/writer.h).
  server.Stop(std::clamp(left(), Duration(100), Duration(1000)));
  writer->Stop();
  const auto& s = loop.stats();
  const storage::WriterStats ws = writer->Stats();
  log::Info("stopped")
      .Kv("probes", s.submitted.load())
      .Kv("results", s.results.load())
      .Kv("skipped_overload", s.skipped_overload.load())
      .Kv("skipped_backpressure", s.skipped_backpressure.load())
      .Kv("rows_written", ws.rows_written)
      .Kv("lag_p99_ms_le", s.lag.QuantileBoundMs(0.99));
  return 0;
}

}  // namespace gatewatch::daemon
