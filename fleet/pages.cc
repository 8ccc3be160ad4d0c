#include "fleet/pages.h"

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "fleet/http_text.h"

namespace gatewatch::fleet::pages {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr const char* kDate = "Mon, 23 Nov 2026 05:25:10 GMT";
constexpr const char* kNginxVersion = "nginx/1.22.1";
constexpr const char* kCfRay = "8c2f10ab39d1";
const std::string kLength(kBodyLength);

[[noreturn]] void BadStatus(const char* emitter, int status) {
  std::fprintf(stderr, "gatewatch fleet: pages::%s has no page for status %d\n", emitter, status);
  std::abort();
}

void Require5xx(const char* emitter, int status) {
  if (status != 500 && status != 502 && status != 503 && status != 504) BadStatus(emitter, status);
}

// nginx's own status lines (ngx_http_status_lines[]), also used by its derivatives.
std::string NginxStatusLine(int status) {
  switch (status) {
    case 500:
      return "500 Internal Server Error";
    case 502:
      return "502 Bad Gateway";
    case 503:
      return "503 Service Temporarily Unavailable";
    case 504:
      return "504 Gateway Time-out";
    default:
      return std::to_string(status) + " " + std::string(ReasonPhrase(status));
  }
}

// ngx_http_special_response.c: the page head plus a tail.
std::string NginxBody(int status, std::string_view tail) {
  const std::string line = NginxStatusLine(status);
  std::string body = "<html>\r\n<head><title>" + line +
                     "</title></head>\r\n<body>\r\n<center><h1>" + line + "</h1></center>\r\n";
  body.append(tail);
  return body;
}

std::string StandardLine(int status) {
  return std::to_string(status) + " " + std::string(ReasonPhrase(status));
}

}  // namespace

std::string Nginx(int status) {
  Require5xx("Nginx", status);
  const std::string tail =
      std::string("<hr><center>") + kNginxVersion + "</center>\r\n</body>\r\n</html>\r\n";
  return BuildResponse(NginxStatusLine(status),
                       {{"Server", kNginxVersion},
                        {"Date", kDate},
                        {"Content-Type", "text/html"},
                        {"Content-Length", kLength},
                        {"Connection", "keep-alive"}},
                       NginxBody(status, tail));
}

std::string Apache(int status) {
  Require5xx("Apache", status);
  std::string line = StandardLine(status);
  std::string heading(ReasonPhrase(status));
  std::string text;
  switch (status) {
    case 500:
      text =
          "<p>The server encountered an internal error or\nmisconfiguration and was unable to "
          "complete\nyour request.</p>\n<p>Please contact the server administrator at \n "
          "webmaster@localhost to inform them of the time this error occurred,\n and the actions "
          "you performed just before this error.</p>\n<p>More information about this error may be "
          "available\nin the server error log.</p>\n";
      break;
    case 502:
      line = "502 Proxy Error";  // ap_proxyerror(): "%3.3u Proxy Error"
      heading = "Proxy Error";
      text =
          "<p>The proxy server received an invalid\r\nresponse from an upstream server.<br />\r\n"
          "The proxy server could not handle the request<p>Reason: <strong>Error reading from "
          "remote server</strong></p></p>\n";
      break;
    case 503:
      text =
          "<p>The server is temporarily unable to service your\nrequest due to maintenance "
          "downtime or capacity\nproblems. Please try again later.</p>\n";
      break;
    default:
      text =
          "<p>The gateway did not receive a timely response\nfrom the upstream server or "
          "application.</p>\n";
      break;
  }
  const std::string body =
      "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\" "
      "\"http://www.w3.org/TR/html4/strict.dtd\">\n<html><head>\n<title>" +
      line + "</title>\n</head><body>\n<h1>" + heading + "</h1>\n" + text +
      "<hr>\n<address>Apache/2.4.57 (Debian) Server at 127.0.0.1 Port 80</address>\n"
      "</body></html>\n";
  return BuildResponse(line,
                       {{"Date", kDate},
                        {"Server", "Apache/2.4.57 (Debian)"},
                        {"Content-Length", kLength},
                        {"Connection", "close"},
                        {"Content-Type", "text/html; charset=iso-8859-1"}},
                       body);
}

std::string Haproxy(int status) {
  Require5xx("Haproxy", status);
  std::string line;
  std::string body;
  switch (status) {
    case 500:
      line = "500 Internal Server Error";
      body = "<html><body><h1>500 Internal Server Error</h1>\nAn internal server error occurred.\n";
      break;
    case 502:
      line = "502 Bad Gateway";
      body =
          "<html><body><h1>502 Bad Gateway</h1>\nThe server returned an invalid or incomplete "
          "response.\n";
      break;
    case 503:
      line = "503 Service Unavailable";
      body =
          "<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this "
          "request.\n";
      break;
    default:
      line = "504 Gateway Time-out";
      body = "<html><body><h1>504 Gateway Time-out</h1>\nThe server didn't respond in time.\n";
      break;
  }
  body += "</body></html>\n";
  return BuildResponse(
      line,
      {{"Content-length", kLength}, {"Cache-Control", "no-cache"}, {"Content-Type", "text/html"}},
      body);
}

std::string Envoy(EnvoyReason reason) {
  std::string line = "503 Service Unavailable";
  std::string body;
  switch (reason) {
    case EnvoyReason::kNoHealthyUpstream:
      body = "no healthy upstream";
      break;
    case EnvoyReason::kConnectFailure:
      body =
          "upstream connect error or disconnect/reset before headers. reset reason: "
          "connection failure";
      break;
    case EnvoyReason::kTermination:
      body =
          "upstream connect error or disconnect/reset before headers. reset reason: "
          "connection termination";
      break;
    case EnvoyReason::kTimeout:
      line = "504 Gateway Timeout";
      body = "upstream request timeout";
      break;
    case EnvoyReason::kProtocolError:
      line = "502 Bad Gateway";
      body =
          "upstream connect error or disconnect/reset before headers. reset reason: "
          "protocol error";
      break;
  }
  return BuildResponse(line,
                       {{"content-length", kLength},
                        {"content-type", "text/plain"},
                        {"date", kDate},
                        {"server", "envoy"}},
                       body);
}

std::string CloudflareEdge(int status) {
  Require5xx("CloudflareEdge", status);
  return BuildResponse(
      NginxStatusLine(status),
      {{"Date", kDate},
       {"Content-Type", "text/html"},
       {"Content-Length", kLength},
       {"Connection", "keep-alive"},
       {"Server", "cloudflare"},
       {"CF-RAY", std::string(kCfRay) + "-AMS"}},
      NginxBody(status, "<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"));
}

std::string CloudflareBranded(int status, std::string_view host) {
  // {status line, headline, "What happened?" text}. 521/523-526 wording is unverified.
  const char* line = nullptr;
  const char* headline = nullptr;
  const char* happened = nullptr;
  switch (status) {
    case 500:
      line = "500 Internal Server Error";
      headline = "Internal server error";
      happened = "The web server reported an internal server error.";
      break;
    case 502:
      line = "502 Bad Gateway";
      headline = "Bad gateway";
      happened = "The web server reported a bad gateway error.";
      break;
    case 503:
      line = "503 Service Unavailable";
      headline = "Service unavailable";
      happened = "The web server reported that it is temporarily unavailable.";
      break;
    case 504:
      line = "504 Gateway Timeout";
      headline = "Gateway time-out";
      happened = "The web server reported a gateway time-out error.";
      break;
    case 520:
      line = "520 Origin Error";
      headline = "Web server is returning an unknown error";
      happened =
          "There is an unknown connection issue between Cloudflare and the origin web server. "
          "As a result, the web page can not be displayed.";
      break;
    case 521:
      line = "521 Origin Down";
      headline = "Web server is down";
      happened =
          "The web server is not returning a connection. As a result, the web page is "
          "not displaying.";
      break;
    case 522:
      line = "522 Origin Connection Time-out";
      headline = "Connection timed out";
      happened =
          "The initial connection between Cloudflare's network and the origin web server timed "
          "out. As a result, the web page can not be displayed.";
      break;
    case 523:
      line = "523 Origin Unreachable";
      headline = "Origin is unreachable";
      happened = "Cloudflare is unable to reach the origin web server.";
      break;
    case 524:
      line = "524 Origin Time-out";
      headline = "A timeout occurred";
      happened = "The origin web server timed out responding to this request.";
      break;
    case 525:
      line = "525 Origin SSL Handshake Error";
      headline = "SSL handshake failed";
      happened = "Cloudflare is unable to establish an SSL connection to the origin server.";
      break;
    case 526:
      line = "526 Invalid SSL Certificate";
      headline = "Invalid SSL certificate";
      happened = "The origin web server does not have a valid SSL certificate.";
      break;
    default:
      BadStatus("CloudflareBranded", status);
  }
  const std::string code = std::to_string(status);
  std::string title(host);
  title += " | " + code + ": " + headline;
  if (status == 502) title = std::string(host) + " | 502: Bad gateway";
  const std::string body =
      "<!DOCTYPE html>\n"
      "<!--[if lt IE 7]> <html class=\"no-js ie6 oldie\" lang=\"en-US\"> <![endif]-->\n"
      "<!--[if gt IE 8]><!--> <html class=\"no-js\" lang=\"en-US\"> <!--<![endif]-->\n"
      "<head>\n<title>" +
      title +
      "</title>\n"
      "<meta charset=\"UTF-8\" />\n"
      "<meta name=\"robots\" content=\"noindex, nofollow\" />\n"
      "<link rel=\"stylesheet\" id=\"cf_styles-css\" href=\"/cdn-cgi/styles/cf.errors.css\" />\n"
      "</head>\n<body>\n<div id=\"cf-wrapper\">\n"
      "<div id=\"cf-error-details\" class=\"p-0\">\n<header class=\"mx-auto pt-10\">\n"
      "<h1><span class=\"inline-block\">" +
      headline +
      "</span>\n"
      "<span class=\"code-label\">Error code " +
      code +
      "</span></h1>\n</header>\n"
      "<div class=\"cf-section cf-wrapper\"><h2>What happened?</h2><p>" +
      happened +
      "</p></div>\n"
      "<div class=\"cf-error-footer\"><p class=\"text-13\">"
      "<span class=\"cf-footer-item\">Cloudflare Ray ID: <strong class=\"font-semibold\">" +
      kCfRay + "</strong></span></p></div>\n</div>\n</div>\n</body>\n</html>\n";
  return BuildResponse(
      line,
      {{"Date", kDate},
       {"Content-Type", "text/html; charset=UTF-8"},
       {"Content-Length", kLength},
       {"Connection", "close"},
       {"X-Frame-Options", "SAMEORIGIN"},
       {"Referrer-Policy", "same-origin"},
       {"Cache-Control", "private, max-age=0, no-store, no-cache, must-revalidate"},
       {"Expires", "Thu, 01 Jan 1970 00:00:01 GMT"},
       {"Server", "cloudflare"},
       {"CF-RAY", std::string(kCfRay) + "-AMS"}},
      body);
}

std::string AwsAlb(int status) {
  Require5xx("AwsAlb", status);
  return BuildResponse(NginxStatusLine(status),
                       {{"Server", "awselb/2.0"},
                        {"Date", kDate},
                        {"Content-Type", "text/html"},
                        {"Content-Length", kLength},
                        {"Connection", "keep-alive"}},
                       NginxBody(status, "</body>\r\n</html>\r\n"));
}

std::string GoogleLb(int status) {
  Require5xx("GoogleLb", status);
  // Only the 502 page is documented; other statuses reuse its layout.
  const std::string body =
      "<html><head>\n"
      "<meta http-equiv=\"content-type\" content=\"text/html;charset=utf-8\">\n"
      "<title>" +
      std::to_string(status) +
      " Server Error</title>\n"
      "</head>\n"
      "<body text=#000000 bgcolor=#ffffff>\n"
      "<h1>Error: Server Error</h1>\n"
      "<h2>The server encountered a temporary error and could not complete your request."
      "<p>Please try again in 30 seconds.</h2>\n"
      "<h2></h2>\n"
      "</body></html>\n";
  return BuildResponse(StandardLine(status),
                       {{"Content-Type", "text/html; charset=UTF-8"},
                        {"Referrer-Policy", "no-referrer"},
                        {"Content-Length", kLength},
                        {"Date", kDate},
                        {"Via", "1.1 google"}},
                       body);
}

std::string Varnish(int status) {
  Require5xx("Varnish", status);
  const std::string reason =
      status == 503 ? "Backend fetch failed" : std::string(ReasonPhrase(status));
  const std::string line = std::to_string(status) + " " + reason;
  const std::string body = "<!DOCTYPE html>\n<html>\n  <head>\n    <title>" + line +
                           "</title>\n  </head>\n  <body>\n    <h1>Error " + line +
                           "</h1>\n    <p>" + reason +
                           "</p>\n    <h3>Guru Meditation:</h3>\n    <p>XID: 12345</p>\n    <hr>\n"
                           "    <p>Varnish cache server</p>\n  </body>\n</html>\n";
  return BuildResponse(line,
                       {{"Date", kDate},
                        {"Server", "Varnish"},
                        {"Content-Type", "text/html; charset=utf-8"},
                        {"Retry-After", "5"},
                        {"X-Varnish", "12345"},
                        {"Age", "0"},
                        {"Via", "1.1 varnish (Varnish/7.1)"},
                        {"Content-Length", kLength},
                        {"Connection", "keep-alive"}},
                       body);
}

std::string Fastly(std::string_view reason) {
  const std::string r(reason);
  const std::string body =
      "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
      "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\" "
      "\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd\">\n"
      "<html><head><title>503 " +
      r +
      "</title></head><body>\n"
      "<h1>Error 503 " +
      r + "</h1><p>" + r +
      "</p>\n"
      "<h3>Guru Mediation:</h3><p>Details: cache-fty21322-FTY 1572876932 1094470780</p><hr>"
      "<p>Varnish cache server</p>\n"
      "</body></html>\n";
  return BuildResponse("503 " + r,
                       {{"Server", "Varnish"},
                        {"Retry-After", "0"},
                        {"Content-Type", "text/html; charset=utf-8"},
                        {"Content-Length", kLength},
                        {"Accept-Ranges", "bytes"},
                        {"Date", kDate},
                        {"Via", "1.1 varnish"},
                        {"Connection", "close"},
                        {"X-Served-By", "cache-fty21322-FTY"},
                        {"X-Cache", "MISS"},
                        {"X-Cache-Hits", "0"},
                        {"X-Timer", "S1572876932.094460,VS0,VE15001"}},
                       body);
}

std::string Traefik(int status) {
  Require5xx("Traefik", status);
  Headers headers = {{"Content-Type", "text/plain; charset=utf-8"}};
  std::string body(ReasonPhrase(status));
  if (status == 503) {
    body = "no available server\n";  // http.Error() adds nosniff
    headers.emplace_back("X-Content-Type-Options", "nosniff");
  }
  headers.emplace_back("Date", kDate);
  headers.emplace_back("Content-Length", kLength);
  return BuildResponse(StandardLine(status), headers, body);
}

std::string Caddy(int status) {
  Require5xx("Caddy", status);
  return BuildResponse(StandardLine(status),
                       {{"Server", "Caddy"}, {"Date", kDate}, {"Content-Length", kLength}}, "");
}

std::string Akamai(int status) {
  Require5xx("Akamai", status);
  const std::string body =
      status == 504
          ? "<HTML><HEAD><TITLE>Gateway Timeout</TITLE></HEAD><BODY><H1>Gateway Timeout</H1>\n"
            "The proxy server did not receive a timely response from the upstream server.<P>\n"
            "Reference #1.1faa9d50.1386767216.b7ccfbd\n</BODY></HTML>\n"
          : "<HTML><HEAD><TITLE>Error</TITLE></HEAD><BODY>\n"
            "An error occurred while processing your request.<p>\n"
            "Reference #97.3620b144.1317759963.ac5f\n</BODY></HTML>\n";
  return BuildResponse(StandardLine(status),
                       {{"Server", "AkamaiGHost"},
                        {"Mime-Version", "1.0"},
                        {"Content-Type", "text/html"},
                        {"Content-Length", kLength},
                        {"Expires", kDate},
                        {"Date", kDate},
                        {"Connection", "close"}},
                       body);
}

std::string Kong(int status) {
  Require5xx("Kong", status);
  const char* message = "An unexpected error occurred";
  if (status == 502) message = "An invalid response was received from the upstream server";
  if (status == 503) message = "failure to get a peer from the ring-balancer";
  if (status == 504) message = "The upstream server is timing out";
  return BuildResponse(StandardLine(status),
                       {{"Date", kDate},
                        {"Content-Type", "application/json; charset=utf-8"},
                        {"Connection", "keep-alive"},
                        {"Content-Length", kLength},
                        {"X-Kong-Response-Latency", "0"},
                        {"Server", "kong/3.4.2"}},
                       std::string("{\n  \"message\":\"") + message + "\"\n}");
}

std::vector<Page> AllPages() {
  std::vector<Page> pages;
  const auto add = [&](std::string name, std::string emitter, int status, std::string raw) {
    pages.push_back({std::move(name), std::move(emitter), status, std::move(raw)});
  };
  struct ByStatus {
    const char* emitter;
    const char* prefix;
    std::string (*render)(int);
  };
  const ByStatus by_status[] = {
      {"nginx", "nginx", Nginx},       {"apache", "apache", Apache},
      {"haproxy", "haproxy", Haproxy}, {"cloudflare", "cloudflare-edge", CloudflareEdge},
      {"aws_alb", "aws-alb", AwsAlb},  {"google_lb", "google-lb", GoogleLb},
      {"varnish", "varnish", Varnish}, {"traefik", "traefik", Traefik},
      {"caddy", "caddy", Caddy},       {"akamai", "akamai", Akamai},
      {"kong", "kong", Kong},
  };
  for (const ByStatus& e : by_status) {
    for (const int status : {500, 502, 503, 504}) {
      add(std::string(e.prefix) + "-" + std::to_string(status), e.emitter, status,
          e.render(status));
    }
  }
  for (const int status : {500, 502, 503, 504, 520, 521, 522, 523, 524, 525, 526}) {
    add("cloudflare-branded-" + std::to_string(status), "cloudflare", status,
        CloudflareBranded(status));
  }
  add("envoy-no-healthy-upstream", "envoy", 503, Envoy(EnvoyReason::kNoHealthyUpstream));
  add("envoy-connect-failure", "envoy", 503, Envoy(EnvoyReason::kConnectFailure));
  add("envoy-termination", "envoy", 503, Envoy(EnvoyReason::kTermination));
  add("envoy-timeout", "envoy", 504, Envoy(EnvoyReason::kTimeout));
  add("envoy-protocol-error", "envoy", 502, Envoy(EnvoyReason::kProtocolError));
  for (const char* reason : {"first byte timeout", "backend read error", "Backend is unhealthy"}) {
    std::string name = "fastly-";
    for (const char* p = reason; *p != '\0'; ++p)
      name += *p == ' ' ? '-' : static_cast<char>(*p | 0x20);
    add(name, "fastly", 503, Fastly(reason));
  }
  return pages;
}

}  // namespace gatewatch::fleet::pages
