#pragma once
// The JSON form of a probe result: used by `check --json` and (later) the API and the
// agent ingest. Field names are a contract.

#include <nlohmann/json.hpp>

#include "probes/probe_result.h"
#include "probes/result.h"

namespace gatewatch::daemon {

using ::gatewatch::FormatTime;  // RFC 3339, probes/clock.h

// Parses RFC 3339 ("2026-11-23T05:25:10.123Z", "...+01:00") or unix seconds ("1763875510").
Result<SystemTime> ParseTime(std::string_view text);

// Keys in the order written (docs/http-api.md), not alphabetical.
nlohmann::ordered_json ToJson(const probes::ProbeResult& r);

// The inverse of ToJson for results pushed by agents: every field is checked; the error
// names the field and what was expected.
Result<probes::ProbeResult> FromJson(const nlohmann::json& j);

}  // namespace gatewatch::daemon
