#include "daemon/ingest.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "daemon/result_json.h"
#include "probes/log.h"

namespace gatewatch::daemon {

void RegisterIngestRoute(HttpServer& server, IngestDeps deps) {
  const ConfigHolder* config = deps.config;
  auto handler = [deps = std::move(deps)](const HttpRequest& req) {
    nlohmann::json body;
    try {
      body = nlohmann::json::parse(req.body);
    } catch (const nlohmann::json::parse_error& e) {
      return HttpResponse::JsonError(400, std::string("invalid JSON: ") + e.what());
    }
    if (!body.is_array()) return HttpResponse::JsonError(400, "expected a JSON array of results");
    if (body.size() > deps.max_results) {
      return HttpResponse::JsonError(413, "at most " + std::to_string(deps.max_results) +
                                              " results per request, got " + std::to_string(body.size()));
    }
    const auto cfg = deps.config->Get();
    std::vector<probes::ProbeResult> results;
    results.reserve(body.size());
    for (size_t i = 0; i < body.size(); ++i) {
      auto r = FromJson(body[i]);
      const std::string where = "results[" + std::to_string(i) + "]";
      if (!r) return HttpResponse::JsonError(400, where + "." + r.error());
      const probes::MonitorConfig* m = cfg->FindMonitor(r->monitor);
      if (m == nullptr) {
        return HttpResponse::JsonError(400, where + ".monitor: unknown monitor \"" + r->monitor + "\"");
      }
      // Only the monitor's configured regions: a token holder cannot add series at will.
      if (std::find(m->regions.begin(), m->regions.end(), r->region) == m->regions.end()) {
        return HttpResponse::JsonError(400, where + ".region: \"" + r->region + "\" is not a region of monitor \"" +
                                                r->monitor + "\"");
      }
      r->due = SystemTime{};  // not scheduled here: no lag sample
      results.push_back(std::move(r).value());
    }
    if (!deps.has_room(results.size())) {
      HttpResponse busy = HttpResponse::JsonError(503, "the writer's queue is full; send the batch again later");
      busy.headers.emplace_back("Retry-After", "5");
      return busy;
    }
    size_t accepted = 0;
    for (auto& r : results) {
      if (!deps.accept(std::move(r))) break;
      ++accepted;
    }
    HttpResponse res;
    res.content_type = "application/json";
    res.body = nlohmann::json{{"accepted", accepted}}.dump() + "\n";
    if (accepted < results.size()) {
      // The queue filled up between the check and the last result (another producer):
      // say how many were taken so the agent resends only the rest.
      res.status = 503;
      res.headers.emplace_back("Retry-After", "5");
      log::Warn("ingest batch partly refused").Kv("accepted", static_cast<uint64_t>(accepted))
          .Kv("batch", static_cast<uint64_t>(results.size()));
    }
    return res;
  };
  server.Post("/api/v1/ingest", std::move(handler), [config] { return config->Get()->server.api_token; });
}

}  // namespace gatewatch::daemon
