#pragma once
// The one HTTP listener (cpp-httplib): /healthz and /readyz for now; the API, status
// page and /metrics are added here by later work. Serves on its own thread pool.

#include <functional>
#include <memory>
#include <string>

#include "probes/result.h"
#include "probes/url.h"

namespace gatewatch::daemon {

class HttpServer {
 public:
  struct Options {
    HostPort listen;
    // Answers /readyz: true = ready; otherwise *why says what is not.
    std::function<bool(std::string* why)> ready;
  };

  explicit HttpServer(Options options);
  ~HttpServer();  // stops the server
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

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
