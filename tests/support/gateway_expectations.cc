#include "tests/support/gateway_expectations.h"

#include <iterator>

namespace gatewatch::testing {
namespace {

// {gateway, situation, status, outcome, emitter, reason, verdict_linked, verdict_alone}
constexpr GatewayCase kCases[] = {
    // nginx 1.22: one page for every 502 cause; proxy_read_timeout gives 504. An SSH banner is
    // relayed as an HTTP/0.9 body, which the probe rejects as invalid HTTP.
    {"nginx", "refused", 502, "http_502", "nginx", "unknown", "upstream_down", "behind_gateway"},
    {"nginx", "silent", 504, "http_504", "nginx", "upstream_timeout", "upstream_down",
     "behind_gateway"},
    {"nginx", "slow", 504, "http_504", "nginx", "upstream_timeout", "upstream_slow",
     "behind_gateway"},
    {"nginx", "garbage", 0, "malformed_response", "none", "unknown", "upstream_down",
     "connection_failure"},
    {"nginx", "close", 502, "http_502", "nginx", "unknown", "upstream_down", "behind_gateway"},
    {"nginx", "app503", 503, "http_503", "application", "unknown", "upstream_down",
     "application_error"},
    {"nginx", "healthy", 200, "ok", "none", "unknown", "healthy", "healthy"},

    // HAProxy 2.6: "No server is available" after its connect retries to a refused server and
    // for a pool marked down alike; one 502 page for garbage and for a closed connection.
    {"haproxy", "refused", 503, "http_503", "haproxy", "no_healthy_upstream", "upstream_down",
     "behind_gateway"},
    {"haproxy", "silent", 504, "http_504", "haproxy", "upstream_timeout", "upstream_down",
     "behind_gateway"},
    {"haproxy", "slow", 504, "http_504", "haproxy", "upstream_timeout", "upstream_slow",
     "behind_gateway"},
    {"haproxy", "garbage", 502, "http_502", "haproxy", "unknown", "upstream_down",
     "behind_gateway"},
    {"haproxy", "close", 502, "http_502", "haproxy", "unknown", "upstream_down", "behind_gateway"},
    {"haproxy", "pool_down", 503, "http_503", "haproxy", "no_healthy_upstream", "upstream_down",
     "behind_gateway"},
    {"haproxy", "app503", 503, "http_503", "application", "unknown", "upstream_down",
     "application_error"},
    {"haproxy", "healthy", 200, "ok", "none", "unknown", "healthy", "healthy"},

    // Apache 2.4 mod_proxy: 503 for a refused connect and for a balancer whose members the
    // health check disabled (one page); 502 "Error reading from remote server" for a timeout
    // and a closed connection (one page). An SSH banner is relayed inside a 200.
    {"apache2", "refused", 503, "http_503", "apache", "unknown", "upstream_down",
     "behind_gateway"},
    {"apache2", "silent", 502, "http_502", "apache", "unknown", "upstream_down", "behind_gateway"},
    {"apache2", "slow", 502, "http_502", "apache", "unknown", "upstream_slow", "behind_gateway"},
    {"apache2", "garbage", 200, "ok", "none", "unknown", "upstream_down", "healthy"},
    {"apache2", "close", 502, "http_502", "apache", "unknown", "upstream_down", "behind_gateway"},
    {"apache2", "pool_down", 503, "http_503", "apache", "unknown", "upstream_down",
     "behind_gateway"},
    {"apache2", "app503", 503, "http_503", "application", "unknown", "upstream_down",
     "application_error"},
    {"apache2", "healthy", 200, "ok", "none", "unknown", "healthy", "healthy"},

    // lighttpd 1.4: a page naming only the status; 503 refused, 504 timeout (after ~3 s: its
    // timer has one-second steps), 502 garbage, 500 for a closed connection.
    {"lighttpd", "refused", 503, "http_503", "lighttpd", "unknown", "upstream_down",
     "behind_gateway"},
    {"lighttpd", "silent", 504, "http_504", "lighttpd", "upstream_timeout", "upstream_down",
     "behind_gateway"},
    {"lighttpd", "slow", 504, "http_504", "lighttpd", "upstream_timeout", "upstream_slow",
     "behind_gateway"},
    {"lighttpd", "garbage", 502, "http_502", "lighttpd", "unknown", "upstream_down",
     "behind_gateway"},
    {"lighttpd", "close", 500, "http_500", "lighttpd", "unknown", "upstream_down",
     "behind_gateway"},
    {"lighttpd", "app503", 503, "http_503", "application", "unknown", "upstream_down",
     "application_error"},
    {"lighttpd", "healthy", 200, "ok", "none", "unknown", "healthy", "healthy"},

    // Caddy 2.6: empty bodies; only the status tells 502 (refused, garbage, closed), 503 (no
    // upstream available) and 504 (timeout) apart. Relayed replies also get "Server: Caddy".
    {"caddy", "refused", 502, "http_502", "caddy", "unknown", "upstream_down", "behind_gateway"},
    {"caddy", "silent", 504, "http_504", "caddy", "upstream_timeout", "upstream_down",
     "behind_gateway"},
    {"caddy", "slow", 504, "http_504", "caddy", "upstream_timeout", "upstream_slow",
     "behind_gateway"},
    {"caddy", "garbage", 502, "http_502", "caddy", "unknown", "upstream_down", "behind_gateway"},
    {"caddy", "close", 502, "http_502", "caddy", "unknown", "upstream_down", "behind_gateway"},
    {"caddy", "pool_down", 503, "http_503", "caddy", "no_healthy_upstream", "upstream_down",
     "behind_gateway"},
    {"caddy", "app503", 503, "http_503", "application", "unknown", "upstream_down",
     "application_error"},
    {"caddy", "healthy", 200, "ok", "none", "unknown", "healthy", "healthy"},

    // Varnish 7.1: "503 Backend fetch failed" for every backend failure, timeouts included;
    // only the time it took tells a slow upstream (2 s) from a dead one.
    {"varnish", "refused", 503, "http_503", "varnish", "unknown", "upstream_down",
     "behind_gateway"},
    {"varnish", "silent", 503, "http_503", "varnish", "unknown", "upstream_down",
     "behind_gateway"},
    {"varnish", "slow", 503, "http_503", "varnish", "unknown", "upstream_slow", "behind_gateway"},
    {"varnish", "garbage", 503, "http_503", "varnish", "unknown", "upstream_down",
     "behind_gateway"},
    {"varnish", "close", 503, "http_503", "varnish", "unknown", "upstream_down",
     "behind_gateway"},
    {"varnish", "pool_down", 503, "http_503", "varnish", "unknown", "upstream_down",
     "behind_gateway"},
    {"varnish", "app503", 503, "http_503", "application", "unknown", "upstream_down",
     "application_error"},
    {"varnish", "healthy", 200, "ok", "none", "unknown", "healthy", "healthy"},

    // h2o 2.2: "502 Gateway Error" with the proxy's error text as the body, timeouts included.
    {"h2o", "refused", 502, "http_502", "h2o", "upstream_connect_failed", "upstream_down",
     "behind_gateway"},
    {"h2o", "silent", 502, "http_502", "h2o", "upstream_timeout", "upstream_down",
     "behind_gateway"},
    {"h2o", "slow", 502, "http_502", "h2o", "upstream_timeout", "upstream_slow",
     "behind_gateway"},
    {"h2o", "garbage", 502, "http_502", "h2o", "invalid_upstream_response", "upstream_down",
     "behind_gateway"},
    {"h2o", "close", 502, "http_502", "h2o", "upstream_reset", "upstream_down", "behind_gateway"},
    {"h2o", "app503", 503, "http_503", "application", "unknown", "upstream_down",
     "application_error"},
    {"h2o", "healthy", 200, "ok", "none", "unknown", "healthy", "healthy"},

    // Squid 5.7 (accelerator): X-Squid-Error names the page. Every cache_peer down reads as
    // ERR_READ_ERROR with errno 0; an SSH banner is relayed inside a 200 (X-Transformed-From:
    // HTTP/0.9). Its whole-second timer (read_timeout 1 s) gives up after 0.5-2.5 s.
    {"squid", "refused", 503, "http_503", "squid", "upstream_connect_failed", "upstream_down",
     "behind_gateway"},
    {"squid", "silent", 504, "http_504", "squid", "upstream_timeout", "upstream_down",
     "behind_gateway"},
    {"squid", "slow", 504, "http_504", "squid", "upstream_timeout", "upstream_slow",
     "behind_gateway"},
    {"squid", "garbage", 200, "ok", "none", "unknown", "upstream_down", "healthy"},
    {"squid", "close", 502, "http_502", "squid", "upstream_reset", "upstream_down",
     "behind_gateway"},
    {"squid", "pool_down", 502, "http_502", "squid", "unknown", "upstream_down", "behind_gateway"},
    {"squid", "app503", 503, "http_503", "application", "unknown", "upstream_down",
     "application_error"},
    {"squid", "healthy", 200, "ok", "none", "unknown", "healthy", "healthy"},

    // Traffic Server 9.2: the status text says why ("502 Connection refused", "504 Connection
    // Timed Out", "502 Invalid HTTP Response"); a closed connection is "502 Malformed Server
    // Response Status", which a bad status line would also give.
    {"trafficserver", "refused", 502, "http_502", "trafficserver", "upstream_connect_failed",
     "upstream_down", "behind_gateway"},
    {"trafficserver", "silent", 504, "http_504", "trafficserver", "upstream_timeout",
     "upstream_down", "behind_gateway"},
    {"trafficserver", "slow", 504, "http_504", "trafficserver", "upstream_timeout",
     "upstream_slow", "behind_gateway"},
    {"trafficserver", "garbage", 502, "http_502", "trafficserver", "invalid_upstream_response",
     "upstream_down", "behind_gateway"},
    {"trafficserver", "close", 502, "http_502", "trafficserver", "unknown", "upstream_down",
     "behind_gateway"},
    {"trafficserver", "app503", 503, "http_503", "application", "unknown", "upstream_down",
     "application_error"},
    {"trafficserver", "healthy", 200, "ok", "none", "unknown", "healthy", "healthy"},
};

}  // namespace

std::span<const GatewayCase> GatewayCases() { return kCases; }

}  // namespace gatewatch::testing
