#include "daemon/config_sections.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <sstream>
#include <tuple>

namespace gatewatch::daemon::internal {

bool ValidName(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  if (!std::isalnum(static_cast<unsigned char>(name.front()))) return false;
  return std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_' || c == '.';
  });
}

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

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

namespace {

bool ValidHeaderName(std::string_view name) {
  static constexpr std::string_view kTokenChars = "!#$%&'*+-.^_`|~";
  return !name.empty() && std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::isalnum(c) || kTokenChars.find(static_cast<char>(c)) != std::string_view::npos;
  });
}
bool HasControlChars(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; });
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

}  // namespace

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

}  // namespace gatewatch::daemon::internal
