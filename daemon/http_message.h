#pragma once
// What the listener's handlers see and return, and how a response goes on the wire. No
// sockets here: daemon/http_listener.h moves the bytes, daemon/http_server.h routes.

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "daemon/http_parser.h"

namespace gatewatch::daemon {

struct HttpRequest {
  std::string method;
  std::string path;  // percent-decoded
  std::vector<std::string> matches;  // the route pattern's capture groups
  std::multimap<std::string, std::string> params;  // query parameters, decoded
  std::multimap<std::string, std::string> headers;  // names lower-case
  std::string body;

  // The first value of a query parameter, if present.
  std::optional<std::string> Param(const std::string& name) const;
  std::optional<std::string> Header(const std::string& lower_name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;

  static HttpResponse Text(int status, std::string body);
  // {"error": message} with the given status (API errors are JSON).
  static HttpResponse JsonError(int status, const std::string& message);
};

// The standard reason phrase of a status ("Not Found"), or "" for one without.
const char* ReasonPhrase(int status);

// The response as HTTP/1.1 bytes for the request with head `request`: Content-Length,
// Date, `Connection: close` unless keep_alive, no body for HEAD, and a gzip body when the
// client accepts gzip and the body is text worth compressing. Header names or values with
// CR, LF or NUL are dropped (a handler cannot split the response).
std::string SerializeResponse(const HttpResponse& response, const RequestHead& request, bool keep_alive);

}  // namespace gatewatch::daemon
