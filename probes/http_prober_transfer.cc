// A probe's curl transfer: the easy handle set up for the request and the route, the
// callbacks that read the response head and body, the TLS phase deadline, and what is read
// back into the ProbeResult when the transfer ends.

#include <curl/curl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "probes/classify.h"
#include "probes/http_prober_impl.h"
#include "probes/text.h"
#include "probes/url.h"

namespace gatewatch::probes {
namespace {

using std::chrono::duration_cast;
using std::chrono::microseconds;
using std::chrono::milliseconds;

constexpr size_t kMaxHeaderBytes = 64 * 1024;  // per response; beyond: malformed_response

size_t WriteCallback(char* data, size_t size, size_t n, void* user) {
  auto* a = static_cast<Attempt*>(user);
  const size_t len = size * n;
  const size_t room = static_cast<size_t>(a->body_limit) -
                      std::min(a->body.size(), static_cast<size_t>(a->body_limit));
  const size_t take = std::min(room, len);
  a->body.append(data, take);
  if (take < len) {
    a->body_capped = true;  // stop reading here; treated as a normal end
    return 0;
  }
  return len;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view lower) {
  if (a.size() != lower.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != lower[i]) return false;
  }
  return true;
}

bool IsSelectedHeader(std::string_view name) {
  for (std::string_view s : kSelectedHeaders) {
    if (EqualsIgnoreCase(name, s)) return true;
  }
  return false;
}

// "HTTP/1.1 502 Bad Gateway" -> 502; 0 when there is no number.
int StatusOf(std::string_view status_line) {
  const size_t space = status_line.find(' ');
  if (space == std::string_view::npos) return 0;
  int status = 0;
  for (size_t i = space + 1; i < status_line.size() && i < space + 4; ++i) {
    const char c = status_line[i];
    if (c < '0' || c > '9') return 0;
    status = status * 10 + (c - '0');
  }
  return status;
}

// "HTTP/1.1 502 Connection refused\r\n" -> "Connection refused"; empty when there is none.
std::string_view StatusText(std::string_view status_line) {
  const size_t first = status_line.find(' ');
  if (first == std::string_view::npos) return {};
  const size_t second = status_line.find(' ', first + 1);
  if (second == std::string_view::npos) return {};
  return TrimHttpSpace(status_line.substr(second + 1));
}

size_t HeaderCallback(char* data, size_t size, size_t n, void* user) {
  auto* a = static_cast<Attempt*>(user);
  const size_t len = size * n;
  const std::string_view line(data, len);
  const bool status_line = line.rfind("HTTP/", 0) == 0;
  if (status_line) {  // a new response (redirect, 100-continue)
    a->headers.clear();
    a->header_bytes = 0;
    const int status = StatusOf(line);
    a->head_status = status;
    a->head_complete = false;
    a->keep_all_headers = a->wants_all_headers || status >= 500;
    a->status_text.clear();
    if (status >= 500) a->status_text = std::string(StatusText(line));
  }
  a->header_bytes += len;
  if (a->header_bytes > kMaxHeaderBytes) {
    a->headers_too_large = true;
    return 0;
  }
  if (line == "\r\n" || line == "\n") {
    // An interim 1xx head ends too, but the real response's head is still to come.
    a->head_complete = a->head_status >= 200;
    return len;
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos || status_line) return len;
  const std::string_view name = TrimHttpSpace(line.substr(0, colon));
  if (!a->keep_all_headers && !IsSelectedHeader(name)) return len;  // nobody reads it
  a->headers.emplace_back(AsciiLower(name), std::string(TrimHttpSpace(line.substr(colon + 1))));
  return len;
}

bool SocketConnected(curl_socket_t fd) {
  if (fd == CURL_SOCKET_BAD) return false;
  sockaddr_storage peer{};
  socklen_t len = sizeof peer;
  return getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0;
}

curl_socket_t OpenSocket(void* user, curlsocktype, curl_sockaddr* addr) {
  auto* a = static_cast<Attempt*>(user);
  const curl_socket_t fd = ::socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
  if (fd >= 0) a->socket = fd;
  return fd < 0 ? CURL_SOCKET_BAD : fd;
}

int CloseSocket(void* user, curl_socket_t fd) {
  auto* a = static_cast<Attempt*>(user);
  if (fd == a->socket) {
    // Ask the socket only when curl has no connect time (a system call per probe saved).
    curl_off_t connect_us = 0;
    if (!a->tcp_connected && a->easy != nullptr) {
      curl_easy_getinfo(a->easy, CURLINFO_CONNECT_TIME_T, &connect_us);
    }
    a->tcp_connected = a->tcp_connected || connect_us > 0 || SocketConnected(fd);
    a->socket = CURL_SOCKET_BAD;
  }
  return ::close(fd);
}

}  // namespace

std::shared_ptr<const MonitorPrep> HttpProber::Impl::PrepFor(
    const std::shared_ptr<const MonitorConfig>& m) {
  // A live weak_ptr at this address is this very config (two live objects never share
  // an address); a dead one is a config freed since, whose address was reused.
  if (auto it = preps.find(m.get()); it != preps.end() && !it->second->config.expired()) {
    return it->second;
  }
  auto prep = std::make_shared<MonitorPrep>();
  prep->config = m;
  if (auto url = ParseHttpUrl(m->url)) {
    prep->url = std::move(*url);
  } else {
    prep->url_error = url.error();
  }
  for (const auto& [name, value] : m->probe.headers) {
    prep->request_headers = curl_slist_append(prep->request_headers, (name + ": " + value).c_str());
  }
  preps[m.get()] = prep;
  if (preps.size() >= preps_sweep_at) {  // drop configs gone since (reloads)
    std::erase_if(preps, [](const auto& kv) { return kv.second->config.expired(); });
    preps_sweep_at = std::max<size_t>(64, 2 * preps.size());
  }
  return prep;
}

CURL* HttpProber::Impl::AcquireHandle() {
  if (idle_handles.empty()) {
    handles_created.fetch_add(1);
    return curl_easy_init();
  }
  CURL* e = idle_handles.back();
  idle_handles.pop_back();
  return e;
}

// Back to libcurl's defaults, so nothing of the finished probe (method, body, headers,
// proxy, TLS options, callbacks pointing at its Attempt) reaches the next one; the
// handle keeps only its buffers. Its connection is already closed (FORBID_REUSE).
void HttpProber::Impl::ReleaseHandle(CURL* e) {
  curl_easy_reset(e);
  if (idle_handles.size() < static_cast<size_t>(options.max_in_flight)) {
    idle_handles.push_back(e);
  } else {
    curl_easy_cleanup(e);
  }
}

void HttpProber::Impl::StartTransfer(Attempt& a, const std::string& ip) {
  a.state = Attempt::State::kTransfer;
  const ProbeSettings& p = a.job->monitor->probe;
  const auto now = std::chrono::steady_clock::now();
  const long remaining_ms =
      std::max<long>(1, duration_cast<milliseconds>(a.deadline - now).count());
  CURL* e = AcquireHandle();
  a.easy = e;
  SetRequestOptions(e, a, remaining_ms);
  SetRouteOptions(e, a, ip);
  if (p.tls_timeout && a.url().scheme == "https") {
    const uint64_t id = a.id;
    const Duration tls_timeout = *p.tls_timeout;
    timers.emplace(now + tls_timeout,
                   [this, id, tls_timeout] { CheckTlsDeadline(id, tls_timeout); });
  }
  curl_multi_add_handle(multi, e);
}

// What is asked, how it is read, and the limits: the same whatever the route.
void HttpProber::Impl::SetRequestOptions(CURL* e, Attempt& a, long remaining_ms) {
  const MonitorConfig& m = *a.job->monitor;
  const ProbeSettings& p = m.probe;
  curl_easy_setopt(e, CURLOPT_PRIVATE, &a);
  curl_easy_setopt(e, CURLOPT_URL, a.url().href.c_str());
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);  // measure DNS, connect and TLS every time
  curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
  // A reused handle would otherwise resume the last TLS session with the same host: a
  // cheaper handshake, and no certificate to read facts from.
  curl_easy_setopt(e, CURLOPT_SSL_SESSIONID_CACHE, 0L);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, a.errbuf);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, remaining_ms);
  const long connect_ms =
      p.connect_timeout
          ? std::min<long>(remaining_ms, static_cast<long>(p.connect_timeout->count()))
          : remaining_ms;
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
  curl_easy_setopt(e, CURLOPT_USERAGENT, p.user_agent.c_str());
  if (a.prep->request_headers != nullptr)
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, a.prep->request_headers);
  if (p.method == "HEAD") {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else if (p.method != "GET") {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, p.method.c_str());
  }
  if (!p.body.empty()) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(p.body.size()));
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, p.body.c_str());
  }
  if (p.follow_redirects) {
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, static_cast<long>(kMaxRedirects));
  }
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, WriteCallback);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &a);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, HeaderCallback);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, &a);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, OpenSocket);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, &a);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, CloseSocket);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, &a);
  // One CA store for every probe: a CA *file* is cached by libcurl 7.88, a CA path is not.
  curl_easy_setopt(e, CURLOPT_CAINFO, options.ca_file.c_str());
  curl_easy_setopt(e, CURLOPT_CAPATH, nullptr);
  curl_easy_setopt(e, CURLOPT_CA_CACHE_TIMEOUT, 24L * 3600);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, p.tls_skip_verify ? 0L : 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, p.tls_skip_verify ? 0L : 2L);
  curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, SslCtxCallback);
  curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, &a.tls);
}

// Where the connection goes: the resolved address, the region's proxy and source address.
void HttpProber::Impl::SetRouteOptions(CURL* e, Attempt& a, const std::string& ip) {
  const RegionConfig& region = *a.job->region;
  const HttpUrl& url = a.url();
  if (!ip.empty() && !url.host_is_ip) {
    // Per handle, unlike CURLOPT_RESOLVE (shared by the multi handle: regions would mix).
    const std::string target = ip.find(':') != std::string::npos ? "[" + ip + "]" : ip;
    const std::string host =
        url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host;
    a.connect_to = curl_slist_append(nullptr, (host + ":" + std::to_string(url.port) + ":" +
                                               target + ":" + std::to_string(url.port))
                                                  .c_str());
    curl_easy_setopt(e, CURLOPT_CONNECT_TO, a.connect_to);
  }
  if (region.proxy.empty()) {
    // Direct means direct: never an http_proxy/https_proxy/all_proxy from the environment
    // (it would silently change the vantage point). Also spares libcurl the getenv calls.
    curl_easy_setopt(e, CURLOPT_PROXY, "");
  } else {
    curl_easy_setopt(e, CURLOPT_PROXY, region.proxy.c_str());
    // Tunnel plain http too: otherwise the proxy's own error page would be recorded as
    // the target's 5xx.
    curl_easy_setopt(e, CURLOPT_HTTPPROXYTUNNEL, 1L);
    curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
  }
  if (!region.source_address.empty()) {
    curl_easy_setopt(e, CURLOPT_INTERFACE, ("host!" + region.source_address).c_str());
  }
}

// The TLS phase has its own limit: TCP connected + tls_timeout. libcurl 7.88 has no
// separate TLS timeout and reports no connect time while the handshake runs, so the
// engine asks the socket: while TCP is not up it looks again soon; once it is, the
// handshake is taken to have started when it was last seen unconnected (the error is at
// most one re-check interval, early rather than late).
void HttpProber::Impl::CheckTlsDeadline(uint64_t id, Duration tls_timeout) {
  auto it = attempts.find(id);
  if (it == attempts.end() || it->second->easy == nullptr) return;
  Attempt& a = *it->second;
  curl_off_t app_us = 0;
  curl_easy_getinfo(a.easy, CURLINFO_APPCONNECT_TIME_T, &app_us);
  if (app_us > 0) return;  // handshake done in time
  const auto now = std::chrono::steady_clock::now();
  const Duration recheck = std::min<Duration>(tls_timeout / 4 + Duration(1), Duration(100));
  if (!SocketConnected(a.socket)) {
    a.last_seen_unconnected = now;
    timers.emplace(now + recheck, [this, id, tls_timeout] { CheckTlsDeadline(id, tls_timeout); });
    return;
  }
  a.tcp_connected = true;
  const SteadyTime transfer_start = a.started + a.resolve.value_or(microseconds(0));
  const SteadyTime limit = std::max(transfer_start, a.last_seen_unconnected) + tls_timeout;
  if (now >= limit) {
    Abort(id, Outcome::kTlsError,
          "TLS handshake did not finish within " + FormatDuration(tls_timeout));
    return;
  }
  timers.emplace(limit, [this, id, tls_timeout] { CheckTlsDeadline(id, tls_timeout); });
}

void HttpProber::Impl::Abort(uint64_t id, Outcome outcome, std::string detail) {
  auto it = attempts.find(id);
  if (it == attempts.end()) return;
  it->second->engine_outcome = outcome;
  it->second->engine_detail = std::move(detail);
  Finish(id, CURLE_ABORTED_BY_CALLBACK);
}

// What libcurl knows about the transfer: into the facts to classify and the result.
void HttpProber::Impl::ReadTransfer(Attempt& a, TransferFacts& f, ProbeResult& r, int curl_code) {
  long os_errno = 0, connect_code = 0, status = 0, version = 0;
  curl_easy_getinfo(a.easy, CURLINFO_OS_ERRNO, &os_errno);
  curl_easy_getinfo(a.easy, CURLINFO_HTTP_CONNECTCODE, &connect_code);
  curl_easy_getinfo(a.easy, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(a.easy, CURLINFO_HTTP_VERSION, &version);
  curl_off_t lookup = 0, connect = 0, app = 0, pre = 0, first_byte = 0, total_us = 0;
  curl_easy_getinfo(a.easy, CURLINFO_NAMELOOKUP_TIME_T, &lookup);
  curl_easy_getinfo(a.easy, CURLINFO_CONNECT_TIME_T, &connect);
  curl_easy_getinfo(a.easy, CURLINFO_APPCONNECT_TIME_T, &app);
  curl_easy_getinfo(a.easy, CURLINFO_PRETRANSFER_TIME_T, &pre);
  curl_easy_getinfo(a.easy, CURLINFO_STARTTRANSFER_TIME_T, &first_byte);
  curl_easy_getinfo(a.easy, CURLINFO_TOTAL_TIME_T, &total_us);
  f.os_errno = static_cast<int>(os_errno);
  f.proxy_connect_code = connect_code;
  f.connected = connect > 0 || a.tcp_connected || SocketConnected(a.socket);
  f.tls_done = app > 0;
  f.headers_received = first_byte > 0 && status > 0;
  f.headers_complete = f.headers_received && a.head_complete;
  f.http_status = static_cast<int>(status);
  r.http_status = static_cast<int>(status);
  if (f.connected) r.phases.connect = microseconds(connect - lookup);
  if (f.https && f.tls_done) r.phases.tls = microseconds(app - connect);
  if (f.headers_received && pre > 0) r.phases.processing = microseconds(first_byte - pre);
  if (f.headers_received && curl_code == CURLE_OK)
    r.phases.transfer = microseconds(total_us - first_byte);
  if (f.headers_received && curl_code != CURLE_OK && !a.engine_outcome && total_us >= first_byte) {
    r.phases.transfer = microseconds(total_us - first_byte);  // interrupted mid-body
  }
  switch (version) {
    case CURL_HTTP_VERSION_1_0:
      r.http_version = "1.0";
      break;
    case CURL_HTTP_VERSION_1_1:
      r.http_version = "1.1";
      break;
    case CURL_HTTP_VERSION_2_0:
      r.http_version = "2";
      break;
    case CURL_HTTP_VERSION_3:
      r.http_version = "3";
      break;
    default:
      break;
  }
  char* ip = nullptr;
  if (!f.via_proxy && curl_easy_getinfo(a.easy, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK &&
      ip != nullptr) {
    r.remote_ip = ip;
  }
  // total: from the start of resolution to the end (our clock when the engine cut it).
  if (!a.engine_outcome)
    r.phases.total = a.resolve.value_or(microseconds(0)) + microseconds(total_us);
}

void HttpProber::Impl::Finish(uint64_t id, int curl_code) {
  auto it = attempts.find(id);
  if (it == attempts.end()) return;
  std::unique_ptr<Attempt> owned = std::move(it->second);
  attempts.erase(it);
  Attempt& a = *owned;
  const MonitorConfig& m = *a.job->monitor;

  ProbeResult r;
  r.monitor = m.name;
  r.region = a.job->region->name;
  r.started_at = a.started_at;
  r.due = a.job->due;
  r.attempt = a.number;
  r.resolved = std::move(a.resolved);
  r.phases.resolve = a.resolve;

  TransferFacts f;
  f.curl_code = curl_code;
  f.https = a.prep->url && a.url().scheme == "https";
  f.via_proxy = !a.job->region->proxy.empty();
  f.body_capped = a.body_capped;
  f.headers_too_large = a.headers_too_large;
  f.engine_outcome = a.engine_outcome;
  f.engine_detail = a.engine_detail;
  f.curl_error = a.errbuf;
  if (a.easy != nullptr) {
    // Removing closes the connection (FORBID_REUSE), which frees the SSL_CTX pointing at a.tls.
    curl_multi_remove_handle(multi, a.easy);
    ReadTransfer(a, f, r, curl_code);
    ReleaseHandle(a.easy);
    a.easy = nullptr;
  }
  if (!r.phases.total) {
    r.phases.total = duration_cast<microseconds>(std::chrono::steady_clock::now() - a.started);
  }
  if (f.https) r.tls = a.tls;

  Classified c = ClassifyTransfer(f);
  if (c.transfer_ok) {
    c = ClassifyResponse(r.http_status, m.probe.expect_status, m.body_contains, m.header_contains,
                         a.body, a.headers, a.body_capped);
  }
  r.outcome = c.outcome;
  r.detail = std::move(c.detail);
  r.bytes_read =
      static_cast<int64_t>(std::min<size_t>(a.body.size(), static_cast<size_t>(m.probe.max_body)));
  for (const auto& [name, value] : a.headers) {
    if (std::find(kSelectedHeaders.begin(), kSelectedHeaders.end(), name) !=
        kSelectedHeaders.end()) {
      r.headers.emplace_back(name, value);
    }
  }
  if (r.http_status >= 500) {
    ResponseSample sample;
    sample.status = r.http_status;
    sample.status_text = a.status_text;
    sample.headers = a.headers;
    sample.body = std::string_view(a.body).substr(0, static_cast<size_t>(kFingerprintBytes));
    for (const auto& [name, value] : a.headers) {
      if (name == "content-length") {
        char* end = nullptr;
        const long long v = std::strtoll(value.c_str(), &end, 10);
        if (end != value.c_str()) sample.content_length = v;
      }
    }
    const Fingerprint fp = ClassifyResponder(sample);
    r.emitter = fp.emitter;
    r.reason = fp.reason;
    r.body_snippet = a.body.substr(0, kBodySnippetBytes);
  }
  Deliver(std::move(owned), std::move(r));
}

}  // namespace gatewatch::probes
