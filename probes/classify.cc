#include "probes/classify.h"

#include "probes/probe_result.h"

#include <curl/curl.h>

#include <cerrno>
#include <cstring>

namespace gatewatch::probes {
namespace {

Classified Fail(Outcome o, std::string detail) { return {o, std::move(detail), false}; }

std::string CurlDetail(const TransferFacts& f) {
  if (!f.curl_error.empty()) return f.curl_error;
  return curl_easy_strerror(static_cast<CURLcode>(f.curl_code));
}

// A timeout, classified by the phase it interrupted.
Classified Timeout(const TransferFacts& f) {
  if (!f.connected) return Fail(Outcome::kConnectTimeout, "no answer to connect: " + CurlDetail(f));
  if (f.https && !f.tls_done) return Fail(Outcome::kTlsError, "TLS handshake timed out");
  // A status line followed by headers that never end is still "no response headers".
  if (!f.headers_complete)
    return Fail(Outcome::kTimeoutTtfb, "request sent, no response headers in time");
  return Fail(Outcome::kTimeoutBody, "headers received, body did not finish in time");
}

}  // namespace

Classified ClassifyTransfer(const TransferFacts& f) {
  if (f.engine_outcome) return Fail(*f.engine_outcome, f.engine_detail);
  if (f.headers_too_large) {
    return Fail(Outcome::kMalformedResponse, "response headers larger than the limit");
  }
  const auto code = static_cast<CURLcode>(f.curl_code);
  if (code == CURLE_OK || (code == CURLE_WRITE_ERROR && f.body_capped)) {
    return {Outcome::kOk, "", true};
  }
  // Through a proxy, a CONNECT that was not answered 2xx means our egress is broken.
  if (f.via_proxy && !(f.proxy_connect_code >= 200 && f.proxy_connect_code < 300)) {
    if (f.proxy_connect_code != 0) {
      return Fail(Outcome::kProxyError,
                  "proxy answered CONNECT with " + std::to_string(f.proxy_connect_code));
    }
    if (!f.connected || code == CURLE_COULDNT_CONNECT || code == CURLE_RECV_ERROR ||
        code == CURLE_GOT_NOTHING || code == CURLE_OPERATION_TIMEDOUT ||
        code == CURLE_COULDNT_RESOLVE_PROXY) {
      return Fail(Outcome::kProxyError, "proxy failed: " + CurlDetail(f));
    }
  }
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
      return Fail(Outcome::kDnsError, CurlDetail(f));
    case CURLE_COULDNT_CONNECT:
      if (f.os_errno == ECONNREFUSED) return Fail(Outcome::kConnectRefused, "connection refused");
      if (f.os_errno == ENETUNREACH || f.os_errno == EHOSTUNREACH) {
        return Fail(Outcome::kNetworkUnreachable, std::strerror(f.os_errno));
      }
      if (f.os_errno == ETIMEDOUT) return Fail(Outcome::kConnectTimeout, CurlDetail(f));
      // The server accepted and reset before curl finished its connect check.
      if (f.os_errno == ECONNRESET) return Fail(Outcome::kConnectionReset, CurlDetail(f));
      return Fail(Outcome::kConnectRefused, CurlDetail(f));
    case CURLE_OPERATION_TIMEDOUT:
      return Timeout(f);
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
      return Fail(Outcome::kTlsCertInvalid, CurlDetail(f));
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
      return Fail(Outcome::kTlsError, CurlDetail(f));
    case CURLE_TOO_MANY_REDIRECTS:
      return Fail(Outcome::kRedirectLoop, CurlDetail(f));
    case CURLE_GOT_NOTHING:
      return Fail(Outcome::kEmptyReply, "connection closed without a response");
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
      if (f.https && !f.tls_done) return Fail(Outcome::kTlsError, "reset during TLS handshake: " + CurlDetail(f));
      if (f.os_errno == ECONNRESET || f.os_errno == EPIPE || f.os_errno == 0) {
        return Fail(Outcome::kConnectionReset, CurlDetail(f));
      }
      return Fail(Outcome::kConnectionReset, CurlDetail(f));
    case CURLE_PARTIAL_FILE:
      return Fail(Outcome::kConnectionReset, "connection closed before the body was complete");
    case CURLE_UNSUPPORTED_PROTOCOL:  // HTTP/0.9: garbage instead of a status line
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_OUT_OF_MEMORY:  // a header block beyond curl's limit (rc 27)
    case CURLE_FILESIZE_EXCEEDED:
    case CURLE_HTTP3:
      return Fail(Outcome::kMalformedResponse, CurlDetail(f));
    default:
      break;
  }
  if (!f.connected) return Fail(Outcome::kConnectRefused, CurlDetail(f));
  if (f.https && !f.tls_done) return Fail(Outcome::kTlsError, CurlDetail(f));
  return Fail(Outcome::kMalformedResponse, CurlDetail(f));
}

Classified ClassifyResponse(int status, const std::vector<StatusMatcher>& expect_status,
                            const std::optional<std::string>& body_contains,
                            const HeaderList& header_contains, std::string_view body,
                            const HeaderList& headers, bool body_capped) {
  bool expected = false;
  for (const StatusMatcher& m : expect_status) expected = expected || m.Matches(status);
  if (!expected) {
    return Fail(OutcomeForUnexpectedStatus(status), "status " + std::to_string(status) + " not expected");
  }
  if (body_contains && body.find(*body_contains) == std::string_view::npos) {
    return Fail(Outcome::kAssertionFailed,
                "body does not contain \"" + *body_contains + "\"" +
                    (body_capped ? " (in the first " + std::to_string(body.size()) + " bytes)" : ""));
  }
  for (const auto& [name, needle] : header_contains) {
    bool found = false;
    bool present = false;
    for (const auto& [h, v] : headers) {
      if (h != name) continue;
      present = true;
      found = found || v.find(needle) != std::string::npos;
    }
    if (!found) {
      return Fail(Outcome::kAssertionFailed,
                  present ? "header " + name + " does not contain \"" + needle + "\""
                          : "header " + name + " is missing");
    }
  }
  return {Outcome::kOk, "", true};
}

Outcome ExcuseIfSilenced(const ProbeResult& r, bool silenced) {
  if (!silenced || r.http_status != 503) return r.outcome;
  for (const auto& [name, value] : r.headers) {
    if (name == "retry-after") return Outcome::kExcused;
  }
  return r.outcome;
}

}  // namespace gatewatch::probes
