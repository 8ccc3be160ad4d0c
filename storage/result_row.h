#pragma once
// Internal to storage/: included only by storage/*.cc. A probes::ProbeResult as a row of the
// results table (storage/schema.cc): the columns a query selects and their decoding, and the
// encodings of the columns SqliteStore::Insert() binds that are not plain values.

#include <sqlite3.h>

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "probes/probe_result.h"
#include "probes/result.h"

namespace gatewatch::storage::internal {

// The columns ReadResult() decodes, in its order.
inline constexpr const char* kResultColumns =
    "monitor, region, started_at, attempt, confirmed, outcome, http_status, resolve_us, "
    "connect_us, tls_us, processing_us, transfer_us, total_us, bytes_read, remote_ip, "
    "resolved, http_version, tls_version, tls_subject, tls_issuer, tls_earliest_expiry, "
    "tls_earliest_expiry_subject, emitter, reason, headers, body_snippet, detail, id";

// Decodes the columns of kResultColumns; an unknown stored name is an error (corruption or
// a newer writer, which the schema version check should have refused).
Result<probes::ProbeResult> ReadResult(sqlite3_stmt* s);

// A phase duration, NULL for a phase not reached (never a fake zero).
int BindOptionalUs(sqlite3_stmt* s, int i, const std::optional<std::chrono::microseconds>& v);

// The headers column: a JSON object, names in arrival order, a repeated header's values
// joined with ", ".
std::string HeadersJson(const std::vector<std::pair<std::string, std::string>>& headers);

// The resolved column: a JSON array of strings.
std::string ResolvedJson(const std::vector<std::string>& resolved);

}  // namespace gatewatch::storage::internal
