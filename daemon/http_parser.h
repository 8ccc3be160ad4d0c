#pragma once
// An incremental HTTP/1.x request parser for the listener: bytes in, one request out, with
// every size bounded before it is buffered. It does no I/O, so the listener decides when
// to read more (and whether to read a body at all: after the head, the parser waits for
// AcceptBody() so the caller can refuse a request before its body arrives).
//
// Accepted: HTTP/1.0 and HTTP/1.1, origin-form targets, CRLF or bare LF line ends,
// Content-Length or `Transfer-Encoding: chunked` bodies. Refused with a status: a malformed
// request line or header (400), a request line over the limit (414), a head over the limit
// (431), a body over the limit in any encoding (413), a transfer coding other than chunked
// (501), another HTTP version (505). A request with both Content-Length and
// Transfer-Encoding, or with differing Content-Lengths, is refused (400): a front proxy
// could frame it differently, and answering it would let one request smuggle another.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gatewatch::daemon {

struct RequestHead {
  std::string method;  // as sent (methods are case-sensitive)
  std::string target;  // as sent: path and query, percent-encoded
  std::string path;    // the target's path, percent-decoded
  std::vector<std::pair<std::string, std::string>> params;  // query, decoded ('+' is a space)
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
  int minor_version = 1;  // HTTP/1.<minor>
  bool keep_alive = true;  // from the version and the Connection header
  bool expect_continue = false;  // Expect: 100-continue
  bool chunked = false;
  std::optional<size_t> content_length;

  // The first value of a header (lower-case name), if present.
  std::optional<std::string> Header(std::string_view lower_name) const;
  // Whether the request has a body to read (chunked, or a Content-Length above zero).
  bool HasBody() const { return chunked || content_length.value_or(0) > 0; }
};

struct RequestLimits {
  size_t max_request_line = 8 * 1024;
  size_t max_head_bytes = 16 * 1024;  // request line and headers together
  size_t max_headers = 100;
  size_t max_body_bytes = 1 << 20;  // decoded body, whatever the transfer encoding
};

class RequestParser {
 public:
  enum class State {
    kHead,        // reading the request line and headers
    kHeadReady,   // head complete; waiting for AcceptBody() (which refuses a body over the limit)
    kBody,        // reading the body
    kComplete,    // one whole request: head() and TakeBody()
    kError,       // error_status() / error_message(); the connection must close
  };

  explicit RequestParser(RequestLimits limits) : limits_(limits) {}

  // Appends received bytes and parses as far as they go (stopping at kHeadReady and at
  // kComplete; bytes beyond a complete request wait for the next one). Returns state().
  State Feed(std::string_view bytes);
  // After kHeadReady: go on to read the body (or complete at once when there is none).
  State AcceptBody();
  // After kComplete: starts the next request on the connection with the bytes already
  // received beyond this one.
  State Next();

  State state() const { return state_; }
  const RequestHead& head() const { return head_; }
  std::string TakeBody() { return std::move(body_); }
  int error_status() const { return error_status_; }
  const std::string& error_message() const { return error_message_; }
  // Bytes received and not yet parsed (a pipelined next request, or a partial one).
  size_t buffered() const { return buf_.size() - pos_; }

 private:
  State Parse();
  State ParseHead();
  State ParseBody();
  State ParseChunked();
  bool NextLine(size_t max_length, std::string_view* line, bool* too_long);
  State Fail(int status, std::string message);
  void Compact();

  RequestLimits limits_;
  State state_ = State::kHead;
  std::string buf_;
  size_t pos_ = 0;  // parsed up to here
  size_t head_start_ = 0;
  bool request_line_done_ = false;
  RequestHead head_;
  std::string body_;
  enum class ChunkPhase { kSize, kData, kDataEnd, kTrailer } chunk_phase_ = ChunkPhase::kSize;
  size_t chunk_left_ = 0;
  size_t trailer_bytes_ = 0;
  int error_status_ = 0;
  std::string error_message_;
};

// Percent-decodes `s`; with plus_is_space, '+' decodes to ' ' (query strings). A '%' not
// followed by two hex digits stays as it is.
std::string PercentDecode(std::string_view s, bool plus_is_space);

}  // namespace gatewatch::daemon
