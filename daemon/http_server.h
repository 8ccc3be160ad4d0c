#pragma once
// The one HTTP listener's routes: /healthz and /readyz built in; the API, status page and
// /metrics register their handlers as plain functions of HttpRequest. Routing, the UTF-8
// rule and bearer tokens are decided from a request's head, before its body is read;
// handlers then run on the listener's worker threads and must be thread-safe. Sockets,
// TLS and the connection bounds are daemon/http_listener.h's.

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "daemon/http_listener.h"
#include "daemon/http_message.h"
#include "probes/result.h"
#include "probes/url.h"

namespace gatewatch::daemon {

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
    size_t max_body_bytes = 1 << 20;  // larger request bodies get 413, in any encoding
    ListenerLimits limits;  // connections and deadlines (its body limit is max_body_bytes)
  };

  explicit HttpServer(Options options);
  ~HttpServer();  // stops the server
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Routes; `pattern` is a regex matched against the whole decoded path. Register before
  // Start(). A route with `bearer_token` set answers 403 when the token is empty (not
  // configured) and 401 unless `Authorization: Bearer <token>` matches, without reading
  // the request body. GET routes answer HEAD too; a path served only for another method
  // answers 405 with Allow.
  void Get(const std::string& pattern, HttpHandler handler);
  void Post(const std::string& pattern, HttpHandler handler,
            std::function<std::string()> bearer_token = nullptr);

  // Binds and starts serving on a background thread; returns the bound port (the
  // configured one, or the kernel's choice for port 0). Call once.
  Result<int> Start();
  // Stops accepting and closes idle connections; requests in progress get up to `drain`
  // to finish; joins the threads. Idempotent.
  void Stop(std::chrono::milliseconds drain = std::chrono::seconds(1));

  ListenerStats Stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gatewatch::daemon
