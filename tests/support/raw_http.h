#pragma once
// Raw HTTP/1.1 responses for tests: a tiny parser for captured fixture files (status line,
// headers, CRLF, body exactly as on the wire) and a small blocking client that fetches such a
// response from a loopback port. Test-only; not a general HTTP implementation.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "probes/fingerprint.h"
#include "probes/result.h"

namespace gatewatch::testing {

struct RawResponse {
  std::string version;  // "HTTP/1.1"
  int status = 0;
  std::string reason_phrase;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, values trimmed
  std::optional<int64_t> content_length;
  std::string body;  // de-chunked; cut to Content-Length when present

  // The first header with this (lower-case) name, or nullopt.
  std::optional<std::string> Header(std::string_view name) const;
  // A sample for probes::ClassifyResponder; its body views into this object.
  probes::ResponseSample Sample() const;
};

// Parses a complete response. Header lines may end in CRLF or a bare LF; the body is whatever
// follows the blank line (a HEAD reply has none even with a Content-Length).
Result<RawResponse> ParseRawResponse(std::string_view raw);

// Reads a file holding one raw response (e.g. a fixture) and parses it.
Result<RawResponse> ParseRawResponseFile(const std::string& path);

// Connects to 127.0.0.1:port, sends `request` as is, reads until the server closes the
// connection, and returns every byte. Fails on connect error or when `timeout` (for the whole
// exchange) passes first.
Result<std::string> FetchRaw(uint16_t port, std::string_view request,
                             std::chrono::milliseconds timeout);

// "GET <path> HTTP/1.1" with Host and Connection: close.
std::string GetRequest(std::string_view path);

}  // namespace gatewatch::testing
