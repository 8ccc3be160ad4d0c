#pragma once
// POST /api/v1/ingest: result batches from `gatewatch agent` instances (SPEC section 9):
// a JSON array of results in the API's result schema. Requires the bearer token
// (403 while server.api_token is not configured). All or nothing: every result is
// checked before any is taken, and a batch that does not fit the writer's queue is
// refused with 503 and Retry-After so the agent sends it again.

#include <functional>

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

void RegisterIngestRoute(HttpServer& server, IngestDeps deps);

}  // namespace gatewatch::daemon
