#include "daemon/result_json.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "probes/text.h"

namespace gatewatch::daemon {

namespace {
constexpr int64_t kMaxUnixSeconds = 7'258'118'400;  // 2200-01-01T00:00:00Z
}  // namespace

Result<SystemTime> ParseTime(std::string_view text) {
  using namespace std::chrono;
  const std::string t(text);
  if (!t.empty() && std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    // Up to 2200: the nanosecond clock ends in 2262, and no result comes from further on.
    if (t.size() > 10 || std::stoll(t) >= kMaxUnixSeconds) return Error("unix time " + Quoted(t) + " is out of range");
    return SystemTime(seconds(std::stoll(t)));
  }
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, consumed = 0;
  if (std::sscanf(t.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &consumed) != 6 ||
      consumed != 19) {
    return Error("expected an RFC 3339 time such as 2026-11-23T05:25:10Z or unix seconds, got " + Quoted(t));
  }
  const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok() || h > 23 || mi > 59 || s > 60) return Error("invalid date or time in " + Quoted(t));
  if (y < 1970 || y >= 2200) return Error("time " + Quoted(t) + " is out of range (years 1970 to 2199)");
  SystemTime out = sys_days{ymd} + hours{h} + minutes{mi} + seconds{s};
  std::string_view rest = std::string_view(t).substr(19);
  if (!rest.empty() && rest.front() == '.') {
    size_t digits = 1;
    int64_t frac = 0;
    int64_t scale = 1'000'000'000;
    while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') {
      if (scale > 1) {
        scale /= 10;
        frac += (rest[digits] - '0') * scale;
      }
      ++digits;
    }
    if (digits == 1) return Error("a fraction needs digits in " + Quoted(t));
    out += duration_cast<SystemTime::duration>(nanoseconds(frac));
    rest.remove_prefix(digits);
  }
  if (rest == "Z" || rest == "z") return out;
  int oh = 0, om = 0;
  if (rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') &&
      std::sscanf(std::string(rest.substr(1)).c_str(), "%2d:%2d", &oh, &om) == 2) {
    const auto offset = hours{oh} + minutes{om};
    return rest[0] == '+' ? out - offset : out + offset;
  }
  return Error("expected Z or an offset like +01:00 at the end of " + Quoted(t));
}

nlohmann::ordered_json ToJson(const probes::ProbeResult& r) {
  using json = nlohmann::ordered_json;
  json phases = json::object();
  for (const probes::PhaseField& f : probes::kPhases) {
    if (const auto& value = r.phases.*f.member) {
      phases[std::string(f.name)] = static_cast<double>(value->count()) / 1e6;
    }
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

namespace {

// Reads field `key` of `j` into `out` when present; `required` makes absence an error.
template <typename T>
Result<void> Field(const nlohmann::json& j, const char* key, T& out, bool required = false) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) return Error(std::string(key) + ": required");
    return {};
  }
  try {
    out = it->get<T>();
  } catch (const nlohmann::json::exception&) {
    return Error(std::string(key) + ": wrong type (" + it->type_name() + ")");
  }
  return {};
}

// An integer field: a JSON integer (1.5, 1e300, true and "1" are not) from `min` to `max`.
template <typename T>
Result<void> IntField(const nlohmann::json& j, const char* key, T& out, int64_t min, int64_t max) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  const bool in_range = it->is_number_integer() &&
                        (it->is_number_unsigned() ? it->get<uint64_t>() <= static_cast<uint64_t>(max)
                                                  : it->get<int64_t>() >= min && it->get<int64_t>() <= max);
  if (!in_range) {
    return Error(std::string(key) + ": expected an integer from " + std::to_string(min) + " to " +
                 std::to_string(max) + ", got " + it->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
  out = static_cast<T>(it->get<int64_t>());
  return {};
}

Result<void> BoolField(const nlohmann::json& j, const char* key, bool& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  if (!it->is_boolean()) return Error(std::string(key) + ": expected true or false (" + it->type_name() + ")");
  out = it->get<bool>();
  return {};
}

}  // namespace

Result<probes::ProbeResult> FromJson(const nlohmann::json& j) {
  if (!j.is_object()) return Error("expected a result object");
  probes::ProbeResult r;
  std::string started_at, outcome, emitter = "none", reason = "unknown";
  for (auto check : {Field(j, "monitor", r.monitor, true), Field(j, "region", r.region, true),
                     Field(j, "started_at", started_at, true), Field(j, "outcome", outcome, true),
                     IntField(j, "attempt", r.attempt, 0, 100), BoolField(j, "confirmed", r.confirmed),
                     IntField(j, "http_status", r.http_status, 0, 999),
                     IntField(j, "bytes_read", r.bytes_read, 0, int64_t{1} << 40),
                     Field(j, "remote_ip", r.remote_ip), Field(j, "resolved", r.resolved),
                     Field(j, "http_version", r.http_version), Field(j, "detail", r.detail),
                     Field(j, "emitter", emitter), Field(j, "reason", reason),
                     Field(j, "body_snippet", r.body_snippet)}) {
    if (!check) return Unexpected(std::move(check).error());
  }
  if (r.monitor.empty() || r.region.empty()) return Error("monitor and region must not be empty");
  auto t = ParseTime(started_at);
  if (!t) return Error("started_at: " + t.error());
  r.started_at = *t;
  auto o = probes::OutcomeFromString(outcome);
  if (!o) return Error("outcome: unknown class " + Quoted(outcome));
  r.outcome = *o;
  auto e = probes::EmitterFromString(emitter);
  if (!e) return Error("emitter: unknown " + Quoted(emitter));
  r.emitter = *e;
  auto rs = probes::ReasonFromString(reason);
  if (!rs) return Error("reason: unknown " + Quoted(reason));
  r.reason = *rs;
  if (auto it = j.find("phases_seconds"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return Error("phases_seconds: expected an object");
    for (const auto& item : it->items()) {
      const std::string& name = item.key();
      const nlohmann::json& value = item.value();
      const auto known = std::find_if(probes::kPhases.begin(), probes::kPhases.end(),
                                      [&](const probes::PhaseField& f) { return f.name == name; });
      if (known == probes::kPhases.end()) return Error("phases_seconds." + name + ": unknown phase");
      if (!value.is_number() || value.get<double>() < 0 || value.get<double>() > 86400) {
        return Error("phases_seconds." + name + ": expected seconds from 0 to 86400");
      }
      r.phases.*known->member = std::chrono::microseconds(static_cast<int64_t>(std::llround(value.get<double>() * 1e6)));
    }
  }
  if (auto it = j.find("headers"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return Error("headers: expected an object");
    for (const auto& [name, value] : it->items()) {
      if (!value.is_string()) return Error("headers." + name + ": expected a string");
      r.headers.emplace_back(name, value.get<std::string>());
    }
  }
  if (auto it = j.find("tls"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return Error("tls: expected an object");
    std::string expiry;
    for (auto check : {Field(*it, "version", r.tls.version), Field(*it, "subject", r.tls.subject),
                       Field(*it, "issuer", r.tls.issuer), Field(*it, "earliest_expiry", expiry),
                       Field(*it, "earliest_expiry_subject", r.tls.earliest_expiry_subject)}) {
      if (!check) return Error("tls." + check.error());
    }
    if (!expiry.empty()) {
      auto when = ParseTime(expiry);
      if (!when) return Error("tls.earliest_expiry: " + when.error());
      r.tls.earliest_expiry = *when;
    }
  }
  return r;
}

}  // namespace gatewatch::daemon
