#pragma once
// Outcome classes of docs/probes.md. The names are a contract: they appear in metric
// labels, the API and alerts.

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace gatewatch::probes {

enum class Outcome : uint8_t {
  kOk,
  kDnsError,
  kConnectRefused,
  kConnectTimeout,
  kNetworkUnreachable,
  kTlsError,
  kTlsCertInvalid,
  kTimeoutTtfb,
  kTimeoutBody,
  kConnectionReset,
  kEmptyReply,
  kMalformedResponse,
  kProxyError,
  kRedirectLoop,
  kHttp4xx,
  kHttp500,
  kHttp502,
  kHttp503,
  kHttp504,
  kHttp5xx,
  kUnexpectedStatus,
  kAssertionFailed,
  kExcused,
};

inline constexpr std::array<std::string_view, 23> kOutcomeNames = {
    "ok",
    "dns_error",
    "connect_refused",
    "connect_timeout",
    "network_unreachable",
    "tls_error",
    "tls_cert_invalid",
    "timeout_ttfb",
    "timeout_body",
    "connection_reset",
    "empty_reply",
    "malformed_response",
    "proxy_error",
    "redirect_loop",
    "http_4xx",
    "http_500",
    "http_502",
    "http_503",
    "http_504",
    "http_5xx",
    "unexpected_status",
    "assertion_failed",
    "excused",
};

std::string_view ToString(Outcome o);
std::optional<Outcome> OutcomeFromString(std::string_view name);

// A failure counts against the monitor: everything but ok and excused.
inline bool IsFailure(Outcome o) { return o != Outcome::kOk && o != Outcome::kExcused; }

// The outcome of an HTTP status that expect_status does not accept.
Outcome OutcomeForUnexpectedStatus(int status);

}  // namespace gatewatch::probes
