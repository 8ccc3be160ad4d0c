#include "daemon/http_server.h"

#include <httplib.h>
#include <openssl/crypto.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "probes/log.h"
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

bool SecretEquals(std::string_view presented, std::string_view expected) {
  if (expected.empty()) return false;
  // Compare over the expected length whatever is presented, so timing says nothing about
  // how much matched; the length check comes last.
  std::string padded(presented.substr(0, expected.size()));
  padded.resize(expected.size(), '\0');
  const bool same = CRYPTO_memcmp(padded.data(), expected.data(), expected.size()) == 0;
  return same && presented.size() == expected.size();
}

struct HttpServer::Impl {
  Options options;
  std::unique_ptr<httplib::Server> server;
  std::thread thread;
  std::atomic<bool> listen_returned{false};
};

namespace {

HttpRequest ToRequest(const httplib::Request& req) {
  HttpRequest r;
  r.method = req.method;
  r.path = req.path;
  for (size_t i = 1; i < req.matches.size(); ++i) r.matches.push_back(req.matches[i]);
  for (const auto& [k, v] : req.params) r.params.emplace(k, v);
  for (const auto& [k, v] : req.headers) {
    std::string name = k;
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    r.headers.emplace(std::move(name), v);
  }
  r.body = req.body;
  return r;
}

void Apply(const HttpResponse& from, httplib::Response& to) {
  to.status = from.status;
  for (const auto& [k, v] : from.headers) to.set_header(k, v);
  to.set_content(from.body, from.content_type);
}

// Which part of a request is not UTF-8 (every handler reads text): "" when all of it is.
std::string NotUtf8(const httplib::Request& req) {
  if (!IsValidUtf8(req.path)) return "the request path";
  for (const auto& [k, v] : req.params) {
    if (!IsValidUtf8(k) || !IsValidUtf8(v)) return "a query parameter";
  }
  if (!IsValidUtf8(req.body)) return "the request body";
  return "";
}

// Wraps a handler: a request that is not UTF-8 gets a 400 before it; exceptions become a
// logged 500, never a crashed thread.
httplib::Server::Handler Wrap(HttpHandler handler) {
  return [handler = std::move(handler)](const httplib::Request& req, httplib::Response& res) {
    if (const std::string part = NotUtf8(req); !part.empty()) {
      Apply(HttpResponse::JsonError(400, part + " is not valid UTF-8"), res);
      return;
    }
    try {
      Apply(handler(ToRequest(req)), res);
    } catch (const std::exception& e) {
      log::Error("http handler failed").Kv("path", req.path).Kv("error", e.what());
      Apply(HttpResponse::JsonError(500, "internal error"), res);
    }
  };
}

bool Readable(const std::string& path) {
  std::ifstream in(path);
  return static_cast<bool>(in);
}

}  // namespace

HttpServer::HttpServer(Options options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  if (!impl_->options.tls_cert.empty()) {
    impl_->server = std::make_unique<httplib::SSLServer>(impl_->options.tls_cert.c_str(),
                                                         impl_->options.tls_key.c_str());
  } else {
    impl_->server = std::make_unique<httplib::Server>();
  }
  auto& srv = *impl_->server;
  // httplib's default also sets SO_REUSEPORT, which would let a second gatewatch share
  // the port silently; a port in use must be a start-up error instead.
  srv.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  srv.set_payload_max_length(impl_->options.max_body_bytes);
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

void HttpServer::Get(const std::string& pattern, HttpHandler handler) {
  impl_->server->Get(pattern, Wrap(std::move(handler)));
}

void HttpServer::Post(const std::string& pattern, HttpHandler handler,
                      std::function<std::string()> bearer_token) {
  if (bearer_token) {
    handler = [inner = std::move(handler), bearer_token = std::move(bearer_token)](const HttpRequest& req) {
      const std::string token = bearer_token();
      if (token.empty()) {
        return HttpResponse::JsonError(403, "write endpoints are disabled: server.api_token is not configured");
      }
      const std::string auth = req.Header("authorization").value_or("");
      constexpr std::string_view kBearer = "Bearer ";
      if (auth.rfind(kBearer, 0) != 0 || !SecretEquals(std::string_view(auth).substr(kBearer.size()), token)) {
        HttpResponse r = HttpResponse::JsonError(401, "missing or wrong bearer token");
        r.headers.emplace_back("WWW-Authenticate", "Bearer");
        return r;
      }
      return inner(req);
    };
  }
  impl_->server->Post(pattern, Wrap(std::move(handler)));
}

Result<int> HttpServer::Start() {
  if (!impl_->options.tls_cert.empty()) {
    // httplib's SSLServer with an unreadable key is silently invalid: say why.
    for (const std::string* file : {&impl_->options.tls_cert, &impl_->options.tls_key}) {
      if (!Readable(*file)) return Error("cannot read " + *file + ": " + std::strerror(errno));
    }
    if (!impl_->server->is_valid()) {
      return Error("server.tls_cert / server.tls_key are not a valid certificate and key pair");
    }
  }
  const HostPort& listen = impl_->options.listen;
  int port = listen.port;
  if (port == 0) {
    port = impl_->server->bind_to_any_port(listen.host);
    if (port < 0) port = 0;
  } else if (!impl_->server->bind_to_port(listen.host, port)) {
    port = 0;
  }
  if (port == 0) {
    return Error("cannot listen on " + listen.host + ":" + std::to_string(listen.port) + ": " +
                 std::strerror(errno));
  }
  impl_->thread = std::thread([this] {
    impl_->server->listen_after_bind();
    impl_->listen_returned.store(true);
  });
  return port;
}

void HttpServer::Stop() {
  if (!impl_->thread.joinable()) return;
  // cpp-httplib 0.11 ignores a stop() that comes before its listen loop runs (accept()
  // would then block for ever): a SIGTERM right after start must still stop. Bounded: a
  // loop that never starts (listen_after_bind failed) has returned already.
  for (int i = 0; i < 500 && !impl_->server->is_running() && !impl_->listen_returned.load(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  impl_->server->stop();
  impl_->thread.join();
}

}  // namespace gatewatch::daemon
