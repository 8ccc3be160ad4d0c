#include "daemon/api.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "daemon/result_json.h"
#include "probes/log.h"
#include "probes/url.h"
#include "storage/incident_store.h"
#include "storage/sqlite_store.h"

namespace gatewatch::daemon {

// Objects keep their keys in the order written here, the order docs/http-api.md documents.
using json = nlohmann::ordered_json;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------
// Per-thread read connection.

namespace {

struct ThreadStore {
  std::string path;
  std::unique_ptr<storage::SqliteStore> store;  // opened and closed on this thread
  std::unique_ptr<storage::IncidentStore> incidents;
};
// One per HTTP worker thread: a SqliteStore is thread-bound, and opening one per request
// costs an open() plus schema check each time for no benefit.
thread_local ThreadStore t_store;

}  // namespace

Result<storage::Store*> ReadStore(const std::string& db_path) {
  if (t_store.store == nullptr || t_store.path != db_path) {
    t_store.store.reset();
    storage::OpenOptions options;
    options.read_only = true;
    // Readers only wait for a lock during WAL recovery; never hold an HTTP thread long.
    options.busy_timeout = std::chrono::milliseconds(2000);
    auto opened = storage::SqliteStore::Open(db_path, options);
    if (!opened) return Error(opened.error());
    t_store.store = std::move(opened).value();
    t_store.path = db_path;
  }
  return static_cast<storage::Store*>(t_store.store.get());
}

Result<storage::IncidentStore*> ReadIncidents(const std::string& db_path, const Clock& clock) {
  if (t_store.incidents == nullptr || t_store.path != db_path) {
    if (t_store.path != db_path) DropReadStore();
    storage::OpenOptions options;
    options.read_only = true;
    options.busy_timeout = std::chrono::milliseconds(2000);
    auto opened = storage::IncidentStore::Open(db_path, clock, options);
    if (!opened) return Error(opened.error());
    t_store.incidents = std::move(opened).value();
    t_store.path = db_path;
  }
  return t_store.incidents.get();
}

void DropReadStore() {
  t_store.store.reset();
  t_store.incidents.reset();
  t_store.path.clear();
}

// ---------------------------------------------------------------------------------------
// Helpers shared with the status page.

std::string PublicUrl(std::string_view url) {
  auto parsed = ParseHttpUrl(url);
  if (!parsed) return "";
  std::string path = parsed->target;
  path = path.substr(0, path.find('?'));
  if (path.empty()) path = "/";
  const std::string host =
      parsed->host.find(':') != std::string::npos ? "[" + parsed->host + "]" : parsed->host;
  return parsed->scheme + "://" + host + ":" + std::to_string(parsed->port) + path;
}

std::string RedactQuery(std::string text, std::string_view url) {
  const size_t q = url.find('?');
  if (q == std::string_view::npos) return text;
  std::string_view query = url.substr(q);
  query = query.substr(0, query.find('#'));
  if (query.size() <= 1) return text;
  constexpr std::string_view kRedacted = "?[redacted]";
  for (size_t pos = text.find(query); pos != std::string::npos;
       pos = text.find(query, pos + kRedacted.size())) {
    text.replace(pos, query.size(), kRedacted);
  }
  return text;
}

std::optional<double> UptimeCount::Ratio() const {
  if (confirmed <= 0) return std::nullopt;
  return static_cast<double>(confirmed - failures) / static_cast<double>(confirmed);
}

std::string_view RegionState(const std::optional<probes::ProbeResult>& latest) {
  if (!latest) return "unknown";
  return probes::IsFailure(latest->outcome) ? "failing" : "ok";
}

std::string_view MonitorStatus::State() const {
  bool any = false;
  for (const Region& r : regions) {
    const std::string_view s = RegionState(r.latest);
    if (s == "failing") return "failing";
    any = any || s == "ok";
  }
  return any ? "ok" : "unknown";
}

namespace {

SystemTime FloorTo(SystemTime t, std::chrono::milliseconds width) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch());
  auto floored = ms - ms % width;
  if (ms.count() < 0 && ms % width != 0ms) floored -= width;
  return SystemTime(std::chrono::duration_cast<SystemTime::duration>(floored));
}

void Add(UptimeCount& u, const storage::Rollup& r) {
  u.confirmed += r.confirmed;
  u.failures += r.Failures();
}

}  // namespace

Result<MonitorStatus> LoadMonitorStatus(storage::Store& store, const probes::MonitorConfig& m,
                                        const std::vector<probes::ProbeResult>& latest,
                                        SystemTime now, const StatusOptions& options) {
  MonitorStatus status;
  std::map<std::string, size_t, std::less<>> index;
  for (const std::string& region : m.regions) {
    index.emplace(region, status.regions.size());
    status.regions.push_back({region, std::nullopt, {}});
  }
  for (const probes::ProbeResult& r : latest) {
    if (r.monitor != m.name) continue;
    auto it = index.find(r.region);
    if (it != index.end()) status.regions[it->second].latest = r;
  }

  // Windows end with the current (partial) hour: "24h" is the current hour bucket and the
  // 23 before it.
  const SystemTime hour = FloorTo(now, 1h);
  const SystemTime since_24h = hour - 23h;
  const SystemTime since_7d = hour - (7 * 24h - 1h);
  const SystemTime since_30d = hour - (30 * 24h - 1h);
  storage::RollupQuery q;
  q.width = storage::RollupWidth::kHour;
  q.monitor = m.name;
  q.since = options.long_uptime ? since_30d : since_24h;
  auto hours = store.Rollups(q);
  if (!hours) return Error(hours.error());
  for (const storage::Rollup& r : *hours) {
    auto it = index.find(r.region);
    if (it == index.end()) continue;  // a region no longer configured for this monitor
    if (r.bucket_start >= since_24h) {
      Add(status.uptime_24h, r);
      Add(status.regions[it->second].uptime_24h, r);
    }
    if (r.bucket_start >= since_7d) Add(status.uptime_7d, r);
    Add(status.uptime_30d, r);
  }

  if (options.latency) {
    storage::RollupQuery mq;
    mq.width = storage::RollupWidth::kMinute;
    mq.monitor = m.name;
    mq.since = FloorTo(now, 1min) - 59min;
    auto minutes = store.Rollups(mq);
    if (!minutes) return Error(minutes.error());
    // Rows come ordered by bucket_start then region: sum the regions of each minute.
    std::optional<SystemTime> bucket;
    int64_t count = 0, sum_us = 0;
    auto flush = [&] {
      if (bucket && count > 0) {
        status.latency_ms.emplace_back(*bucket, static_cast<double>(sum_us) / count / 1000.0);
      }
    };
    for (const storage::Rollup& r : *minutes) {
      if (!index.contains(r.region)) continue;
      if (bucket != r.bucket_start) {
        flush();
        bucket = r.bucket_start;
        count = sum_us = 0;
      }
      count += r.total.count;
      sum_us += r.total.sum_us;
    }
    flush();
  }
  return status;
}

// ---------------------------------------------------------------------------------------
// Time parsing.

Result<SystemTime> ParseApiTime(std::string_view text) {
  std::string t(text);
  // A '+' in a query string decodes to a space: "2026-11-23T07:00:00 02:00".
  if (t.size() > 19 && t[t.size() - 6] == ' ') t[t.size() - 6] = '+';
  const size_t dot = t.find('.');
  if (dot != std::string::npos && dot > 0 && dot + 1 < t.size() &&
      t.find_first_not_of("0123456789.") == std::string::npos &&
      t.find('.', dot + 1) == std::string::npos) {
    // Unix seconds with a fraction ("1790000000.25"); ParseTime takes whole seconds.
    auto whole = ParseTime(std::string_view(t).substr(0, dot));
    if (!whole) return Error(whole.error());
    int64_t nanos = 0;
    int64_t scale = 1'000'000'000;
    for (size_t i = dot + 1; i < t.size() && scale > 1; ++i) {
      scale /= 10;
      nanos += (t[i] - '0') * scale;
    }
    return *whole +
           std::chrono::duration_cast<SystemTime::duration>(std::chrono::nanoseconds(nanos));
  }
  return ParseTime(t);
}

// ---------------------------------------------------------------------------------------
// Handlers.

namespace {

constexpr int kRecentFailures = 10;

HttpResponse JsonOk(const json& body) {
  HttpResponse r;
  r.content_type = "application/json";
  // Results carry bytes from the probed servers (body snippets): invalid UTF-8 is
  // replaced rather than failing the whole response.
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

HttpResponse StorageError(const std::string& what, const std::string& error) {
  DropReadStore();
  log::Error("api: cannot read the database").Kv("what", what).Kv("error", error);
  return HttpResponse::JsonError(500, "cannot read the results database");
}

json ResultJson(const probes::ProbeResult& r, const probes::MonitorConfig& m) {
  json j = ToJson(r);
  j["detail"] = RedactQuery(r.detail, m.url);
  return j;
}

json PhasesJson(const probes::PhaseTimings& p) {
  json phases = json::object();
  for (const probes::PhaseField& f : probes::kPhases) {
    if (const auto& value = p.*f.member) phases[std::string(f.name)] = static_cast<double>(value->count()) / 1e6;
  }
  return phases;
}

json RatioJson(const UptimeCount& u) {
  auto ratio = u.Ratio();
  return ratio ? json(*ratio) : json(nullptr);
}

json RegionJson(const MonitorStatus::Region& region, const probes::MonitorConfig& m,
                bool detailed) {
  json j = {{"region", region.name}, {"state", std::string(RegionState(region.latest))}};
  if (region.latest) {
    const probes::ProbeResult& r = *region.latest;
    j["outcome"] = std::string(probes::ToString(r.outcome));
    j["http_status"] = r.http_status;
    j["last_probe_at"] = FormatTime(r.started_at);
    j["phases_seconds"] = PhasesJson(r.phases);
    if (r.http_status >= 500) {
      j["emitter"] = std::string(probes::ToString(r.emitter));
      j["reason"] = std::string(probes::ToString(r.reason));
    }
    j["detail"] = RedactQuery(r.detail, m.url);
  }
  if (detailed) j["uptime_24h"] = RatioJson(region.uptime_24h);
  return j;
}

json MonitorJson(const probes::MonitorConfig& m, const MonitorStatus& s, bool detailed) {
  json current = json::array();
  for (const MonitorStatus::Region& region : s.regions) {
    current.push_back(RegionJson(region, m, detailed));
  }
  return {
      {"name", m.name},
      {"url", PublicUrl(m.url)},
      {"interval_seconds", static_cast<double>(m.probe.interval.count()) / 1000.0},
      {"regions", m.regions},
      {"upstreams", m.upstreams},
      {"state", std::string(s.State())},
      {"uptime_24h", RatioJson(s.uptime_24h)},
      {"current", current},
  };
}

HttpResponse ListMonitors(const ApiDeps& deps) {
  const std::shared_ptr<const Config> cfg = deps.config.Get();
  auto store = ReadStore(deps.db_path);
  if (!store) return StorageError("open", store.error());
  auto latest = (*store)->Latest(storage::LatestQuery{});
  if (!latest) return StorageError("latest", latest.error());
  const SystemTime now = deps.clock.Now();
  json monitors = json::array();
  for (const probes::MonitorConfig& m : cfg->monitors) {
    auto status = LoadMonitorStatus(**store, m, *latest, now, {});
    if (!status) return StorageError("rollups of " + m.name, status.error());
    monitors.push_back(MonitorJson(m, *status, false));
  }
  return JsonOk({{"monitors", monitors}});
}

HttpResponse UnknownMonitor(const std::string& name) {
  return HttpResponse::JsonError(404, "no monitor named \"" + name + "\" is configured");
}

HttpResponse GetMonitor(const ApiDeps& deps, const HttpRequest& req) {
  const std::string name = req.matches.empty() ? "" : req.matches[0];
  const std::shared_ptr<const Config> cfg = deps.config.Get();
  const probes::MonitorConfig* m = cfg->FindMonitor(name);
  if (m == nullptr) return UnknownMonitor(name);
  auto store = ReadStore(deps.db_path);
  if (!store) return StorageError("open", store.error());
  storage::LatestQuery lq;
  lq.monitor = m->name;
  auto latest = (*store)->Latest(lq);
  if (!latest) return StorageError("latest", latest.error());
  auto status = LoadMonitorStatus(**store, *m, *latest, deps.clock.Now(), {.long_uptime = true});
  if (!status) return StorageError("rollups of " + m->name, status.error());
  storage::ResultQuery rq;
  rq.monitor = m->name;
  rq.limit = kRecentFailures;
  rq.failures_only = true;
  auto failures = (*store)->Results(rq);
  if (!failures) return StorageError("failures of " + m->name, failures.error());

  json j = MonitorJson(*m, *status, true);
  json expect = json::array();
  for (const probes::StatusMatcher& s : m->probe.expect_status) expect.push_back(s.ToString());
  j["settings"] = {
      {"method", m->probe.method},
      {"timeout_seconds", static_cast<double>(m->probe.timeout.count()) / 1000.0},
      {"retries", m->probe.retries},
      {"follow_redirects", m->probe.follow_redirects},
      {"tls_skip_verify", m->probe.tls_skip_verify},
      {"expect_status", expect},
  };
  j["uptime"] = {{"24h", RatioJson(status->uptime_24h)},
                 {"7d", RatioJson(status->uptime_7d)},
                 {"30d", RatioJson(status->uptime_30d)}};
  json recent = json::array();
  for (const probes::ProbeResult& r : *failures) recent.push_back(ResultJson(r, *m));
  j["recent_failures"] = recent;
  return JsonOk(j);
}

// A `limit` parameter: an integer from 1 to max.
Result<int> ParseLimit(const std::string& text, int max) {
  int limit = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), limit);
  if (ec != std::errc() || end != text.data() + text.size() || limit < 1 || limit > max) {
    return Error("expected an integer from 1 to " + std::to_string(max) + ", got \"" + text + "\"");
  }
  return limit;
}

HttpResponse GetResults(const ApiDeps& deps, const HttpRequest& req) {
  const std::string name = req.matches.empty() ? "" : req.matches[0];
  const std::shared_ptr<const Config> cfg = deps.config.Get();
  const probes::MonitorConfig* m = cfg->FindMonitor(name);
  if (m == nullptr) return UnknownMonitor(name);

  storage::ResultQuery q;
  q.monitor = m->name;
  json echo = {{"monitor", m->name}, {"region", nullptr}, {"since", nullptr}, {"until", nullptr}};
  for (const char* param : {"since", "until"}) {
    auto text = req.Param(param);
    if (!text) continue;
    auto t = ParseApiTime(*text);
    if (!t) return HttpResponse::JsonError(400, std::string(param) + ": " + t.error());
    (std::string_view(param) == "since" ? q.since : q.until) = *t;
    echo[param] = FormatTime(*t);
  }
  if (q.since >= q.until) {
    return HttpResponse::JsonError(400,
                                   "since: must be before until (the range is [since, until))");
  }
  if (auto region = req.Param("region")) {
    if (region->empty()) return HttpResponse::JsonError(400, "region: must not be empty");
    q.region = *region;
    echo["region"] = *region;
  }
  if (auto text = req.Param("limit")) {
    auto limit = ParseLimit(*text, storage::kMaxResultLimit);
    if (!limit) return HttpResponse::JsonError(400, "limit: " + limit.error());
    q.limit = *limit;
  }
  echo["limit"] = q.limit;

  auto store = ReadStore(deps.db_path);
  if (!store) return StorageError("open", store.error());
  auto results = (*store)->Results(q);
  if (!results) return StorageError("results of " + m->name, results.error());
  json list = json::array();
  for (const probes::ProbeResult& r : *results) list.push_back(ResultJson(r, *m));
  echo["more"] = static_cast<int>(results->size()) >= q.limit;
  echo["results"] = std::move(list);
  return JsonOk(echo);
}

json IncidentJson(const storage::Incident& inc) {
  json evidence = json::parse(inc.evidence, nullptr, /*allow_exceptions=*/false);
  if (evidence.is_discarded()) evidence = json::object();  // storage checks it; never fail a listing
  return {{"id", inc.id},
          {"monitor", inc.monitor},
          {"verdict", inc.verdict},
          {"first_verdict", inc.first_verdict},
          {"summary", inc.summary},
          {"regions", inc.regions},
          {"opened_at", FormatTime(inc.opened_at)},
          {"updated_at", FormatTime(inc.updated_at)},
          {"closed_at", inc.closed_at ? json(FormatTime(*inc.closed_at)) : json(nullptr)},
          {"peak_ratio", inc.peak_ratio},
          {"alert_fired", inc.alert_fired},
          {"evidence", std::move(evidence)}};
}

HttpResponse ListIncidents(const ApiDeps& deps, const HttpRequest& req) {
  const std::optional<std::string> open = req.Param("open");
  if (open && *open != "true" && *open != "false") {
    return HttpResponse::JsonError(400, "open: expected true or false, got \"" + *open + "\"");
  }
  storage::IncidentQuery q;
  q.open_only = open == "true";
  q.limit = storage::kMaxIncidentLimit;
  if (auto m = req.Param("monitor")) q.monitor = *m;
  if (auto limit = req.Param("limit")) {
    auto n = ParseLimit(*limit, storage::kMaxIncidentLimit);
    if (!n) return HttpResponse::JsonError(400, "limit: " + n.error());
    q.limit = *n;
  }
  auto store = ReadIncidents(deps.db_path, deps.clock);
  if (!store) return StorageError("open", store.error());
  auto incidents = (*store)->List(q);
  if (!incidents) return StorageError("incidents", incidents.error());
  json list = json::array();
  for (const storage::Incident& inc : *incidents) {
    if (open == "false" && inc.open()) continue;
    list.push_back(IncidentJson(inc));
  }
  return JsonOk({{"incidents", std::move(list)}});
}

HttpResponse ListAlerts(const ApiDeps& deps, const HttpRequest& req) {
  std::optional<std::string> state = req.Param("state");
  if (state && *state != "ok" && *state != "pending" && *state != "firing" && *state != "resolving") {
    return HttpResponse::JsonError(400, "state: expected ok, pending, firing or resolving, got \"" + *state + "\"");
  }
  json list = json::array();
  if (deps.alerts) {
    for (const alerting::AlertStatus& a : deps.alerts()) {
      if (state && alerting::ToString(a.state) != *state) continue;
      json regions = json::object();
      for (const auto& [region, value] : a.region_ratio) regions[region] = value;
      list.push_back({{"alert", a.alert},
                      {"monitor", a.monitor},
                      {"state", alerting::ToString(a.state)},
                      {"since", FormatTime(a.since)},
                      {"silenced", a.silenced},
                      {"ratio", a.ratio},
                      {"regions", std::move(regions)}});
    }
  }
  return JsonOk({{"alerts", std::move(list)}});
}

}  // namespace

void RegisterApiRoutes(HttpServer& server, const ApiDeps& deps) {
  server.Get("/api/v1/monitors", [deps](const HttpRequest&) { return ListMonitors(deps); });
  server.Get(R"(/api/v1/monitors/([^/]+))",
             [deps](const HttpRequest& req) { return GetMonitor(deps, req); });
  server.Get(R"(/api/v1/monitors/([^/]+)/results)",
             [deps](const HttpRequest& req) { return GetResults(deps, req); });
  server.Get("/api/v1/incidents", [deps](const HttpRequest& req) { return ListIncidents(deps, req); });
  server.Get("/api/v1/alerts", [deps](const HttpRequest& req) { return ListAlerts(deps, req); });
}

}  // namespace gatewatch::daemon
