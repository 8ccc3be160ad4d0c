#include "daemon/config_sections.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "alerting/timezone.h"
#include "probes/probe_result.h"

namespace gatewatch::daemon::internal {
namespace {

// Which alert keys apply to which kinds; checked before reading so that a key meant for
// another kind gets a precise message rather than "unknown key".
struct AlertKey {
  std::string_view key;
  std::vector<alerting::AlertKind> kinds;  // empty = every kind
};
const std::vector<AlertKey>& AlertKeys() {
  using K = alerting::AlertKind;
  static const std::vector<AlertKey> keys = {
      {"codes", {K::kStatusRate}},
      {"count", {K::kStatusRate}},
      {"above", {K::kStatusRate, K::kLatency}},
      {"below", {K::kStatusRate, K::kLatency}},
      {"window", {K::kStatusRate, K::kLatency}},
      {"min_samples", {K::kStatusRate, K::kLatency}},
      {"min_regions", {K::kStatusRate, K::kLatency, K::kDown}},
      {"phase", {K::kLatency}},
      {"percentile", {K::kLatency}},
      {"after", {K::kDown}},
      {"within", {K::kCertExpiry}},
  };
  return keys;
}

std::string KindList(const std::vector<alerting::AlertKind>& kinds) {
  std::string out;
  for (size_t i = 0; i < kinds.size(); ++i) {
    if (i > 0) out += i + 1 == kinds.size() ? " and " : ", ";
    out += alerting::ToString(kinds[i]);
  }
  return out;
}

}  // namespace

void ReadAlert(TableReader& r, alerting::AlertRule& a) {
  using K = alerting::AlertKind;
  if (auto v = ReadName(r)) a.name = *v;
  if (auto v = r.StringArray("monitors")) {
    if (v->empty()) r.Error("monitors", "must list at least one monitor name or glob");
    a.monitor_patterns = std::move(*v);
  } else if (!r.Has("monitors")) {
    r.Missing("monitors", "an array of monitor names or globs such as [\"shop*\"]");
  }
  bool kind_ok = false;
  if (auto v = r.String("kind")) {
    if (auto kind = alerting::AlertKindFromString(*v)) {
      a.kind = *kind;
      kind_ok = true;
    } else {
      std::string msg = "expected one of status_rate, down, latency, cert_expiry, got " + Quote(*v);
      const std::vector<std::string> names(alerting::kAlertKindNames.begin(),
                                           alerting::kAlertKindNames.end());
      if (auto near = Suggest(*v, names)) msg += "; did you mean " + Quote(*near) + "?";
      r.Error("kind", msg);
    }
  } else if (!r.Has("kind")) {
    r.Missing("kind", "one of status_rate, down, latency, cert_expiry");
  }
  if (!kind_ok) {
    // Without a kind no kind-specific key can be checked; mark them known and stop here
    // rather than guess (the kind error says what to fix).
    for (const AlertKey& k : AlertKeys()) r.Get(k.key);
    for (const char* key : {"for", "resolve_for", "repeat", "severity", "notify"}) r.Get(key);
    r.Finish();
    return;
  }
  for (const AlertKey& k : AlertKeys()) {
    if (!r.Has(k.key)) continue;
    const bool applies = std::find(k.kinds.begin(), k.kinds.end(), a.kind) != k.kinds.end();
    if (!applies) {
      r.Get(k.key);  // known, but misplaced
      r.Error(k.key, std::string(k.key) + " applies to kind " + KindList(k.kinds) +
                         " only; this alert is kind " + Quote(alerting::ToString(a.kind)));
    }
  }
  const auto applies = [&](std::string_view key) {
    for (const AlertKey& k : AlertKeys()) {
      if (k.key == key) return std::find(k.kinds.begin(), k.kinds.end(), a.kind) != k.kinds.end();
    }
    return true;
  };

  if (a.kind == K::kStatusRate && applies("codes")) {
    if (const toml::array* codes = r.Array("codes", "an array of status codes such as [502, 504]")) {
      a.codes.clear();
      for (size_t i = 0; i < codes->size(); ++i) {
        const auto* c = codes->get(i)->as_integer();
        if (c == nullptr || c->get() < 100 || c->get() > 599) {
          r.Error(Index("codes", i), "expected a status code from 100 to 599, got " +
                                         Describe(*codes->get(i)));
        } else {
          a.codes.push_back(static_cast<int>(c->get()));
        }
      }
      if (codes->empty()) r.Error("codes", "must list at least one status code");
    }
    if (auto v = r.String("count")) {
      if (*v != "gateway_error") {
        r.Error("count", "the only countable class is \"gateway_error\", got " + Quote(*v));
      } else if (r.Has("codes")) {
        r.Error("count", "codes and count are mutually exclusive: count = \"gateway_error\" "
                         "counts every gateway-class failure, codes lists literal status codes");
      } else {
        a.count_gateway_error = true;
      }
    }
  }
  if (a.kind == K::kStatusRate) {
    if (auto v = r.Number("above", 0.0, 1.0)) {
      a.above = *v;
      a.below = *v / 2;
    } else if (!r.Has("above")) {
      r.Missing("above", "the share of probes that fires the alert, e.g. 0.05 for 5 %");
    }
    if (auto v = r.Number("below", 0.0, 1.0)) a.below = *v;
  }
  if (a.kind == K::kLatency) {
    if (auto v = r.String("phase")) {
      if (std::none_of(probes::kPhases.begin(), probes::kPhases.end(),
                       [&](const probes::PhaseField& f) { return f.name == *v; })) {
        std::string names;
        for (const probes::PhaseField& f : probes::kPhases) {
          names += std::string(names.empty() ? "" : ", ") + std::string(f.name);
        }
        r.Error("phase", "expected one of " + names + ", got " + Quote(*v));
      } else {
        a.phase = *v;
      }
    }
    if (auto v = r.Number("percentile", 1, 100)) a.percentile = *v;
    if (auto v = r.Dur("above", 1ms, 1h)) {
      a.latency_above = *v;
      a.latency_below = *v;
    } else if (!r.Has("above")) {
      r.Missing("above", "a latency threshold such as \"800ms\"");
    }
    if (auto v = r.Dur("below", 1ms, 1h)) a.latency_below = *v;
  }
  if (applies("window")) {
    if (auto v = r.Dur("window", 10s, 24h * 7)) a.window = *v;
  }
  if (applies("min_samples")) {
    if (auto v = r.Int("min_samples", 1, 1'000'000)) a.min_samples = static_cast<int>(*v);
  }
  if (applies("min_regions")) {
    if (auto v = r.Int("min_regions", 1, 1000)) a.min_regions = static_cast<int>(*v);
  }
  if (a.kind == K::kDown) {
    if (auto v = r.Int("after", 1, 1000)) a.after = static_cast<int>(*v);
  }
  if (a.kind == K::kCertExpiry) {
    if (auto v = r.Dur("within", 1h, 24h * 3650)) a.within = *v;
  }
  if (auto v = r.Dur("for", 0s, 24h)) a.pending_for = *v;
  if (auto v = r.Dur("resolve_for", 0s, 24h)) a.resolve_for = *v;
  if (auto v = r.Dur("repeat", 0s, 24h * 30)) a.repeat = *v;
  if (auto v = r.String("severity")) {
    if (!ValidName(*v)) {
      r.Error("severity", "invalid severity " + Quote(*v) + " (e.g. \"critical\", \"warning\", \"info\")");
    } else {
      a.severity = *v;
    }
  }
  if (auto v = r.StringArray("notify")) a.notify = std::move(*v);
  r.Finish();
}

bool ReadNotifier(TableReader& r, alerting::NotifierConfig& n) {
  bool ok = true;
  if (auto v = ReadName(r)) n.name = *v;
  if (auto v = r.String("type")) {
    if (auto type = alerting::NotifierTypeFromString(*v)) {
      n.type = *type;
    } else {
      std::string msg =
          "expected one of slack, discord, msteams, mattermost, googlechat, webhook, "
          "alertmanager, console, got " + Quote(*v);
      const std::vector<std::string> names(alerting::kNotifierTypeNames.begin(),
                                           alerting::kNotifierTypeNames.end());
      if (auto near = Suggest(*v, names)) msg += "; did you mean " + Quote(*near) + "?";
      r.Error("type", msg);
      ok = false;
    }
  } else {
    if (!r.Has("type")) {
      r.Missing("type", "one of slack, discord, msteams, mattermost, googlechat, webhook, "
                        "alertmanager, console");
    }
    ok = false;
  }
  // Webhook URLs are secrets (Slack's carries its token): never echo the value.
  if (auto v = r.String("url", /*secret=*/true)) {
    if (!v->empty() && !ParseHttpUrl(*v)) {
      r.Error("url", "expected an http:// or https:// URL (the value is not shown: it may hold "
                     "a secret)");
      ok = false;
    } else {
      n.url = *v;
    }
  } else if (r.Has("url")) {
    ok = false;  // wrong type or unset environment variable, already reported
  }
  if (auto v = r.String("secret", /*secret=*/true)) {
    if (v->empty()) {
      r.Error("secret", "must not be empty");
    } else {
      n.secret = *v;
    }
  }
  if (auto v = r.Dur("min_interval", 0s, 1h)) n.min_interval = *v;
  if (auto v = r.Dur("max_age", 1min, 24h * 7)) n.max_age = *v;
  if (auto v = r.Dur("timeout", 100ms, 5min)) n.timeout = *v;
  if (auto v = r.Dur("repost", 1s, 1h)) n.repost = *v;
  r.Finish();
  return ok;
}

namespace {

std::optional<std::chrono::sys_seconds> ReadInstant(TableReader& r, std::string_view key) {
  const toml::node* n = r.Get(key);
  if (n == nullptr) return std::nullopt;
  const auto* dt = n->as_date_time();
  if (dt == nullptr) {
    r.WrongType(key, *n, "a TOML date-time with offset such as 2026-11-28T02:00:00Z (no quotes)");
    return std::nullopt;
  }
  const toml::date_time& v = dt->get();
  if (!v.offset) {
    r.Error(key, "date-time has no offset, so its instant is ambiguous: add Z or +01:00");
    return std::nullopt;
  }
  using namespace std::chrono;
  const year_month_day ymd{year{v.date.year}, month{v.date.month}, day{v.date.day}};
  return sys_days{ymd} + hours{v.time.hour} + minutes{v.time.minute} + seconds{v.time.second} -
         minutes{v.offset->minutes};
}

std::optional<std::chrono::seconds> ReadTimeOfDay(TableReader& r, std::string_view key) {
  const toml::node* n = r.Get(key);
  if (n == nullptr) return std::nullopt;
  const auto* t = n->as_time();
  if (t == nullptr) {
    r.WrongType(key, *n, "a TOML local time such as 02:00:00 (no quotes)");
    return std::nullopt;
  }
  const toml::time& v = t->get();
  return std::chrono::seconds(v.hour * 3600 + v.minute * 60 + v.second);
}

}  // namespace

void ReadSilence(TableReader& r, Ctx& ctx, size_t index, alerting::SilenceConfig& s) {
  s.name = "silences[" + std::to_string(index) + "]";
  if (r.Has("name")) {
    if (auto v = ReadName(r)) s.name = *v;
  } else {
    r.Get("name");
  }
  if (auto v = r.String("comment")) s.comment = *v;
  if (auto v = r.StringArray("monitors")) {
    if (v->empty()) r.Error("monitors", "must list at least one monitor name or glob");
    s.monitor_patterns = std::move(*v);
  } else if (!r.Has("monitors")) {
    r.Missing("monitors", "an array of monitor names or globs");
  }
  s.start = ReadInstant(r, "start");
  s.end = ReadInstant(r, "end");
  if (auto days = r.StringArray("days")) {
    if (days->empty()) r.Error("days", "must list at least one day (mon .. sun)");
    const std::vector<std::string> names(alerting::kWeekdayNames.begin(),
                                         alerting::kWeekdayNames.end());
    for (size_t i = 0; i < days->size(); ++i) {
      const std::string day = Lower((*days)[i]);
      auto it = std::find(names.begin(), names.end(), day);
      if (it == names.end()) {
        std::string msg = "expected a day mon, tue, wed, thu, fri, sat or sun, got " + Quote((*days)[i]);
        auto prefix = std::find(names.begin(), names.end(), day.substr(0, 3));
        if (prefix != names.end()) msg += "; did you mean " + Quote(*prefix) + "?";
        r.Error(Index("days", i), msg);
      } else {
        s.days = static_cast<uint8_t>(s.days | (1u << (it - names.begin())));
      }
    }
  }
  if (auto v = ReadTimeOfDay(r, "from")) s.from = *v;
  if (auto v = ReadTimeOfDay(r, "to")) s.to = *v;
  if (auto v = r.String("timezone")) {
    if (!alerting::IsKnownTimeZone(*v)) {
      r.Error("timezone", "unknown time zone " + Quote(*v) + "; expected an IANA name such as "
                          "\"Europe/Berlin\" or \"UTC\"");
    } else {
      s.timezone = *v;
    }
  }
  r.Finish();
  ctx.AddFieldErrors(r.path(), s.Validate());
}

}  // namespace gatewatch::daemon::internal
