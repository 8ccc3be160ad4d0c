#pragma once
// The JSON API (docs/http-api.md): read-only views of the configured monitors and their stored
// results. Every body is built with nlohmann::json; errors are HttpResponse::JsonError
// ({"error": "..."}) with 400 (a bad parameter, named in the message), 404 (unknown monitor)
// or 500 (the database could not be read).
//
// Threads: handlers run on the HTTP listener's workers. Each worker keeps its own read-only
// SqliteStore (a thread_local connection, opened on first use and reopened after an error;
// storage/store.h: a Store is thread-bound), closed when the thread exits; HttpServer::Stop()
// joins the pool, so the daemon stops the server before the writer (storage/writer.h Stop()).
// WAL readers never block the writer, and every query is bounded by a time range and/or a
// row limit. The config is read through ConfigHolder::Get() once per request, so one request
// sees one consistent config.
//
// Secrets never appear: monitor URLs are shown without their query string (it may hold a
// token), request headers and bodies of monitors are not shown, nor are notifier URLs or
// server.api_token.
//
// Endpoints and schemas (times RFC 3339 UTC with milliseconds, durations in seconds):
//
// GET /api/v1/monitors
//   {"monitors": [Monitor...]} in config order, where Monitor is
//   {"name": "shop", "url": "https://shop.example.com:443/checkout",   // no query string
//    "interval_seconds": 30, "regions": ["local", "eu"], "upstreams": ["shop-app"],
//    "state": "ok" | "failing" | "unknown",       // failing if any region fails; unknown
//                                                 // while no region has a confirmed result
//    "uptime_24h": 0.998 | null,                  // share of confirmed results that are not
//                                                 // failures, from hour rollups; null = none
//    "current": [RegionState...]}                 // one per configured region, config order
//   RegionState:
//   {"region": "eu", "state": "ok" | "failing" | "unknown",
//    // the rest only when a confirmed result exists (state != unknown):
//    "outcome": "http_502", "http_status": 502, "last_probe_at": "2026-...Z",
//    "phases_seconds": {"connect": 0.001, ..., "total": 0.012},   // reached phases only
//    "emitter": "nginx", "reason": "unknown",     // only for http_status >= 500
//    "detail": "..."}
//
// GET /api/v1/monitors/{name}     (404 for a name that is not configured)
//   Monitor as above, plus
//   {"settings": {"method": "GET", "timeout_seconds": 10, "retries": 1,
//                 "follow_redirects": false, "tls_skip_verify": false,
//                 "expect_status": ["2xx"]},
//    "uptime": {"24h": 0.99 | null, "7d": ... , "30d": ...},      // all regions together
//    "current": [RegionState + {"uptime_24h": 0.99 | null}],
//    "recent_failures": [Result...]}   // the newest failed attempts, at most 10, newest first
//
// GET /api/v1/monitors/{name}/results?since=&until=&region=&limit=
//   since/until: RFC 3339 ("2026-11-23T05:25:10Z", fractions and offsets allowed) or unix
//   seconds ("1790000000", "1790000000.5"); the range is half-open [since, until), default
//   everything stored. region: one region's results only. limit: 1..storage::kMaxResultLimit,
//   default 100. Newest first.
//   {"monitor": "shop", "region": "eu" | null, "since": "...Z" | null, "until": "...Z" | null,
//    "limit": 100, "more": false,   // more = the limit was reached: older rows may exist
//    "results": [Result...]}
//   Result is daemon/result_json.h ToJson(ProbeResult) (the agent ingest uses it too).
//
// GET /api/v1/incidents[?open=true|false][&monitor=NAME][&limit=N]
//   {"incidents": [{"id": 7, "monitor": "shop",
//                   "verdict": "upstream_down",         // current (docs/alerts-and-diagnosis.md name)
//                   "first_verdict": "gateway_fault",    // the verdict it opened with
//                   "summary": "upstream shop-api-1 refuses connections ...",
//                   "regions": ["local"],                // failing regions, last diagnosis
//                   "opened_at": "...Z", "updated_at": "...Z",
//                   "closed_at": "...Z" | null,          // null while open
//                   "peak_ratio": 0.75,                  // peak failure ratio in the window
//                   "alert_fired": true,                 // an alert fired during it
//                   "evidence": {...}}]}                 // probes::EvidenceToJson
//   open=true lists open incidents only, open=false closed ones only; absent = both;
//   newest opened first, at most `limit` (1..1000, default 1000). Any other value of open
//   or limit is a 400.
//
// GET /api/v1/alerts[?state=firing]
//   {"alerts": [{"alert": "shop-5xx", "monitor": "shop",
//                "state": "ok" | "pending" | "firing" | "resolving",
//                "since": "...Z",            // when it entered that state
//                "silenced": false,          // inside a silence: notifications muted
//                "ratio": 0.4,               // the worst region's value the rule compares
//                "regions": {"local": 0.4}}]}  // per region (gatewatch_alert_ratio)
//   Every alert x monitor pair of the config, ordered by alert then monitor; state=
//   filters by one state (any other value is a 400).

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "alerting/evaluator.h"
#include "daemon/config_holder.h"
#include "daemon/http_server.h"
#include "probes/clock.h"
#include "probes/probe_result.h"
#include "probes/result.h"
#include "storage/incident_store.h"
#include "storage/store.h"

namespace gatewatch::daemon {

// What the API and status page handlers need. The references must outlive the HttpServer
// the routes are registered on (handlers keep a copy of this struct).
struct ApiDeps {
  const ConfigHolder& config;
  std::string db_path;  // storage.path at start-up (a change needs a restart)
  const Clock& clock;
  // The alert states (the pipeline's snapshot); null: no alerting, the list is empty.
  std::function<std::vector<alerting::AlertStatus>()> alerts = nullptr;
};

void RegisterApiRoutes(HttpServer& server, const ApiDeps& deps);

// --- Shared with the status page (daemon/status_page.cc). ---

// The calling thread's read-only connection to `db_path`, opened on first use (a thread
// keeps one connection; asking for another path replaces it). After a failed query call
// DropReadStore() so that the next request reopens it.
Result<storage::Store*> ReadStore(const std::string& db_path);
// The same thread's read-only incident store (dropped together by DropReadStore()).
Result<storage::IncidentStore*> ReadIncidents(const std::string& db_path, const Clock& clock);
void DropReadStore();

// "scheme://host:port/path": the monitor URL without query string (it may hold a token) or
// fragment. An unparsable URL gives "" (config validation makes that impossible).
std::string PublicUrl(std::string_view url);

// Replaces a monitor URL's query string, wherever it occurs in `text`, with "?[redacted]":
// for free-text fields (result detail) that might quote the URL.
std::string RedactQuery(std::string text, std::string_view url);

// Share of confirmed results that were not failures; nullopt when there were none.
struct UptimeCount {
  int64_t confirmed = 0;
  int64_t failures = 0;
  std::optional<double> Ratio() const;
};

// The state of one monitor as the API and the status page show it. Built with a few bounded
// queries per monitor.
struct MonitorStatus {
  struct Region {
    std::string name;
    std::optional<probes::ProbeResult> latest;  // newest confirmed result
    UptimeCount uptime_24h;
  };
  std::vector<Region> regions;                    // the monitor's configured regions, config order
  UptimeCount uptime_24h, uptime_7d, uptime_30d;  // every region together, hour rollups
  // Average phases.total per minute over the last hour, every region together, oldest first.
  std::vector<std::pair<SystemTime, double>> latency_ms;

  // "failing" if any region's latest confirmed result is a failure, else "ok" if any region
  // has one, else "unknown".
  std::string_view State() const;
};

struct StatusOptions {
  bool long_uptime = false;  // also 7d and 30d (else only 24h is queried)
  bool latency = false;      // fill latency_ms
};

// `latest` is the result of Store::Latest (confirmed only) for every monitor, or just this
// one; entries of other monitors are ignored.
Result<MonitorStatus> LoadMonitorStatus(storage::Store& store, const probes::MonitorConfig& m,
                                        const std::vector<probes::ProbeResult>& latest,
                                        SystemTime now, const StatusOptions& options);

// "ok" / "failing" / "unknown" for one region's latest confirmed result.
std::string_view RegionState(const std::optional<probes::ProbeResult>& latest);

// Parses an API time: ParseTime (daemon/result_json.h: RFC 3339 or unix seconds), plus a
// fraction of unix seconds, and a space for the '+' of an offset (a query string decodes
// '+' to a space).
Result<SystemTime> ParseApiTime(std::string_view text);

}  // namespace gatewatch::daemon
