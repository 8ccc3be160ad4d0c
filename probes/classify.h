#pragma once
// Turning what a transfer did into an outcome class (docs/probes.md). Pure functions:
// the engine gathers the facts, these decide. The phase reached decides timeouts.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "probes/config.h"
#include "probes/outcome.h"

namespace gatewatch::probes {

struct TransferFacts {
  int curl_code = 0;   // CURLcode (kept as int so this header needs no curl)
  int os_errno = 0;    // CURLINFO_OS_ERRNO
  std::string curl_error;  // the error buffer
  bool https = false;
  bool via_proxy = false;
  long proxy_connect_code = 0;  // CURLINFO_HTTP_CONNECTCODE (0 = no CONNECT answer)
  bool connected = false;        // TCP connect (to the target or the proxy) completed
  bool tls_done = false;         // TLS handshake completed
  bool headers_received = false; // the response's first byte arrived
  bool headers_complete = false; // ...and its head ended (the blank line after the headers)
  bool body_capped = false;      // we stopped reading at max_body (a normal end)
  bool headers_too_large = false;
  int http_status = 0;
  std::optional<Outcome> engine_outcome;  // a per-phase deadline of the engine fired
  std::string engine_detail;
};

struct Classified {
  Outcome outcome = Outcome::kOk;
  std::string detail;
  bool transfer_ok = false;  // the response arrived whole: judge its status and content next
};

// Failures of the transfer itself; transfer_ok when the response is there to judge.
Classified ClassifyTransfer(const TransferFacts& facts);

// Judges a complete response: status against expect_status, then the assertions.
// `headers` are lower-case names.
Classified ClassifyResponse(int status, const std::vector<StatusMatcher>& expect_status,
                            const std::optional<std::string>& body_contains,
                            const HeaderList& header_contains, std::string_view body,
                            const HeaderList& headers, bool body_capped);

// docs/configuration.md: a 503 carrying Retry-After during a silence is excused, not a failure.
// `r` is a finished probe; `silenced` says whether its monitor is inside a silence now.
Outcome ExcuseIfSilenced(const struct ProbeResult& r, bool silenced);

}  // namespace gatewatch::probes
