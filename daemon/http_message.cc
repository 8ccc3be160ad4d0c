#include "daemon/http_message.h"

#include <zlib.h>

#include <cctype>
#include <ctime>
#include <nlohmann/json.hpp>

#include "probes/text.h"

namespace gatewatch::daemon {

std::optional<std::string> HttpRequest::Param(const std::string& name) const {
  auto it = params.find(name);
  if (it == params.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> HttpRequest::Header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  if (it == headers.end()) return std::nullopt;
  return it->second;
}

HttpResponse HttpResponse::Text(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse HttpResponse::JsonError(int status, const std::string& message) {
  HttpResponse r;
  r.status = status;
  r.content_type = "application/json";
  // A message may quote request bytes: invalid UTF-8 is replaced, never thrown.
  r.body = nlohmann::json{{"error", message}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  return r;
}

const char* ReasonPhrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "";
  }
}

namespace {

bool Clean(const std::string& s) { return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos; }

// Whether Accept-Encoding admits gzip: "gzip", "x-gzip" or "*", without q=0.
bool AcceptsGzip(const RequestHead& request) {
  const std::optional<std::string> accept = request.Header("accept-encoding");
  if (!accept) return false;
  std::string_view rest = *accept;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    std::string item = AsciiLower(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    std::erase_if(item, [](char c) { return c == ' ' || c == '\t'; });
    const size_t semi = item.find(';');
    const std::string coding = item.substr(0, semi);
    if (coding != "gzip" && coding != "x-gzip" && coding != "*") continue;
    const std::string params = semi == std::string::npos ? "" : item.substr(semi + 1);
    const size_t q = params.find("q=");
    if (q != std::string::npos) {
      const std::string value = params.substr(q + 2);
      if (value.find_first_not_of("0.") == std::string::npos) continue;  // q=0, q=0.0, q=0.000
    }
    return true;
  }
  return false;
}

bool Compressible(const std::string& content_type) {
  const std::string type = AsciiLower(content_type.substr(0, content_type.find(';')));
  return type.rfind("text/", 0) == 0 || type == "application/json" || type == "application/openmetrics-text" ||
         type == "application/javascript" || type == "image/svg+xml";
}

std::optional<std::string> Gzip(const std::string& in) {
  z_stream z{};
  // windowBits 15 + 16: a gzip wrapper, not zlib's.
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return std::nullopt;
  std::string out;
  out.resize(deflateBound(&z, static_cast<uLong>(in.size())) + 32);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  const size_t written = out.size() - z.avail_out;
  deflateEnd(&z);
  if (rc != Z_STREAM_END) return std::nullopt;
  out.resize(written);
  return out;
}

std::string HttpDate() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[64];
  const size_t n = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return std::string(buf, n);
}

}  // namespace

std::string SerializeResponse(const HttpResponse& response, const RequestHead& request, bool keep_alive) {
  const std::string* body = &response.body;
  std::optional<std::string> gzipped;
  // Bodies under 1 KiB gain nothing from compression; a body over 4 GiB is beyond zlib's
  // single-call counters and is sent as it is.
  if (response.body.size() >= 1024 && response.body.size() < (uint64_t{1} << 32) &&
      Compressible(response.content_type) && AcceptsGzip(request)) {
    gzipped = Gzip(response.body);
    if (gzipped) body = &*gzipped;
  }
  std::string out;
  out.reserve(256 + (request.method == "HEAD" ? 0 : body->size()));
  out += "HTTP/1.1 " + std::to_string(response.status) + " " + ReasonPhrase(response.status) + "\r\n";
  out += "Date: " + HttpDate() + "\r\n";
  if (Clean(response.content_type)) out += "Content-Type: " + response.content_type + "\r\n";
  out += "Content-Length: " + std::to_string(body->size()) + "\r\n";
  if (gzipped) out += "Content-Encoding: gzip\r\n";
  if (Compressible(response.content_type)) out += "Vary: Accept-Encoding\r\n";
  out += keep_alive ? (request.minor_version == 0 ? "Connection: keep-alive\r\n" : "") : "Connection: close\r\n";
  for (const auto& [name, value] : response.headers) {
    if (name.empty() || !Clean(name) || !Clean(value) || name.find(':') != std::string::npos) continue;
    out += name + ": " + value + "\r\n";
  }
  out += "\r\n";
  if (request.method != "HEAD") out += *body;
  return out;
}

}  // namespace gatewatch::daemon
