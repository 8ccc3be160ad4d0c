#include "daemon/http_server.h"

#include <openssl/crypto.h>

#include <regex>
#include <vector>

#include "probes/text.h"

namespace gatewatch::daemon {

bool SecretEquals(std::string_view presented, std::string_view expected) {
  if (expected.empty()) return false;
  // Compare over the expected length whatever is presented, so timing says nothing about
  // how much matched; the length check comes last.
  std::string padded(presented.substr(0, expected.size()));
  padded.resize(expected.size(), '\0');
  const bool same = CRYPTO_memcmp(padded.data(), expected.data(), expected.size()) == 0;
  return same && presented.size() == expected.size();
}

namespace {

// std::regex matches by recursion, one level per character of some patterns: paths
// longer than any route's are refused before matching.
constexpr size_t kMaxRoutedPath = 2048;

struct Route {
  std::string method;  // "GET" (answers HEAD too) or "POST"
  std::regex pattern;
  HttpHandler handler;
  std::function<std::string()> bearer_token;  // set: the route needs the token
  bool on_event_loop = false;                 // never blocks: runs on the listener's loop
};

HttpRequest ToRequest(const RequestHead& head, std::vector<std::string> matches, std::string body) {
  HttpRequest r;
  r.method = head.method;
  r.path = head.path;
  r.matches = std::move(matches);
  for (const auto& [k, v] : head.params) r.params.emplace(k, v);
  for (const auto& [k, v] : head.headers) r.headers.emplace(k, v);
  r.body = std::move(body);
  return r;
}

// Which part of a request head is not UTF-8 (every handler reads text): "" when all is.
std::string NotUtf8(const RequestHead& head) {
  if (!IsValidUtf8(head.path)) return "the request path";
  for (const auto& [k, v] : head.params) {
    if (!IsValidUtf8(k) || !IsValidUtf8(v)) return "a query parameter";
  }
  return "";
}

// Why a bearer-token route refuses the request, or nothing when the token matches.
std::optional<HttpResponse> RefuseToken(const RequestHead& head, const std::function<std::string()>& bearer_token) {
  const std::string token = bearer_token();
  if (token.empty()) {
    return HttpResponse::JsonError(403, "write endpoints are disabled: server.api_token is not configured");
  }
  const std::string auth = head.Header("authorization").value_or("");
  constexpr std::string_view kBearer = "Bearer ";
  if (auth.rfind(kBearer, 0) != 0 || !SecretEquals(std::string_view(auth).substr(kBearer.size()), token)) {
    HttpResponse r = HttpResponse::JsonError(401, "missing or wrong bearer token");
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    return r;
  }
  return std::nullopt;
}

}  // namespace

struct HttpServer::Impl {
  Options options;
  std::vector<Route> routes;
  std::unique_ptr<HttpListener> listener;

  HeadDecision Decide(const RequestHead& head) const {
    if (const std::string part = NotUtf8(head); !part.empty()) {
      return {HttpResponse::JsonError(400, part + " is not valid UTF-8"), nullptr, false};
    }
    if (head.path.size() > kMaxRoutedPath) {
      return {HttpResponse::JsonError(414, "the request path is longer than " + std::to_string(kMaxRoutedPath) + " bytes"),
              nullptr, false};
    }
    const std::string& method = head.method == "HEAD" ? std::string("GET") : head.method;
    std::vector<std::string> allowed;
    for (const Route& route : routes) {
      std::smatch m;
      if (!std::regex_match(head.path, m, route.pattern)) continue;
      if (route.method != method) {
        allowed.push_back(route.method == "GET" ? "GET, HEAD" : route.method);
        continue;
      }
      if (route.bearer_token) {
        if (auto refused = RefuseToken(head, route.bearer_token)) return {std::move(refused), nullptr, false};
      }
      std::vector<std::string> matches;
      for (size_t i = 1; i < m.size(); ++i) matches.push_back(m[i]);
      HeadDecision d;
      d.on_event_loop = route.on_event_loop;
      d.handler = [handler = &route.handler, head, matches = std::move(matches)](std::string body) mutable {
        if (!IsValidUtf8(body)) return HttpResponse::JsonError(400, "the request body is not valid UTF-8");
        return (*handler)(ToRequest(head, std::move(matches), std::move(body)));
      };
      return d;
    }
    if (!allowed.empty()) {
      std::string allow;
      for (const std::string& a : allowed) allow += (allow.empty() ? "" : ", ") + a;
      HttpResponse r = HttpResponse::JsonError(405, "method " + Quoted(head.method) + " is not allowed here");
      r.headers.emplace_back("Allow", allow);
      return {std::move(r), nullptr, false};
    }
    return {HttpResponse::JsonError(404, "not found"), nullptr, false};
  }
};

HttpServer::HttpServer(Options options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  // Health answers come from the event loop itself: no worker, however busy, delays them.
  impl_->routes.push_back(Route{"GET", std::regex("/healthz"),
                                [](const HttpRequest&) { return HttpResponse::Text(200, "ok\n"); }, nullptr, true});
  impl_->routes.push_back(Route{"GET", std::regex("/readyz"),
                                [this](const HttpRequest&) {
                                  std::string why;
                                  const bool ready = !impl_->options.ready || impl_->options.ready(&why);
                                  return ready ? HttpResponse::Text(200, "ready\n")
                                               : HttpResponse::Text(503, "not ready: " + why + "\n");
                                },
                                nullptr, true});
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Get(const std::string& pattern, HttpHandler handler) {
  impl_->routes.push_back(Route{"GET", std::regex(pattern), std::move(handler), nullptr, false});
}

void HttpServer::Post(const std::string& pattern, HttpHandler handler, std::function<std::string()> bearer_token) {
  impl_->routes.push_back(Route{"POST", std::regex(pattern), std::move(handler), std::move(bearer_token), false});
}

Result<int> HttpServer::Start() {
  HttpListener::Options lo;
  lo.listen = impl_->options.listen;
  lo.tls_cert = impl_->options.tls_cert;
  lo.tls_key = impl_->options.tls_key;
  lo.limits = impl_->options.limits;
  lo.limits.request.max_body_bytes = impl_->options.max_body_bytes;
  lo.on_head = [impl = impl_.get()](const RequestHead& head) { return impl->Decide(head); };
  impl_->listener = std::make_unique<HttpListener>(std::move(lo));
  return impl_->listener->Start();
}

void HttpServer::Stop(std::chrono::milliseconds drain) {
  if (impl_->listener) impl_->listener->Stop(drain);
}

ListenerStats HttpServer::Stats() const { return impl_->listener ? impl_->listener->Stats() : ListenerStats{}; }

}  // namespace gatewatch::daemon
