#include "storage/result_row.h"

#include <nlohmann/json.hpp>

#include "storage/sqlite_util.h"

namespace gatewatch::storage::internal {

namespace {

using std::chrono::microseconds;

std::optional<microseconds> ColOptionalUs(sqlite3_stmt* s, int i) {
  if (sqlite3_column_type(s, i) == SQLITE_NULL) return std::nullopt;
  return microseconds(ColInt(s, i));
}

}  // namespace

Result<probes::ProbeResult> ReadResult(sqlite3_stmt* s) {
  probes::ProbeResult r;
  const int64_t id = ColInt(s, 27);
  auto bad = [&](const std::string& what) {
    return Error("storage: results row " + std::to_string(id) + ": " + what);
  };
  r.monitor = ColText(s, 0);
  r.region = ColText(s, 1);
  r.started_at = FromUnixMs(ColInt(s, 2));
  r.attempt = static_cast<int>(ColInt(s, 3));
  r.confirmed = ColInt(s, 4) != 0;
  const std::string outcome = ColText(s, 5);
  auto o = probes::OutcomeFromString(outcome);
  if (!o) return bad("unknown outcome '" + outcome + "'");
  r.outcome = *o;
  r.http_status = static_cast<int>(ColInt(s, 6));
  r.phases.resolve = ColOptionalUs(s, 7);
  r.phases.connect = ColOptionalUs(s, 8);
  r.phases.tls = ColOptionalUs(s, 9);
  r.phases.processing = ColOptionalUs(s, 10);
  r.phases.transfer = ColOptionalUs(s, 11);
  r.phases.total = ColOptionalUs(s, 12);
  r.bytes_read = ColInt(s, 13);
  r.remote_ip = ColText(s, 14);
  const auto resolved = nlohmann::json::parse(ColText(s, 15), nullptr, false);
  if (resolved.is_discarded() || !resolved.is_array()) return bad("resolved is not a JSON array");
  for (const auto& a : resolved) {
    if (a.is_string()) r.resolved.push_back(a.get<std::string>());
  }
  r.http_version = ColText(s, 16);
  r.tls.version = ColText(s, 17);
  r.tls.subject = ColText(s, 18);
  r.tls.issuer = ColText(s, 19);
  if (sqlite3_column_type(s, 20) != SQLITE_NULL) r.tls.earliest_expiry = FromUnixMs(ColInt(s, 20));
  r.tls.earliest_expiry_subject = ColText(s, 21);
  const std::string emitter = ColText(s, 22);
  auto e = probes::EmitterFromString(emitter);
  if (!e) return bad("unknown emitter '" + emitter + "'");
  r.emitter = *e;
  const std::string reason = ColText(s, 23);
  auto rs = probes::ReasonFromString(reason);
  if (!rs) return bad("unknown reason '" + reason + "'");
  r.reason = *rs;
  const auto headers = nlohmann::ordered_json::parse(ColText(s, 24), nullptr, false);
  if (headers.is_discarded() || !headers.is_object()) return bad("headers is not a JSON object");
  for (const auto& [name, value] : headers.items()) {
    if (value.is_string()) r.headers.emplace_back(name, value.get<std::string>());
  }
  r.body_snippet = ColBlob(s, 25);
  r.detail = ColText(s, 26);
  return r;
}

int BindOptionalUs(sqlite3_stmt* s, int i, const std::optional<microseconds>& v) {
  return v ? BindInt(s, i, v->count()) : sqlite3_bind_null(s, i);
}

std::string HeadersJson(const std::vector<std::pair<std::string, std::string>>& headers) {
  nlohmann::ordered_json obj = nlohmann::ordered_json::object();
  for (const auto& [name, value] : headers) {
    auto it = obj.find(name);
    if (it == obj.end()) {
      obj[name] = value;
    } else {
      *it = it->get<std::string>() + ", " + value;
    }
  }
  // replace: header bytes that are not UTF-8 must not throw (no exception leaves storage).
  return obj.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string ResolvedJson(const std::vector<std::string>& resolved) {
  nlohmann::json arr = resolved;
  return arr.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace gatewatch::storage::internal
