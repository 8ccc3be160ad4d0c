#pragma once
// GET / : the status page (docs/http-api.md). One server-rendered HTML document with inline
// CSS and inline SVG; no JavaScript and no external assets, so it works offline and under a
// strict Content-Security-Policy (which it sends). It reloads itself every 30 s with
// <meta http-equiv="refresh">.
//
// Per monitor (failing monitors first, otherwise config order): the overall state, the
// state per region from the latest confirmed result (outcome, HTTP status, emitter and
// reason for 5xx), uptime over 24h / 7d / 30d from the hour rollups, a sparkline of the
// average total latency per minute over the last hour (minute rollups), and its last
// failed attempts (outcome, emitter, time, detail). Above them the open incidents with their
// verdicts and one-line summaries.
//
// Everything taken from config or results is HTML-escaped. Monitor URLs are shown without
// their query string; secrets (notifier URLs, server.api_token, monitor request headers)
// are never rendered. Cost: one Latest query, then three bounded queries per monitor (30
// days of hour rollups, 60 minute rollups, the last few failures).
//
// Threads: like the API (daemon/api.h), handlers run on the HTTP pool with a per-thread
// read-only connection.

#include <string>
#include <string_view>

#include "daemon/api.h"
#include "daemon/http_server.h"

namespace gatewatch::daemon {

void RegisterStatusPage(HttpServer& server, const ApiDeps& deps);

// The page itself (for tests and RegisterStatusPage). Errors reading the database become
// a 500 page.
HttpResponse RenderStatusPage(const ApiDeps& deps);

// &, <, >, " and ' as entities.
std::string HtmlEscape(std::string_view text);

}  // namespace gatewatch::daemon
