#include "alerting/message_json.h"

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>

namespace gatewatch::alerting {

namespace {

using Json = nlohmann::ordered_json;  // insertion order: stored rows read well in sqlite3

int64_t ToUnixMs(SystemTime t) {
  return std::chrono::floor<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::optional<Message::Kind> KindFromString(std::string_view s) {
  for (auto k : {Message::Kind::kFiring, Message::Kind::kResolved, Message::Kind::kReminder,
                 Message::Kind::kTest}) {
    if (ToString(k) == s) return k;
  }
  return std::nullopt;
}

Json RatioToJson(double r) {
  if (std::isnan(r)) return "NaN";
  if (std::isinf(r)) return r > 0 ? "Infinity" : "-Infinity";
  return r;
}

Unexpected<std::string> Bad(std::string_view what) {
  return Error("message json: " + std::string(what));
}

// Field readers: each fails with the field's name and what was expected.
class Reader {
 public:
  explicit Reader(const Json& j) : j_(j) {}

  Result<const Json*> Field(const char* name) const {
    auto it = j_.find(name);
    if (it == j_.end()) return Bad(std::string("missing field \"") + name + "\"");
    return &*it;
  }
  Result<std::string> String(const char* name) const {
    auto f = Field(name);
    if (!f) return Error(f.error());
    if (!(*f)->is_string()) return Bad(std::string("\"") + name + "\" must be a string");
    return (*f)->get<std::string>();
  }
  Result<int64_t> Int(const char* name) const {
    auto f = Field(name);
    if (!f) return Error(f.error());
    return IntValue(**f, name);
  }
  Result<SystemTime> Time(const char* name) const {
    auto ms = Int(name);
    if (!ms) return Error(ms.error());
    return TimeValue(*ms, name);
  }
  Result<double> Ratio(const char* name) const {
    auto f = Field(name);
    if (!f) return Error(f.error());
    const Json& v = **f;
    if (v.is_number()) return v.get<double>();
    if (v.is_string()) {
      const auto& s = v.get_ref<const std::string&>();
      if (s == "NaN") return std::numeric_limits<double>::quiet_NaN();
      if (s == "Infinity") return std::numeric_limits<double>::infinity();
      if (s == "-Infinity") return -std::numeric_limits<double>::infinity();
    }
    return Bad(std::string("\"") + name + "\" must be a number (or \"NaN\", \"Infinity\")");
  }
  Result<std::vector<std::string>> Strings(const char* name) const {
    auto f = Field(name);
    if (!f) return Error(f.error());
    const std::string want = std::string("\"") + name + "\" must be an array of strings";
    if (!(*f)->is_array()) return Bad(want);
    std::vector<std::string> out;
    for (const Json& e : **f) {
      if (!e.is_string()) return Bad(want);
      out.push_back(e.get<std::string>());
    }
    return out;
  }
  Result<std::map<std::string, int64_t>> Counts(const char* name) const {
    auto f = Field(name);
    if (!f) return Error(f.error());
    if (!(*f)->is_object()) {
      return Bad(std::string("\"") + name + "\" must be an object of integers");
    }
    std::map<std::string, int64_t> out;
    for (const auto& [key, value] : (*f)->items()) {
      auto n = IntValue(value, std::string(name) + "." + key);
      if (!n) return Error(n.error());
      out.emplace(key, *n);
    }
    return out;
  }

  static Result<int64_t> IntValue(const Json& v, const std::string& name) {
    if (!v.is_number_integer() ||
        (v.is_number_unsigned() &&
         v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))) {
      return Bad("\"" + name + "\" must be an integer (64-bit)");
    }
    return v.get<int64_t>();
  }

  static Result<SystemTime> TimeValue(int64_t ms, const char* name) {
    using std::chrono::milliseconds;
    // SystemTime counts nanoseconds: about +-292 years around 1970 fit.
    constexpr int64_t kMax =
        std::chrono::duration_cast<milliseconds>(SystemTime::duration::max()).count();
    if (ms > kMax || ms < -kMax) {
      return Bad(std::string("\"") + name + "\" is out of range (unix milliseconds)");
    }
    return SystemTime(std::chrono::duration_cast<SystemTime::duration>(milliseconds(ms)));
  }

 private:
  const Json& j_;
};

// Assigns *out from r or returns r's error from the enclosing function.
#define GW_READ(out, expr)                           \
  do {                                               \
    auto gw_read_r = (expr);                         \
    if (!gw_read_r) return Error(gw_read_r.error()); \
    (out) = std::move(*gw_read_r);                   \
  } while (false)

}  // namespace

std::string MessageToJson(const Message& m) {
  Json emitters = Json::object();
  for (const auto& [k, n] : m.emitters) emitters[k] = n;
  Json j = {{"v", kMessageJsonVersion},
            {"kind", std::string(ToString(m.kind))},
            {"alert", m.alert},
            {"monitor", m.monitor},
            {"severity", m.severity},
            {"summary", m.summary},
            {"description", m.description},
            {"verdict", m.verdict},
            {"ratio", RatioToJson(m.ratio)},
            {"samples", m.samples},
            {"regions", m.regions},
            {"emitters", std::move(emitters)},
            {"at_ms", ToUnixMs(m.at)},
            {"started_ms", ToUnixMs(m.started)}};
  if (m.ended) j["ended_ms"] = ToUnixMs(*m.ended);
  if (!m.value.empty()) j["value"] = m.value;
  j["fingerprint"] = m.fingerprint;
  // replace: invalid UTF-8 becomes U+FFFD instead of an exception.
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Result<Message> MessageFromJson(std::string_view text) {
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::parse_error& e) {
    return Bad(std::string("invalid JSON: ") + e.what());
  }
  if (!j.is_object()) return Bad("not a JSON object");
  const Reader r(j);
  int64_t version = 0;
  GW_READ(version, r.Int("v"));
  if (version != kMessageJsonVersion) {
    return Bad("unsupported version " + std::to_string(version) + " (this gatewatch reads " +
               std::to_string(kMessageJsonVersion) + ")");
  }
  Message m;
  std::string kind;
  GW_READ(kind, r.String("kind"));
  const auto k = KindFromString(kind);
  if (!k) return Bad("unknown kind \"" + kind + "\" (firing, resolved, reminder or test)");
  m.kind = *k;
  GW_READ(m.alert, r.String("alert"));
  GW_READ(m.monitor, r.String("monitor"));
  GW_READ(m.severity, r.String("severity"));
  GW_READ(m.summary, r.String("summary"));
  GW_READ(m.description, r.Strings("description"));
  GW_READ(m.verdict, r.String("verdict"));
  GW_READ(m.ratio, r.Ratio("ratio"));
  GW_READ(m.samples, r.Int("samples"));
  GW_READ(m.regions, r.Strings("regions"));
  GW_READ(m.emitters, r.Counts("emitters"));
  GW_READ(m.at, r.Time("at_ms"));
  GW_READ(m.started, r.Time("started_ms"));
  if (j.contains("ended_ms")) {
    SystemTime ended{};
    GW_READ(ended, r.Time("ended_ms"));
    m.ended = ended;
  }
  if (j.contains("value")) GW_READ(m.value, r.String("value"));
  GW_READ(m.fingerprint, r.String("fingerprint"));
  return m;
}

#undef GW_READ

}  // namespace gatewatch::alerting
