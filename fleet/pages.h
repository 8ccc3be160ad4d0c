#pragma once
// Raw HTTP error responses of common gateways, CDNs and proxies, byte for byte as far as
// docs/fingerprints.md knows them (status line, headers in the emitter's order and
// case, body, correct Content-Length), for RawHttpServer to serve:
//   server.Route("/nginx-502", Behavior::Raw(pages::Nginx(502)));
// Date headers carry a fixed date so every page is deterministic. Pure functions, no I/O.
// Statuses an emitter does not produce itself are still rendered in its layout (e.g.
// HAProxy 500), so every emitter has 500/502/503/504; emitters with reason-specific
// bodies (Envoy, Fastly, Cloudflare's branded 52x) have their own selectors.

#include <string>
#include <string_view>
#include <vector>

namespace gatewatch::fleet::pages {

// REQUIRES for every `status` below: one of 500, 502, 503, 504 unless stated otherwise.

// nginx 1.22.1 (default server_tokens): `Server: nginx/1.22.1`, the nginx HTML page with
// the `<hr><center>nginx/1.22.1</center>` tail.
std::string Nginx(int status);
// Apache httpd 2.4 mod_proxy: 502 is "502 Proxy Error" with the proxy's error notes.
std::string Apache(int status);
// HAProxy 2.x http_err_msgs[]: no Server header, Cache-Control: no-cache, 107/107/92.
std::string Haproxy(int status);

enum class EnvoyReason {
  kNoHealthyUpstream,  // 503 "no healthy upstream"
  kConnectFailure,     // 503 "upstream connect error ... reset reason: connection failure"
  kTermination,        // 503 "... reset reason: connection termination"
  kTimeout,            // 504 "upstream request timeout"
  kProtocolError,      // 502 "... reset reason: protocol error" (text unverified)
};
// Envoy local reply: text/plain, lower-case headers, `server: envoy`, no
// x-envoy-upstream-service-time.
std::string Envoy(EnvoyReason reason);

// Cloudflare-generated (edge) error: nginx layout with the `<hr><center>cloudflare` tail,
// `Server: cloudflare`, `CF-RAY`.
std::string CloudflareEdge(int status);
// Cloudflare's branded page for an origin problem. REQUIRES: status 500, 502, 503, 504 or
// 520..526. `host` appears in the title ("<host> | 502: Bad gateway").
std::string CloudflareBranded(int status, std::string_view host = "www.example.com");
// AWS ALB: `Server: awselb/2.0`, nginx layout without the tail (502 -> Content-Length 122,
// 503 -> 162).
std::string AwsAlb(int status);
// Google Cloud external Application LB (GFE) "Server Error" page.
std::string GoogleLb(int status);
// Varnish Cache builtin.vcl synthetic error ("Guru Meditation", XID).
std::string Varnish(int status);
// Fastly's 503 (always 503) with `reason` as status text and in the body
// ("Guru Mediation"). E.g. "first byte timeout", "backend read error".
std::string Fastly(std::string_view reason = "first byte timeout");
// Traefik: Go http.StatusText bodies in text/plain; 503 is "no available server\n".
std::string Traefik(int status);
// Caddy without handle_errors: status line, `Server: Caddy`, empty body.
std::string Caddy(int status);
// Akamai GHost: "An error occurred while processing your request." / 504 "Gateway
// Timeout" with a `Reference #<n>.<hex>.<epoch>.<hex>` token.
std::string Akamai(int status);
// Kong: JSON {"message": ...}, `Server: kong/3.4.2`.
std::string Kong(int status);

// Every page above in one table (the demo serves them all; tests iterate over them).
struct Page {
  std::string name;     // route-friendly and unique: "nginx-502", "envoy-no-healthy-upstream"
  std::string emitter;  // "nginx", "apache", "haproxy", "envoy", "cloudflare", "aws_alb",
                        // "google_lb", "varnish", "fastly", "traefik", "caddy", "akamai", "kong"
  int status = 0;
  std::string raw;  // the full response
};
std::vector<Page> AllPages();

}  // namespace gatewatch::fleet::pages
