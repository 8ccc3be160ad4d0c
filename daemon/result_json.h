#pragma once
// The JSON form of a probe result: used by `check --json` and (later) the API and the
// agent ingest. Field names are a contract.

#include <nlohmann/json.hpp>

#include "probes/probe_result.h"

namespace gatewatch::daemon {

// RFC 3339 UTC with milliseconds: "2026-11-23T05:25:10.123Z".
std::string FormatTime(SystemTime t);

nlohmann::json ToJson(const probes::ProbeResult& r);

}  // namespace gatewatch::daemon
