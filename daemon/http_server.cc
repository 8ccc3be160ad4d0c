#include "daemon/http_server.h"

#include <httplib.h>

#include <cstring>
#include <thread>

#include "probes/log.h"

namespace gatewatch::daemon {

struct HttpServer::Impl {
  Options options;
  httplib::Server server;
  std::thread thread;
};

HttpServer::HttpServer(Options options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  auto& srv = impl_->server;
  // httplib's default also sets SO_REUSEPORT, which would let a second gatewatch share
  // the port silently; a port in use must be a start-up error instead.
  srv.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  srv.set_payload_max_length(1 << 20);
  srv.set_read_timeout(10, 0);
  srv.set_write_timeout(10, 0);
  srv.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain; charset=utf-8");
  });
  srv.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    std::string why;
    const bool ready = !impl_->options.ready || impl_->options.ready(&why);
    res.status = ready ? 200 : 503;
    res.set_content(ready ? "ready\n" : "not ready: " + why + "\n", "text/plain; charset=utf-8");
  });
}

HttpServer::~HttpServer() { Stop(); }

Result<int> HttpServer::Start() {
  const HostPort& listen = impl_->options.listen;
  int port = listen.port;
  if (port == 0) {
    port = impl_->server.bind_to_any_port(listen.host);
    if (port < 0) port = 0;
  } else if (!impl_->server.bind_to_port(listen.host, port)) {
    port = 0;
  }
  if (port == 0) {
    return Error("cannot listen on " + listen.host + ":" + std::to_string(listen.port) + ": " +
                 std::strerror(errno));
  }
  impl_->thread = std::thread([this] { impl_->server.listen_after_bind(); });
  return port;
}

void HttpServer::Stop() {
  if (!impl_->thread.joinable()) return;
  impl_->server.stop();
  impl_->thread.join();
}

}  // namespace gatewatch::daemon
