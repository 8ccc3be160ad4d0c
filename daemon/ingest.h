#pragma once
// POST /api/v1/ingest: result batches from `gatewatch agent` instances (docs/regions.md):
// a JSON array of results in the API's result schema. Requires the bearer token
// (403 while server.api_token is not configured). All or nothing: every result is
// checked before any is taken, and a batch that does not fit the writer's queue is
// refused with 503 and Retry-After so the agent sends it again.

#include <functional>
#include <string_view>
#include <vector>

#include "daemon/config_holder.h"
#include "daemon/http_server.h"
#include "probes/probe_result.h"

namespace gatewatch::daemon {

struct IngestDeps {
  const ConfigHolder* config = nullptr;
  std::function<bool(size_t rows)> has_room;
  std::function<bool(probes::ProbeResult)> accept;  // false: refused (queue full)
  size_t max_results = 10'000;                      // per request
};

// The results of one batch, all checked against `config` (types, known monitors, their
// configured regions), or the error response that refuses the whole batch.
Result<std::vector<probes::ProbeResult>, HttpResponse> ParseIngestBatch(std::string_view body, const Config& config,
                                                                       size_t max_results);

void RegisterIngestRoute(HttpServer& server, IngestDeps deps);

}  // namespace gatewatch::daemon
