#include "daemon/status_page.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <vector>

#include "daemon/result_json.h"
#include "probes/log.h"
#include "storage/incident_store.h"

namespace gatewatch::daemon {

using namespace std::chrono_literals;

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

namespace {

constexpr int kFailuresShown = 5;
constexpr int kSparkWidth = 180;
constexpr int kSparkHeight = 34;

// Inline only: the page must work with no network and a strict CSP.
constexpr std::string_view kCss = R"css(
:root{color-scheme:light dark;--bg:#f6f8fa;--card:#fff;--fg:#1f2328;--muted:#59636e;
--line:#d1d9e0;--ok:#1a7f37;--fail:#cf222e;--unk:#6e7781;--spark:#0969da}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--card:#151b23;--fg:#e6edf3;
--muted:#9198a1;--line:#3d444d;--ok:#3fb950;--fail:#f85149;--unk:#9198a1;--spark:#4493f8}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
header{background:var(--card);border-bottom:1px solid var(--line);padding:14px 24px;
display:flex;flex-wrap:wrap;align-items:baseline;gap:8px 20px}
header h1{font-size:20px;margin:0}
.counts span{margin-right:14px}
main{max-width:1240px;margin:0 auto;padding:8px 24px 40px}
h2{font-size:16px;margin:22px 0 8px}
.card{background:var(--card);border:1px solid var(--line);border-left:5px solid var(--unk);
border-radius:6px;padding:10px 16px 12px;margin:10px 0}
.card.ok{border-left-color:var(--ok)}.card.failing{border-left-color:var(--fail)}
.top{display:flex;flex-wrap:wrap;align-items:center;gap:6px 18px}
.top h3{margin:0;font-size:16px}
.badge{display:inline-block;min-width:54px;text-align:center;padding:1px 8px;border-radius:10px;
font-size:12px;font-weight:600;color:#fff;background:var(--unk)}
.badge.ok{background:var(--ok)}.badge.failing{background:var(--fail)}
.mono,.url,code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.muted{color:var(--muted)}
.uptime b{font-variant-numeric:tabular-nums}
.uptime span{margin-right:12px}
.spark{display:flex;align-items:center;gap:8px}
.spark svg{display:block;overflow:visible}
.spark polyline{fill:none;stroke:var(--spark);stroke-width:1.6;stroke-linejoin:round}
.spark circle{fill:var(--spark)}
.spark .base{stroke:var(--line);stroke-width:1}
table{border-collapse:collapse;width:100%;margin-top:8px}
th,td{text-align:left;padding:4px 10px 4px 0;border-bottom:1px solid var(--line);
vertical-align:top}
th{color:var(--muted);font-weight:500;font-size:12px}
td.num{font-variant-numeric:tabular-nums}
tr:last-child td{border-bottom:0}
.fail-text{color:var(--fail);font-weight:600}
.ok-text{color:var(--ok);font-weight:600}
details{margin-top:6px}
summary{cursor:pointer;color:var(--muted)}
.detail{max-width:520px;overflow-wrap:anywhere}
.empty{color:var(--muted);background:var(--card);border:1px dashed var(--line);border-radius:6px;
padding:10px 16px}
footer{color:var(--muted);font-size:12px;margin-top:24px}
)css";

std::string ShareText(double share) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f%%", share * 100);
  return buf;
}

std::string Percent(const UptimeCount& u) {
  auto ratio = u.Ratio();
  if (!ratio) return "&ndash;";
  char buf[32];
  // 99.95 must not round up to 100: floor to two decimals unless it is exact.
  const double pct = std::floor(*ratio * 10000.0) / 100.0;
  std::snprintf(buf, sizeof buf, "%.2f%%", pct);
  return buf;
}

std::string Ms(double ms) {
  char buf[32];
  if (ms >= 100) {
    std::snprintf(buf, sizeof buf, "%.0f ms", ms);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f ms", ms);
  }
  return buf;
}

std::string Ago(SystemTime then, SystemTime now) {
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(now - then).count();
  if (s < 0) return "just now";
  if (s < 120) return std::to_string(s) + "s ago";
  if (s < 2 * 3600) return std::to_string(s / 60) + "m ago";
  if (s < 2 * 86400) return std::to_string(s / 3600) + "h ago";
  return std::to_string(s / 86400) + "d ago";
}

std::string TimeCell(SystemTime t, SystemTime now) {
  const std::string iso = FormatTime(t);
  return "<time datetime=\"" + iso + "\" title=\"" + iso + "\">" + HtmlEscape(iso.substr(0, 19)) +
         "Z</time> <span class=\"muted\">(" + Ago(t, now) + ")</span>";
}

std::string EmitterText(const probes::ProbeResult& r) {
  if (r.http_status < 500 || r.emitter == probes::Emitter::kNone) return "";
  std::string text(probes::ToString(r.emitter));
  if (r.reason != probes::Reason::kUnknown)
    text += " (" + std::string(probes::ToString(r.reason)) + ")";
  return text;
}

// Average total latency per minute over the last hour as an inline SVG polyline.
std::string Sparkline(const MonitorStatus& s, SystemTime now) {
  std::string out = "<div class=\"spark\">";
  if (s.latency_ms.empty()) return out + "<span class=\"muted\">no latency data yet</span></div>";
  double max_ms = 0, min_ms = s.latency_ms.front().second;
  for (const auto& [t, ms] : s.latency_ms) {
    max_ms = std::max(max_ms, ms);
    min_ms = std::min(min_ms, ms);
  }
  const double top = max_ms > 0 ? max_ms * 1.1 : 1.0;
  const SystemTime start = now - 60min;
  auto x_of = [&](SystemTime t) {
    const double f =
        std::chrono::duration<double>(t - start) / std::chrono::duration<double>(60min);
    return std::clamp(f, 0.0, 1.0) * kSparkWidth;
  };
  auto y_of = [&](double ms) { return kSparkHeight - (ms / top) * (kSparkHeight - 2) - 1; };
  char buf[64];
  std::string points;
  for (const auto& [t, ms] : s.latency_ms) {
    std::snprintf(buf, sizeof buf, "%.1f,%.1f ", x_of(t), y_of(ms));
    points += buf;
  }
  const auto& [last_t, last_ms] = s.latency_ms.back();
  const std::string label = "average total latency per minute, last hour: min " + Ms(min_ms) +
                            ", max " + Ms(max_ms) + ", last " + Ms(last_ms);
  out += "<svg width=\"" + std::to_string(kSparkWidth) + "\" height=\"" +
         std::to_string(kSparkHeight) + "\" viewBox=\"0 0 " + std::to_string(kSparkWidth) + " " +
         std::to_string(kSparkHeight) + "\" role=\"img\" aria-label=\"" + HtmlEscape(label) +
         "\"><title>" + HtmlEscape(label) + "</title>";
  out += "<line class=\"base\" x1=\"0\" y1=\"" + std::to_string(kSparkHeight) + "\" x2=\"" +
         std::to_string(kSparkWidth) + "\" y2=\"" + std::to_string(kSparkHeight) + "\"/>";
  if (s.latency_ms.size() > 1) out += "<polyline points=\"" + points + "\"/>";
  std::snprintf(buf, sizeof buf, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\"/>", x_of(last_t),
                y_of(last_ms));
  out += buf;
  out += "</svg><span class=\"muted mono\">avg " + Ms(last_ms) + "</span></div>";
  return out;
}

void RenderRegions(std::string& out, const MonitorStatus& s, SystemTime now) {
  out +=
      "<table class=\"regions\"><tr><th>Region</th><th>State</th><th>Outcome</th>"
      "<th>HTTP</th><th>Emitter</th><th>Last probe</th><th>Total</th><th>Uptime 24h</th></tr>";
  for (const MonitorStatus::Region& region : s.regions) {
    const std::string state(RegionState(region.latest));
    out += "<tr class=\"region\" data-region=\"" + HtmlEscape(region.name) + "\" data-state=\"" +
           state + "\"><td>" + HtmlEscape(region.name) + "</td><td><span class=\"badge " + state +
           "\">" + (state == "unknown" ? "no data" : state) + "</span></td>";
    if (!region.latest) {
      out += "<td colspan=\"6\" class=\"muted\">no confirmed result yet</td></tr>";
      continue;
    }
    const probes::ProbeResult& r = *region.latest;
    const bool failing = probes::IsFailure(r.outcome);
    out += "<td class=\"mono outcome" + std::string(failing ? " fail-text" : "") + "\">" +
           HtmlEscape(probes::ToString(r.outcome)) + "</td>";
    out += "<td class=\"num\">" + (r.http_status > 0 ? std::to_string(r.http_status) : "&ndash;") +
           "</td>";
    out += "<td class=\"mono emitter\">" + HtmlEscape(EmitterText(r)) + "</td>";
    out += "<td>" + TimeCell(r.started_at, now) + "</td>";
    out += "<td class=\"num\">" +
           (r.phases.total ? Ms(static_cast<double>(r.phases.total->count()) / 1000.0)
                           : std::string("&ndash;")) +
           "</td>";
    out += "<td class=\"num\">" + Percent(region.uptime_24h) + "</td></tr>";
  }
  out += "</table>";
}

void RenderFailures(std::string& out, const probes::MonitorConfig& m,
                    const std::vector<probes::ProbeResult>& failures, bool open, SystemTime now) {
  if (failures.empty()) {
    out += "<p class=\"muted\">No failures stored.</p>";
    return;
  }
  out += std::string("<details class=\"failures\"") + (open ? " open" : "") +
         "><summary>Last failures</summary><table><tr><th>Time</th><th>Region</th>"
         "<th>Outcome</th><th>HTTP</th><th>Emitter</th><th>Detail</th></tr>";
  for (const probes::ProbeResult& r : failures) {
    out += "<tr class=\"failure\"><td>" + TimeCell(r.started_at, now) + "</td><td>" +
           HtmlEscape(r.region) + "</td><td class=\"mono\">" +
           HtmlEscape(probes::ToString(r.outcome)) +
           (r.confirmed ? "" : " <span class=\"muted\">(retried)</span>") +
           "</td><td class=\"num\">" +
           (r.http_status > 0 ? std::to_string(r.http_status) : "&ndash;") +
           "</td><td class=\"mono\">" + HtmlEscape(EmitterText(r)) + "</td><td class=\"detail\">" +
           HtmlEscape(RedactQuery(r.detail, m.url)) + "</td></tr>";
  }
  out += "</table></details>";
}

struct Card {
  const probes::MonitorConfig* monitor;
  MonitorStatus status;
  std::vector<probes::ProbeResult> failures;
};

HttpResponse ErrorPage(const std::string& error) {
  DropReadStore();
  log::Error("status page: cannot read the database").Kv("error", error);
  HttpResponse r;
  r.status = 500;
  r.content_type = "text/html; charset=utf-8";
  r.body =
      "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>gatewatch</title>"
      "</head><body><h1>gatewatch</h1><p>The results database cannot be read right now; "
      "see the daemon log.</p></body></html>\n";
  return r;
}

}  // namespace

HttpResponse RenderStatusPage(const ApiDeps& deps) {
  const std::shared_ptr<const Config> cfg = deps.config.Get();
  auto store = ReadStore(deps.db_path);
  if (!store) return ErrorPage(store.error());
  auto latest = (*store)->Latest(storage::LatestQuery{});
  if (!latest) return ErrorPage(latest.error());
  const SystemTime now = deps.clock.Now();

  std::vector<Card> cards;
  cards.reserve(cfg->monitors.size());
  for (const probes::MonitorConfig& m : cfg->monitors) {
    auto status =
        LoadMonitorStatus(**store, m, *latest, now, {.long_uptime = true, .latency = true});
    if (!status) return ErrorPage(status.error());
    storage::ResultQuery q;
    q.monitor = m.name;
    q.limit = kFailuresShown;
    q.failures_only = true;
    auto failures = (*store)->Results(q);
    if (!failures) return ErrorPage(failures.error());
    cards.push_back({&m, std::move(status).value(), std::move(failures).value()});
  }
  std::stable_partition(cards.begin(), cards.end(),
                        [](const Card& c) { return c.status.State() == "failing"; });
  int failing = 0, ok = 0, unknown = 0;
  for (const Card& c : cards) {
    const std::string_view s = c.status.State();
    (s == "failing" ? failing : s == "ok" ? ok : unknown)++;
  }

  std::string out;
  out.reserve(4096 + cards.size() * 3072);
  out +=
      "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
      "<meta http-equiv=\"refresh\" content=\"30\">";
  out += std::string("<title>") +
         (failing > 0 ? "(" + std::to_string(failing) + " failing) " : "") +
         "gatewatch status</title><style>";
  out += kCss;
  out += "</style></head><body><header><h1>gatewatch status</h1><div class=\"counts\">";
  out += "<span><b>" + std::to_string(cards.size()) + "</b> monitors</span>";
  out += "<span class=\"" + std::string(failing > 0 ? "fail-text" : "muted") + "\"><b>" +
         std::to_string(failing) + "</b> failing</span>";
  out += "<span class=\"ok-text\"><b>" + std::to_string(ok) + "</b> ok</span>";
  if (unknown > 0)
    out += "<span class=\"muted\"><b>" + std::to_string(unknown) + "</b> no data</span>";
  out += "</div><div class=\"muted\">Generated " + TimeCell(now, now) +
         " &middot; reloads every 30 s</div></header><main>";

  // Open incidents (docs/alerts-and-diagnosis.md), newest first, with their verdicts.
  auto incidents = ReadIncidents(deps.db_path, deps.clock);
  if (!incidents) return ErrorPage(incidents.error());
  auto open = (*incidents)->OpenIncidents();
  if (!open) return ErrorPage(open.error());
  std::reverse(open->begin(), open->end());
  out += "<section id=\"incidents\"><h2>Open incidents</h2>";
  if (open->empty()) out += "<p class=\"empty\">No open incidents</p>";
  for (const storage::Incident& inc : *open) {
    out += "<section class=\"card incident\" data-incident=\"" + HtmlEscape(inc.monitor) + "\" data-verdict=\"" +
           HtmlEscape(inc.verdict) + "\"><div class=\"top\"><h3>" + HtmlEscape(inc.monitor) +
           "</h3><span class=\"badge failing\">" + HtmlEscape(inc.verdict) + "</span><span class=\"muted\">since " +
           TimeCell(inc.opened_at, now) + (inc.alert_fired ? " &middot; alert fired" : "") +
           // A monitor that never failed (a gateway whose pool is degraded) has no peak to show.
           (inc.peak_ratio > 0 ? " &middot; peak " + ShareText(inc.peak_ratio) + " failing" : std::string()) +
           "</span></div><p>" + HtmlEscape(inc.summary) +
           "</p></section>";
  }
  out += "</section>";

  out += "<section id=\"monitors\"><h2>Monitors</h2>";
  if (cards.empty()) out += "<p class=\"empty\">No monitors are configured.</p>";
  for (const Card& c : cards) {
    const probes::MonitorConfig& m = *c.monitor;
    const std::string state(c.status.State());
    out += "<section class=\"card monitor " + state + "\" id=\"monitor-" + HtmlEscape(m.name) +
           "\" data-monitor=\"" + HtmlEscape(m.name) + "\" data-state=\"" + state + "\">";
    out += "<div class=\"top\"><h3>" + HtmlEscape(m.name) + "</h3><span class=\"badge " + state +
           "\">" + (state == "unknown" ? "no data" : state) + "</span>";
    out += "<span class=\"url muted\">" + HtmlEscape(PublicUrl(m.url)) + "</span>";
    out += "<span class=\"uptime\"><span>24h <b>" + Percent(c.status.uptime_24h) +
           "</b></span><span>7d <b>" + Percent(c.status.uptime_7d) + "</b></span><span>30d <b>" +
           Percent(c.status.uptime_30d) + "</b></span></span>";
    out += Sparkline(c.status, now);
    out += "</div>";
    if (!m.upstreams.empty()) {
      out += "<div class=\"muted\">upstreams: ";
      for (size_t i = 0; i < m.upstreams.size(); ++i) {
        if (i > 0) out += ", ";
        out += "<a href=\"#monitor-" + HtmlEscape(m.upstreams[i]) + "\">" +
               HtmlEscape(m.upstreams[i]) + "</a>";
      }
      out += "</div>";
    }
    RenderRegions(out, c.status, now);
    RenderFailures(out, m, c.failures, state == "failing", now);
    out += "</section>";
  }
  out +=
      "</section><footer>gatewatch &middot; JSON: <code>/api/v1/monitors</code></footer>"
      "</main></body></html>\n";

  HttpResponse r;
  r.content_type = "text/html; charset=utf-8";
  r.body = std::move(out);
  // Nothing but inline styles and inline SVG: a script injected through some unescaped
  // field would not run anyway.
  r.headers.emplace_back("Content-Security-Policy",
                         "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                         "base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

void RegisterStatusPage(HttpServer& server, const ApiDeps& deps) {
  server.Get("/", [deps](const HttpRequest&) { return RenderStatusPage(deps); });
}

}  // namespace gatewatch::daemon
