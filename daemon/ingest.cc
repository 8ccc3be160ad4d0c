#include "daemon/ingest.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "daemon/result_json.h"
#include "probes/log.h"
#include "probes/text.h"

namespace gatewatch::daemon {

Result<std::vector<probes::ProbeResult>, HttpResponse> ParseIngestBatch(std::string_view text, const Config& config,
                                                                       size_t max_results) {
  using Refused = Result<std::vector<probes::ProbeResult>, HttpResponse>;
  const auto refuse = [](int status, const std::string& message) { return Refused(Unexpected(HttpResponse::JsonError(status, message))); };
  nlohmann::json body;
  try {
    body = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for 1e99999
    return refuse(400, std::string("invalid JSON: ") + e.what());
  }
  if (!body.is_array()) return refuse(400, "expected a JSON array of results");
  if (body.size() > max_results) {
    return refuse(413, "at most " + std::to_string(max_results) + " results per request, got " +
                           std::to_string(body.size()));
  }
  std::vector<probes::ProbeResult> results;
  results.reserve(body.size());
  for (size_t i = 0; i < body.size(); ++i) {
    auto r = FromJson(body[i]);
    const std::string where = "results[" + std::to_string(i) + "]";
    if (!r) return refuse(400, where + "." + r.error());
    const probes::MonitorConfig* m = config.FindMonitor(r->monitor);
    if (m == nullptr) return refuse(400, where + ".monitor: unknown monitor " + Quoted(r->monitor));
    // Only the monitor's configured regions: a token holder cannot add series at will.
    if (std::find(m->regions.begin(), m->regions.end(), r->region) == m->regions.end()) {
      return refuse(400, where + ".region: " + Quoted(r->region) + " is not a region of monitor " + Quoted(r->monitor));
    }
    r->due = SystemTime{};  // not scheduled here: no lag sample
    results.push_back(std::move(r).value());
  }
  return results;
}

void RegisterIngestRoute(HttpServer& server, IngestDeps deps) {
  const ConfigHolder* config = deps.config;
  auto handler = [deps = std::move(deps)](const HttpRequest& req) {
    auto parsed = ParseIngestBatch(req.body, *deps.config->Get(), deps.max_results);
    if (!parsed) return parsed.error();
    std::vector<probes::ProbeResult> results = std::move(parsed).value();
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
