#include "daemon/result_json.h"

#include <cstdio>
#include <ctime>

namespace gatewatch::daemon {

std::string FormatTime(SystemTime t) {
  using namespace std::chrono;
  const auto secs = time_point_cast<seconds>(t);
  const auto ms = duration_cast<milliseconds>(t - secs).count();
  const std::time_t tt = system_clock::to_time_t(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

nlohmann::json ToJson(const probes::ProbeResult& r) {
  using nlohmann::json;
  json phases = json::object();
  const std::pair<const char*, const std::optional<std::chrono::microseconds>*> all[] = {
      {"resolve", &r.phases.resolve},       {"connect", &r.phases.connect},
      {"tls", &r.phases.tls},               {"processing", &r.phases.processing},
      {"transfer", &r.phases.transfer},     {"total", &r.phases.total}};
  for (const auto& [name, value] : all) {
    if (value->has_value()) phases[name] = static_cast<double>((*value)->count()) / 1e6;
  }
  json headers = json::object();
  for (const auto& [name, value] : r.headers) headers[name] = value;
  json j = {
      {"monitor", r.monitor},
      {"region", r.region},
      {"started_at", FormatTime(r.started_at)},
      {"attempt", r.attempt},
      {"confirmed", r.confirmed},
      {"outcome", std::string(probes::ToString(r.outcome))},
      {"http_status", r.http_status},
      {"phases_seconds", phases},
      {"bytes_read", r.bytes_read},
      {"remote_ip", r.remote_ip},
      {"resolved", r.resolved},
      {"http_version", r.http_version},
      {"headers", headers},
      {"detail", r.detail},
  };
  if (!r.tls.version.empty() || r.tls.earliest_expiry) {
    json tls = {{"version", r.tls.version}, {"subject", r.tls.subject}, {"issuer", r.tls.issuer}};
    if (r.tls.earliest_expiry) {
      tls["earliest_expiry"] = FormatTime(*r.tls.earliest_expiry);
      tls["earliest_expiry_subject"] = r.tls.earliest_expiry_subject;
    }
    j["tls"] = tls;
  }
  if (r.http_status >= 500) {
    j["emitter"] = std::string(probes::ToString(r.emitter));
    j["reason"] = std::string(probes::ToString(r.reason));
    j["body_snippet"] = r.body_snippet;
  }
  return j;
}

}  // namespace gatewatch::daemon
