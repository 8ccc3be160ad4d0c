#pragma once
// The small amount of URL and address parsing gatewatch needs: http(s) URLs of
// monitors, proxy URLs, "host:port" listen addresses and IP literals.

#include <string>
#include <string_view>

#include "probes/result.h"

namespace gatewatch {

struct HttpUrl {
  std::string scheme;  // "http" or "https" (lower case)
  std::string host;    // without brackets for IPv6 literals; lower case
  int port = 0;        // explicit or the scheme's default
  bool port_explicit = false;
  std::string target;  // path and query, at least "/"
  bool host_is_ip = false;
  std::string href;    // the URL to request: as written, or with an IDN host in ASCII
};

// Accepts http:// and https:// URLs with a host, as libcurl parses them; rejects user info
// (credentials in monitor URLs would end up in logs); fragments are dropped. International
// host names are converted to their ASCII form (host and href).
Result<HttpUrl> ParseHttpUrl(std::string_view text);

struct HostPort {
  std::string host;  // IPv6 without brackets
  int port = 0;
};
// "0.0.0.0:9464", "[::1]:9464", "localhost:80". When default_port > 0 the port may be
// omitted ("127.0.0.53" -> port 53). Port 0 is accepted (a listener's "any free port");
// callers that connect reject it.
Result<HostPort> ParseHostPort(std::string_view text, int default_port = 0);

bool IsIpLiteral(std::string_view text);
bool IsIpv6Literal(std::string_view text);

}  // namespace gatewatch
