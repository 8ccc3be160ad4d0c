#include "fleet/http_text.h"

namespace gatewatch::fleet {

std::string_view ReasonPhrase(int code) {
  switch (code) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Unknown";
  }
}

std::string BuildResponse(std::string_view status_line,
                          const std::vector<std::pair<std::string, std::string>>& headers,
                          std::string_view body) {
  std::string out = "HTTP/1.1 ";
  out.append(status_line).append("\r\n");
  for (const auto& [name, value] : headers) {
    out.append(name).append(": ");
    out.append(value == kBodyLength ? std::to_string(body.size()) : value).append("\r\n");
  }
  out += "\r\n";
  out.append(body);
  return out;
}

}  // namespace gatewatch::fleet
