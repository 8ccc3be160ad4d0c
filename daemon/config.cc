#include "daemon/config.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "alerting/glob.h"
#include "alerting/timezone.h"
#include "daemon/toml_reader.h"
#include "gatewatch_version.h"
#include "probes/text.h"

namespace gatewatch::daemon {

using namespace internal;

namespace {

bool ValidName(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  if (!std::isalnum(static_cast<unsigned char>(name.front()))) return false;
  return std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_' || c == '.';
  });
}
constexpr std::string_view kNameRule =
    "1 to 128 letters, digits, '-', '_' or '.', starting with a letter or digit";

// Reads and checks a "name" key (required).
std::optional<std::string> ReadName(TableReader& r) {
  auto name = r.String("name");
  if (!name) {
    if (!r.Has("name")) r.Missing("name", "a name (" + std::string(kNameRule) + ")");
    return std::nullopt;
  }
  if (!ValidName(*name)) {
    r.Error("name", "invalid name " + Quote(*name) + ": use " + std::string(kNameRule));
    return std::nullopt;
  }
  return name;
}

bool ValidHeaderName(std::string_view name) {
  static constexpr std::string_view kTokenChars = "!#$%&'*+-.^_`|~";
  return !name.empty() && std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::isalnum(c) || kTokenChars.find(static_cast<char>(c)) != std::string_view::npos;
  });
}
bool HasControlChars(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; });
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// `headers = { "X-Probe" = "1" }`: header name -> value, in file order.
std::optional<probes::HeaderList> ReadHeaderTable(TableReader& r, std::string_view key,
                                                  Ctx& ctx, bool lower_names) {
  const toml::table* t = r.Table(key);
  if (t == nullptr) return std::nullopt;
  const std::string path = r.Path(key);
  TableReader sub(ctx, *t, path);
  std::vector<std::pair<Pos, probes::HeaderList::value_type>> entries;
  for (const auto& [name, node] : *t) {
    const std::string name_path = Join(path, name.str());
    sub.Get(name.str());
    auto value = sub.StringValue(node, name_path);
    if (!ValidHeaderName(name.str())) {
      ctx.AddAt(name_path, "invalid header name " + Quote(name.str()) +
                               " (letters, digits and !#$%&'*+-.^_`|~ only)");
      continue;
    }
    if (value && HasControlChars(*value)) {
      ctx.AddAt(name_path, "header value contains a control character (CR/LF are not allowed)");
      continue;
    }
    if (value) {
      std::string header(name.str());
      entries.push_back({PosOf(node), {lower_names ? Lower(header) : header, *value}});
    }
  }
  // toml::table iterates in key order; keep the file's order instead.
  std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return std::tie(a.first.line, a.first.column) < std::tie(b.first.line, b.first.column);
  });
  probes::HeaderList out;
  for (auto& e : entries) out.push_back(std::move(e.second));
  return out;
}

constexpr std::array<std::string_view, 7> kMethods = {"GET",   "HEAD",   "POST",   "PUT",
                                                      "PATCH", "DELETE", "OPTIONS"};

std::optional<std::vector<probes::StatusMatcher>> ReadExpectStatus(TableReader& r, Ctx& ctx) {
  const toml::array* a = r.Array("expect_status", "an array such as [\"2xx\", 301]");
  if (a == nullptr) return std::nullopt;
  const std::string path = r.Path("expect_status");
  std::vector<probes::StatusMatcher> out;
  bool ok = true;
  for (size_t i = 0; i < a->size(); ++i) {
    const toml::node& n = *a->get(i);
    const std::string item = Index(path, i);
    if (const auto* code = n.as_integer()) {
      if (code->get() < 100 || code->get() > 599) {
        ctx.AddAt(item, "status code must be from 100 to 599, got " + std::to_string(code->get()));
        ok = false;
      } else {
        out.push_back({static_cast<int>(code->get()), 0});
      }
    } else if (const auto* s = n.as_string()) {
      const std::string& v = s->get();
      if (v.size() == 3 && v[0] >= '1' && v[0] <= '5' && (v.substr(1) == "xx" || v.substr(1) == "XX")) {
        out.push_back({0, v[0] - '0'});
      } else {
        ctx.AddAt(item, "expected a status code such as 200 or a class such as \"2xx\", got " +
                            Quote(v));
        ok = false;
      }
    } else {
      ctx.AddAt(item, "expected a status code such as 200 or a class such as \"2xx\", got " +
                          Describe(n));
      ok = false;
    }
  }
  if (ok && out.empty()) {
    ctx.AddAt(path, "must list at least one status code or class");
    ok = false;
  }
  if (!ok) return std::nullopt;
  return out;
}

// Keys shared by [defaults] and [[monitors]]; `s` holds the inherited values.
void ReadProbeSettings(TableReader& r, Ctx& ctx, probes::ProbeSettings& s) {
  if (auto v = r.Dur("interval", 1s, 24h)) s.interval = *v;
  if (auto v = r.Dur("timeout", 10ms, 1h)) s.timeout = *v;
  if (auto v = r.Dur("connect_timeout", 10ms, 1h)) s.connect_timeout = *v;
  if (auto v = r.Dur("resolve_timeout", 10ms, 1h)) s.resolve_timeout = *v;
  if (auto v = r.Dur("tls_timeout", 10ms, 1h)) s.tls_timeout = *v;
  if (auto v = r.Int("retries", 0, probes::kMaxRetries)) s.retries = static_cast<int>(*v);
  if (auto v = r.Dur("retry_delay", 0s, 1h)) s.retry_delay = *v;
  if (auto v = r.Size("max_body", 0, probes::kMaxBodyLimit)) s.max_body = *v;
  if (auto v = r.Bool("follow_redirects")) s.follow_redirects = *v;
  if (auto v = r.Bool("tls_skip_verify")) s.tls_skip_verify = *v;
  if (auto v = r.String("user_agent")) {
    if (v->empty() || HasControlChars(*v)) {
      r.Error("user_agent", "must be a non-empty string without control characters");
    } else {
      s.user_agent = *v;
    }
  }
  if (auto v = r.String("method")) {
    std::string upper = *v;
    std::transform(upper.begin(), upper.end(), upper.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    if (std::find(kMethods.begin(), kMethods.end(), upper) == kMethods.end()) {
      r.Error("method", "expected one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, got " + Quote(*v));
    } else {
      s.method = upper;
    }
  }
  if (auto v = r.String("body")) s.body = *v;
  if (auto v = ReadExpectStatus(r, ctx)) s.expect_status = std::move(*v);
  if (auto v = ReadHeaderTable(r, "headers", ctx, false)) s.headers = std::move(*v);
}

void ReadServer(TableReader& r, ServerConfig& s) {
  if (auto v = r.String("listen")) {
    auto hp = ParseHostPort(*v);
    if (!hp) {
      r.Error("listen", hp.error());
    } else {
      s.listen = *v;
      s.listen_addr = *hp;
    }
  }
  if (auto v = r.String("api_token", /*secret=*/true)) {
    if (v->size() < 16) {
      r.Error("api_token", "must be at least 16 characters (a bearer token guards write and "
                           "ingest endpoints; generate one with `openssl rand -hex 32`)");
    } else {
      s.api_token = *v;
    }
  }
  if (auto v = r.String("region")) {
    if (!ValidName(*v)) {
      r.Error("region", "invalid region name " + Quote(*v) + ": use " + std::string(kNameRule));
    } else {
      s.region = *v;
    }
  }
  if (auto v = r.String("tls_cert")) s.tls_cert = *v;
  if (auto v = r.String("tls_key")) s.tls_key = *v;
  if (s.tls_cert.empty() != s.tls_key.empty()) {
    const char* missing = s.tls_cert.empty() ? "tls_cert" : "tls_key";
    r.Error(s.tls_cert.empty() ? "tls_key" : "tls_cert",
            std::string("tls_cert and tls_key go together: ") + missing + " is missing");
  }
  if (auto v = r.String("shard")) {
    int i = 0, n = 0;
    char slash = 0;
    std::istringstream in(*v);
    std::string rest;
    if (!(in >> i >> slash >> n) || slash != '/' || (in >> rest) || i < 1 || n < 1 || i > n ||
        n > 1024) {
      r.Error("shard", "expected \"i/N\" with 1 <= i <= N <= 1024 (e.g. \"1/3\"), got " + Quote(*v));
    } else {
      s.shard_index = i;
      s.shard_count = n;
    }
  }
  if (auto v = r.Dur("shutdown_grace", 0s, 5min)) s.shutdown_grace = *v;
  if (auto v = r.Int("max_connections", 16, 1'000'000)) s.max_connections = *v;
  if (auto v = r.Int("max_connections_per_peer", 1, 1'000'000)) s.max_connections_per_peer = *v;
  if (auto v = r.Dur("request_timeout", 1s, 5min)) s.request_timeout = *v;
  r.Finish();
}

void ReadStorage(TableReader& r, Ctx& ctx, storage::StorageConfig& s) {
  if (auto v = r.String("path")) {
    if (v->empty()) {
      r.Error("path", "must not be empty");
    } else {
      s.path = *v;
    }
  }
  constexpr Duration kTenYears = 24h * 3650;
  if (auto v = r.Dur("raw_retention", 1min, kTenYears)) s.raw_retention = *v;
  if (auto v = r.Dur("failure_retention", 1min, kTenYears)) s.failure_retention = *v;
  if (auto v = r.Dur("minute_rollup_retention", 1h, kTenYears)) s.minute_rollup_retention = *v;
  if (auto v = r.Dur("hour_rollup_retention", 24h, kTenYears)) s.hour_rollup_retention = *v;
  r.Finish();
  ctx.AddFieldErrors(r.path(), s.Validate());
}

void ReadRegion(TableReader& r, probes::RegionConfig& region) {
  if (auto v = r.String("proxy", /*secret=*/true)) {
    // Proxy URLs may carry credentials: check the form without echoing the value.
    const size_t sep = v->find("://");
    const std::string scheme = sep == std::string::npos ? "" : Lower(v->substr(0, sep));
    const std::string rest = sep == std::string::npos ? *v : v->substr(sep + 3);
    const std::string hostport = rest.substr(rest.find('@') == std::string::npos ? 0 : rest.find('@') + 1);
    const std::string authority = hostport.substr(0, hostport.find('/'));
    const auto proxy_addr = ParseHostPort(authority);
    if ((scheme != "http" && scheme != "https") || !proxy_addr || proxy_addr->port == 0) {
      r.Error("proxy", "expected an HTTP CONNECT proxy URL such as \"http://127.0.0.1:3128\" "
                       "(scheme http or https, explicit port)");
    } else {
      region.proxy = *v;
    }
  }
  if (auto servers = r.StringArray("dns_servers")) {
    for (size_t i = 0; i < servers->size(); ++i) {
      auto hp = ParseHostPort((*servers)[i], 53);
      if (!hp || !IsIpLiteral(hp->host) || hp->port == 0) {
        r.Error(Index("dns_servers", i),
                "expected a resolver address \"IP\" or \"IP:PORT\" (e.g. \"127.0.0.53:53\"), got " +
                    Quote((*servers)[i]));
      } else {
        region.dns_servers.push_back(IsIpv6Literal(hp->host)
                                         ? "[" + hp->host + "]:" + std::to_string(hp->port)
                                         : hp->host + ":" + std::to_string(hp->port));
      }
    }
  }
  if (auto v = r.String("source_address")) {
    if (!IsIpLiteral(*v)) {
      r.Error("source_address", "expected an IP address to bind to, got " + Quote(*v));
    } else {
      region.source_address = *v;
    }
  }
  r.Finish();
}

void ReadMonitor(TableReader& r, Ctx& ctx, const probes::ProbeSettings& defaults,
                 probes::MonitorConfig& m) {
  if (auto v = ReadName(r)) m.name = *v;
  if (auto v = r.String("url")) {
    auto url = ParseHttpUrl(*v);
    if (!url) {
      r.Error("url", url.error());
    } else {
      m.url = *v;
    }
  } else if (!r.Has("url")) {
    r.Missing("url", "an http:// or https:// URL");
  }
  if (auto v = r.StringArray("regions")) {
    if (v->empty()) {
      r.Error("regions", "must name at least one region (leave it out to probe from every region)");
    }
    m.regions = std::move(*v);
  }
  if (auto v = r.StringArray("upstreams")) m.upstreams = std::move(*v);
  if (auto v = r.String("body_contains")) {
    if (v->empty()) {
      r.Error("body_contains", "must not be empty");
    } else {
      m.body_contains = *v;
    }
  }
  if (auto v = ReadHeaderTable(r, "header_contains", ctx, /*lower_names=*/true)) {
    m.header_contains = std::move(*v);
  }
  m.probe = defaults;
  ReadProbeSettings(r, ctx, m.probe);
  r.Finish();
}

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
      if (std::find(alerting::kPhaseNames.begin(), alerting::kPhaseNames.end(), *v) ==
          alerting::kPhaseNames.end()) {
        r.Error("phase", "expected one of resolve, connect, tls, processing, transfer, total, got " +
                             Quote(*v));
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

// Returns false when type or url were already reported, so Validate() would only repeat them.
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

// Names must be unique within a section: the later one is the error.
template <typename T>
void CheckUnique(Ctx& ctx, const std::vector<T>& items, const std::string& section,
                 std::string_view what) {
  std::map<std::string, size_t> seen;
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string& name = items[i].name;
    if (name.empty()) continue;
    auto [it, inserted] = seen.emplace(name, i);
    if (!inserted) {
      const std::string first = Index(section, it->second);
      ctx.AddAt(Join(Index(section, i), "name"),
                "duplicate " + std::string(what) + " name " + Quote(name) + " (first defined at line " +
                    std::to_string(ctx.At(first).line) + ")");
    }
  }
}

// Resolves globs against monitor names; a pattern matching nothing is an error.
std::vector<std::string> ResolvePatterns(Ctx& ctx, const Config& cfg,
                                         const std::vector<std::string>& patterns,
                                         const std::string& path) {
  std::vector<std::string> names;
  std::vector<std::string> all_names;
  for (const auto& m : cfg.monitors) all_names.push_back(m.name);
  for (size_t i = 0; i < patterns.size(); ++i) {
    bool matched = false;
    for (const auto& m : cfg.monitors) {
      if (alerting::GlobMatch(patterns[i], m.name)) {
        matched = true;
        if (std::find(names.begin(), names.end(), m.name) == names.end()) names.push_back(m.name);
      }
    }
    if (!matched) {
      std::string msg = Quote(patterns[i]) + " matches no monitor";
      if (!alerting::HasGlobChars(patterns[i])) {
        if (auto near = Suggest(patterns[i], all_names)) msg += "; did you mean " + Quote(*near) + "?";
      }
      ctx.AddAt(Index(path, i), msg);
    }
  }
  return names;
}

void CheckReferences(Ctx& ctx, Config& cfg) {
  std::vector<std::string> region_names, monitor_names, notifier_names;
  for (const auto& r : cfg.regions) region_names.push_back(r.name);
  for (const auto& m : cfg.monitors) monitor_names.push_back(m.name);
  for (const auto& n : cfg.notifiers) notifier_names.push_back(n.name);

  // Every entry of `refs` must name one of `names`, once. `skip` (a monitor's own name
  // among its upstreams) is reported by MonitorConfig::Validate() instead.
  const auto check_list = [&](const std::vector<std::string>& refs,
                              const std::vector<std::string>& names, const std::string& path,
                              std::string_view what, std::string_view skip = {}) {
    std::set<std::string> seen;
    for (size_t i = 0; i < refs.size(); ++i) {
      if (!skip.empty() && refs[i] == skip) continue;
      if (!seen.insert(refs[i]).second) {
        ctx.AddAt(Index(path, i), "lists " + Quote(refs[i]) + " twice");
      } else if (std::find(names.begin(), names.end(), refs[i]) == names.end()) {
        std::string msg = "unknown " + std::string(what) + " " + Quote(refs[i]);
        if (auto near = Suggest(refs[i], names)) msg += "; did you mean " + Quote(*near) + "?";
        ctx.AddAt(Index(path, i), msg);
      }
    }
  };

  for (size_t i = 0; i < cfg.monitors.size(); ++i) {
    auto& m = cfg.monitors[i];
    const std::string path = Index("monitors", i);
    if (m.regions.empty()) {
      m.regions = region_names;
    } else {
      check_list(m.regions, region_names, Join(path, "regions"), "region");
    }
    check_list(m.upstreams, monitor_names, Join(path, "upstreams"), "monitor", m.name);
  }
  for (size_t i = 0; i < cfg.alerts.size(); ++i) {
    auto& a = cfg.alerts[i];
    const std::string path = Index("alerts", i);
    a.monitors = ResolvePatterns(ctx, cfg, a.monitor_patterns, Join(path, "monitors"));
    check_list(a.notify, notifier_names, Join(path, "notify"), "notifier");
    for (const std::string& name : a.monitors) {
      const auto* m = cfg.FindMonitor(name);
      if (m != nullptr && static_cast<int>(m->regions.size()) < a.min_regions &&
          a.kind != alerting::AlertKind::kCertExpiry) {
        ctx.AddAt(Join(path, "min_regions"),
                  "min_regions = " + std::to_string(a.min_regions) + " but monitor " + Quote(name) +
                      " is probed from " + std::to_string(m->regions.size()) +
                      " region(s): the alert could never fire for it");
        break;
      }
    }
  }
  for (size_t i = 0; i < cfg.silences.size(); ++i) {
    auto& s = cfg.silences[i];
    s.monitors = ResolvePatterns(ctx, cfg, s.monitor_patterns, Join(Index("silences", i), "monitors"));
  }
}

}  // namespace

void Config::IndexMonitors() {
  monitor_index_.clear();
  monitor_index_.reserve(monitors.size());
  for (size_t i = 0; i < monitors.size(); ++i) monitor_index_.emplace(monitors[i].name, i);
}

const probes::MonitorConfig* Config::FindMonitor(std::string_view name) const {
  // The diagnosis and the API look monitors up per result: at 10,000 monitors a scan was
  // 13% of the daemon's CPU. A duplicate name (a config error) leaves the index short.
  if (monitor_index_.size() == monitors.size()) {
    const auto it = monitor_index_.find(name);
    if (it != monitor_index_.end() && it->second < monitors.size() &&
        monitors[it->second].name == name) {
      return &monitors[it->second];
    }
  }
  for (const auto& m : monitors) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

const probes::RegionConfig* Config::FindRegion(std::string_view name) const {
  for (const auto& r : regions) {
    if (r.name == name) return &r;
  }
  return nullptr;
}

size_t Config::ProbeSlots() const {
  size_t n = 0;
  for (const auto& m : monitors) n += m.regions.size();
  return n;
}

std::string ConfigError::ToString() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line) + ":" + std::to_string(column);
  out += ": ";
  // One line whatever the file holds: control characters in keys and values are escaped.
  if (!path.empty()) out += OneLine(path) + ": ";
  out += OneLine(message);
  return out;
}

Result<Config, ConfigErrors> ParseConfig(std::string_view text, const std::string& source_name,
                                         const EnvLookup& env) {
  if (auto bound = CheckTextBounds(text)) {
    return Unexpected(
        ConfigErrors{{source_name, bound->line, bound->column, "", std::move(bound->message)}});
  }
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(source_name));
  } catch (const toml::parse_error& e) {
    const Pos pos = PosOf(e.source());
    return Unexpected(ConfigErrors{{source_name, pos.line, pos.column, "",
                                    "TOML syntax error: " + std::string(e.description())}});
  }

  Ctx ctx(source_name, env);
  Config cfg;
  cfg.source = source_name;
  TableReader top(ctx, root, "");

  if (auto v = top.Bool("allow_empty")) cfg.allow_empty = *v;
  if (const toml::table* t = top.Table("server")) {
    TableReader r(ctx, *t, "server");
    ReadServer(r, cfg.server);
  }
  if (const toml::table* t = top.Table("engine")) {
    TableReader r(ctx, *t, "engine");
    if (auto v = r.Int("max_in_flight", 1, 65536)) cfg.engine.max_in_flight = static_cast<int>(*v);
    r.Finish();
  }
  if (const toml::table* t = top.Table("storage")) {
    TableReader r(ctx, *t, "storage");
    ReadStorage(r, ctx, cfg.storage);
  }
  cfg.defaults.user_agent = std::string("gatewatch/") + kVersion;
  if (const toml::table* t = top.Table("defaults")) {
    TableReader r(ctx, *t, "defaults");
    ReadProbeSettings(r, ctx, cfg.defaults);
    r.Finish();
    ctx.AddFieldErrors("defaults", cfg.defaults.Validate());
  }
  if (const std::string marker = "<version>"; cfg.defaults.user_agent.find(marker) != std::string::npos) {
    cfg.defaults.user_agent.replace(cfg.defaults.user_agent.find(marker), marker.size(), kVersion);
  }

  cfg.regions.push_back(probes::RegionConfig{cfg.server.region, "", {}, ""});
  if (const toml::table* t = top.Table("regions")) {
    // [regions.NAME] sections, in file order (toml::table iterates by key).
    std::vector<std::pair<Pos, std::string>> order;
    for (const auto& [key, node] : *t) order.push_back({PosOf(node), std::string(key.str())});
    std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
      return std::tie(a.first.line, a.first.column) < std::tie(b.first.line, b.first.column);
    });
    TableReader regions(ctx, *t, "regions");
    for (const auto& [pos, name] : order) {
      const toml::node* n = regions.Get(name);
      const std::string path = regions.Path(name);
      if (!ValidName(name)) {
        ctx.AddAt(path, "invalid region name " + Quote(name) + ": use " + std::string(kNameRule));
        continue;
      }
      const auto* rt = n->as_table();
      if (rt == nullptr) {
        regions.WrongType(name, *n, "a table ([regions." + name + "] section)");
        continue;
      }
      probes::RegionConfig region;
      region.name = name;
      TableReader r(ctx, *rt, path);
      ReadRegion(r, region);
      ctx.AddFieldErrors(path, region.Validate());
      if (name == cfg.server.region) {
        cfg.regions.front() = std::move(region);  // configures this instance's own region
      } else {
        cfg.regions.push_back(std::move(region));
      }
    }
  }

  const auto monitor_tables = top.Tables("monitors");
  for (size_t i = 0; i < monitor_tables.size(); ++i) {
    if (monitor_tables[i] == nullptr) continue;
    const std::string path = Index("monitors", i);
    TableReader r(ctx, *monitor_tables[i], path);
    probes::MonitorConfig m;
    ReadMonitor(r, ctx, cfg.defaults, m);
    ctx.AddFieldErrors(path, m.Validate());
    cfg.monitors.push_back(std::move(m));
  }
  const auto alert_tables = top.Tables("alerts");
  for (size_t i = 0; i < alert_tables.size(); ++i) {
    if (alert_tables[i] == nullptr) continue;
    const std::string path = Index("alerts", i);
    TableReader r(ctx, *alert_tables[i], path);
    alerting::AlertRule a;
    ReadAlert(r, a);
    ctx.AddFieldErrors(path, a.Validate());
    cfg.alerts.push_back(std::move(a));
  }
  const auto notifier_tables = top.Tables("notifiers");
  for (size_t i = 0; i < notifier_tables.size(); ++i) {
    if (notifier_tables[i] == nullptr) continue;
    const std::string path = Index("notifiers", i);
    TableReader r(ctx, *notifier_tables[i], path);
    alerting::NotifierConfig n;
    if (ReadNotifier(r, n)) ctx.AddFieldErrors(path, n.Validate());
    cfg.notifiers.push_back(std::move(n));
  }
  const auto silence_tables = top.Tables("silences");
  for (size_t i = 0; i < silence_tables.size(); ++i) {
    if (silence_tables[i] == nullptr) continue;
    TableReader r(ctx, *silence_tables[i], Index("silences", i));
    alerting::SilenceConfig s;
    ReadSilence(r, ctx, i, s);
    cfg.silences.push_back(std::move(s));
  }
  top.Finish();

  CheckUnique(ctx, cfg.monitors, "monitors", "monitor");
  cfg.IndexMonitors();
  CheckUnique(ctx, cfg.alerts, "alerts", "alert");
  CheckUnique(ctx, cfg.notifiers, "notifiers", "notifier");
  CheckReferences(ctx, cfg);

  if (!ctx.ok()) return Unexpected(ctx.TakeErrors());
  return cfg;
}

std::optional<ConfigError> RequireMonitors(const Config& config) {
  if (!config.monitors.empty() || config.allow_empty) return std::nullopt;
  return ConfigError{config.source, 0, 0, "monitors",
                     "no monitors: the file defines no [[monitors]] (empty or truncated?); add "
                     "monitors, or set allow_empty = true at the top if that is meant"};
}

Result<Config, ConfigErrors> LoadConfigFile(const std::string& path, const EnvLookup& env) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Unexpected(ConfigErrors{{path, 0, 0, "", "cannot read config file: " +
                                                        std::string(std::strerror(errno))}});
  }
  // One byte past the bound is enough for ParseConfig to report it; a huge file (or an
  // endless one, such as /dev/zero) is never read whole.
  std::string text;
  while (text.size() <= kMaxConfigBytes && in) {
    const size_t have = text.size();
    const size_t want = std::min<size_t>(size_t{64} << 10, kMaxConfigBytes + 1 - have);
    text.resize(have + want);
    in.read(text.data() + have, static_cast<std::streamsize>(want));
    text.resize(have + static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) {
    return Unexpected(ConfigErrors{{path, 0, 0, "", "error while reading config file"}});
  }
  return ParseConfig(text, path, env);
}

std::string Summarize(const Config& cfg) {
  std::ostringstream os;
  double probes_per_second = 0;
  for (const auto& m : cfg.monitors) {
    probes_per_second += static_cast<double>(m.regions.size()) * 1000.0 /
                         static_cast<double>(m.probe.interval.count());
  }
  os << "config OK: " << cfg.source << "\n";
  os << "  regions:   " << cfg.regions.size() << " (";
  for (size_t i = 0; i < cfg.regions.size(); ++i) {
    const auto& r = cfg.regions[i];
    os << (i ? ", " : "") << r.name;
    if (!r.proxy.empty()) os << " via proxy";
    if (!r.dns_servers.empty()) os << " own DNS";
    if (!r.source_address.empty()) os << " from " << r.source_address;
  }
  os << ")\n";
  os << "  monitors:  " << cfg.monitors.size() << " x regions = " << cfg.ProbeSlots()
     << (cfg.ProbeSlots() == 1 ? " probe schedule, ~" : " probe schedules, ~") << Ratio(probes_per_second) << " probes/s\n";
  for (const auto& m : cfg.monitors) {
    auto url = ParseHttpUrl(m.url);
    os << "    " << m.name << "  " << (url ? url->scheme + "://" + url->host : std::string("?"))
       << "  every " << FormatDuration(m.probe.interval) << "  regions " << m.regions.size();
    if (!m.upstreams.empty()) os << "  upstreams " << m.upstreams.size();
    os << "\n";
  }
  os << "  alerts:    " << cfg.alerts.size() << "\n";
  for (const auto& a : cfg.alerts) {
    os << "    " << a.name << "  " << alerting::ToString(a.kind) << "  monitors " << a.monitors.size()
       << "  notify " << a.notify.size() << "\n";
  }
  os << "  notifiers: " << cfg.notifiers.size();
  if (!cfg.notifiers.empty()) {
    os << " (";
    for (size_t i = 0; i < cfg.notifiers.size(); ++i) {
      os << (i ? ", " : "") << cfg.notifiers[i].name << ": " << alerting::ToString(cfg.notifiers[i].type);
    }
    os << ")";
  }
  os << "\n  silences:  " << cfg.silences.size() << "\n";
  return os.str();
}

}  // namespace gatewatch::daemon
