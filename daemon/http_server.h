#pragma once
// The one HTTP listener (cpp-httplib): /healthz and /readyz built in; the API, status
// page and /metrics register their handlers as plain functions of HttpRequest, so no
// other file needs httplib. Serves on its own thread pool; handlers run on those threads
// and must be thread-safe.

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "probes/result.h"
#include "probes/url.h"

namespace gatewatch::daemon {

struct HttpRequest {
  std::string method;
  std::string path;
  std::vector<std::string> matches;  // the route pattern's capture groups
  std::multimap<std::string, std::string> params;  // query parameters
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

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// Constant-time comparison of a presented secret with the configured one.
bool SecretEquals(std::string_view presented, std::string_view expected);

class HttpServer {
 public:
  struct Options {
    HostPort listen;
    // Answers /readyz: true = ready; otherwise *why says what is not.
    std::function<bool(std::string* why)> ready;
    std::string tls_cert;  // both set: HTTPS
    std::string tls_key;
    size_t max_body_bytes = 1 << 20;  // larger request bodies get 413
  };

  explicit HttpServer(Options options);
  ~HttpServer();  // stops the server
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Routes; `pattern` is a regex on the path (as cpp-httplib matches it). Register before
  // Start(). A route with `bearer_token` set answers 403 when the token is empty
  // (not configured) and 401 unless `Authorization: Bearer <token>` matches.
  void Get(const std::string& pattern, HttpHandler handler);
  void Post(const std::string& pattern, HttpHandler handler,
            std::function<std::string()> bearer_token = nullptr);

  // Binds and starts serving on a background thread; returns the bound port (the
  // configured one, or the kernel's choice for port 0). Call once.
  Result<int> Start();
  // Stops accepting, finishes in-flight requests, joins the thread. Idempotent.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gatewatch::daemon
