#include "daemon/http_parser.h"

#include <algorithm>
#include <cctype>
#include <cstdint>

#include "probes/text.h"

namespace gatewatch::daemon {

namespace {

// RFC 9110 tchar: the characters of a method and of a header name.
bool IsTokenChar(unsigned char c) {
  if (std::isalnum(c)) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

bool IsToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return IsTokenChar(static_cast<unsigned char>(c)); });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The comma-separated elements of a header value, trimmed and lower-cased, empty ones dropped.
std::vector<std::string> ListElements(std::string_view value) {
  std::vector<std::string> out;
  while (!value.empty()) {
    const size_t comma = value.find(',');
    const std::string_view item = Trim(value.substr(0, comma));
    if (!item.empty()) out.push_back(AsciiLower(item));
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return out;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Field values: visible characters, spaces, tabs and obs-text; no other control character.
bool IsFieldValue(std::string_view v) {
  return std::none_of(v.begin(), v.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return (c < 0x20 && c != '\t') || c == 0x7f;
  });
}

}  // namespace

std::optional<std::string> RequestHead::Header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return value;
  }
  return std::nullopt;
}

std::string PercentDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      const int hi = HexDigit(s[i + 1]);
      const int lo = HexDigit(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && c == '+' ? ' ' : c);
  }
  return out;
}

RequestParser::State RequestParser::Fail(int status, std::string message) {
  state_ = State::kError;
  error_status_ = status;
  error_message_ = std::move(message);
  return state_;
}

void RequestParser::Compact() {
  if (pos_ == 0) return;
  buf_.erase(0, pos_);
  head_start_ -= std::min(head_start_, pos_);
  pos_ = 0;
}

bool RequestParser::NextLine(size_t max_length, std::string_view* line, bool* too_long) {
  *too_long = false;
  const std::string_view rest = std::string_view(buf_).substr(pos_);
  const size_t nl = rest.substr(0, max_length + 1).find('\n');
  if (nl == std::string_view::npos) {
    *too_long = rest.size() > max_length;
    return false;
  }
  std::string_view l = rest.substr(0, nl);
  if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
  *line = l;
  pos_ += nl + 1;
  return true;
}

RequestParser::State RequestParser::Feed(std::string_view bytes) {
  if (state_ == State::kError) return state_;
  buf_.append(bytes);
  return Parse();
}

RequestParser::State RequestParser::Parse() {
  if (state_ == State::kHead) ParseHead();
  if (state_ == State::kBody) ParseBody();
  return state_;
}

RequestParser::State RequestParser::AcceptBody() {
  if (state_ != State::kHeadReady) return state_;
  if (head_.content_length.value_or(0) > limits_.max_body_bytes) {
    return Fail(413, "the request body is larger than " + std::to_string(limits_.max_body_bytes) + " bytes");
  }
  state_ = head_.HasBody() ? State::kBody : State::kComplete;
  return Parse();
}

RequestParser::State RequestParser::Next() {
  if (state_ != State::kComplete) return state_;
  Compact();
  head_ = RequestHead{};
  body_.clear();
  request_line_done_ = false;
  head_start_ = 0;
  chunk_phase_ = ChunkPhase::kSize;
  chunk_left_ = 0;
  trailer_bytes_ = 0;
  state_ = State::kHead;
  return Parse();
}

RequestParser::State RequestParser::ParseHead() {
  bool too_long = false;
  std::string_view line;
  while (!request_line_done_) {
    head_start_ = pos_;
    if (!NextLine(limits_.max_request_line, &line, &too_long)) {
      if (too_long) return Fail(414, "the request line is longer than " + std::to_string(limits_.max_request_line) + " bytes");
      return state_;
    }
    // RFC 9112 2.2: empty lines before a request line are ignored (bounded by the limit).
    if (line.empty()) {
      if (pos_ > limits_.max_request_line) return Fail(400, "no request line");
      continue;
    }
    const size_t sp1 = line.find(' ');
    const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
      return Fail(400, "malformed request line");
    }
    const std::string_view method = line.substr(0, sp1);
    const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    const std::string_view version = line.substr(sp2 + 1);
    if (!IsToken(method)) return Fail(400, "malformed request method");
    if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' ||
        !std::isdigit(static_cast<unsigned char>(version[5])) || !std::isdigit(static_cast<unsigned char>(version[7]))) {
      return Fail(400, "malformed HTTP version");
    }
    if (version[5] != '1' || (version[7] != '0' && version[7] != '1')) {
      return Fail(505, "only HTTP/1.0 and HTTP/1.1 are served");
    }
    if (target.empty() || target.front() != '/') return Fail(400, "the request target must be a path (origin-form)");
    if (std::any_of(target.begin(), target.end(), [](char ch) {
          const auto c = static_cast<unsigned char>(ch);
          return c <= 0x20 || c == 0x7f;
        })) {
      return Fail(400, "malformed request target");
    }
    head_.method = std::string(method);
    head_.target = std::string(target);
    head_.minor_version = version[7] - '0';
    const size_t q = target.find('?');
    head_.path = PercentDecode(target.substr(0, q), false);
    if (q != std::string_view::npos) {
      std::string_view query = target.substr(q + 1);
      while (!query.empty()) {
        const size_t amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        if (!pair.empty()) {
          const size_t eq = pair.find('=');
          head_.params.emplace_back(PercentDecode(pair.substr(0, eq), true),
                                    eq == std::string_view::npos ? "" : PercentDecode(pair.substr(eq + 1), true));
        }
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
      }
    }
    request_line_done_ = true;
  }
  while (true) {
    const size_t used = pos_ - head_start_;
    const size_t budget = used < limits_.max_head_bytes ? limits_.max_head_bytes - used : 0;
    if (!NextLine(budget, &line, &too_long)) {
      if (too_long) return Fail(431, "the request head is larger than " + std::to_string(limits_.max_head_bytes) + " bytes");
      return state_;
    }
    if (line.empty()) break;
    if (line.front() == ' ' || line.front() == '\t') return Fail(400, "obsolete header line folding");
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || !IsToken(line.substr(0, colon))) return Fail(400, "malformed header line");
    const std::string_view value = Trim(line.substr(colon + 1));
    if (!IsFieldValue(value)) return Fail(400, "a header value has a control character");
    if (head_.headers.size() >= limits_.max_headers) {
      return Fail(431, "more than " + std::to_string(limits_.max_headers) + " headers");
    }
    head_.headers.emplace_back(AsciiLower(line.substr(0, colon)), std::string(value));
  }

  // Framing and connection semantics.
  std::vector<std::string> codings;
  std::optional<std::string> length;
  bool connection_close = false;
  bool connection_keep_alive = false;
  for (const auto& [name, value] : head_.headers) {
    if (name == "transfer-encoding") {
      for (std::string& c : ListElements(value)) codings.push_back(std::move(c));
    } else if (name == "content-length") {
      for (const std::string& v : ListElements(value.empty() ? "," : value)) {
        if (length && *length != v) return Fail(400, "conflicting Content-Length headers");
        length = v;
      }
      if (!length) return Fail(400, "empty Content-Length");
    } else if (name == "connection") {
      for (const std::string& token : ListElements(value)) {
        connection_close |= token == "close";
        connection_keep_alive |= token == "keep-alive";
      }
    } else if (name == "expect") {
      if (AsciiLower(value) != "100-continue") return Fail(417, "only Expect: 100-continue is supported");
      head_.expect_continue = true;
    }
  }
  head_.keep_alive = !connection_close && (head_.minor_version >= 1 || connection_keep_alive);
  if (!codings.empty()) {
    if (length) return Fail(400, "both Content-Length and Transfer-Encoding");
    if (head_.minor_version == 0) return Fail(400, "Transfer-Encoding in an HTTP/1.0 request");
    if (codings.size() != 1 || codings.front() != "chunked") {
      return Fail(501, "only the chunked transfer coding is supported");
    }
    head_.chunked = true;
  } else if (length) {
    if (length->empty() || !std::all_of(length->begin(), length->end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return Fail(400, "malformed Content-Length");
    }
    // Over the limit is refused at AcceptBody(), so the caller can refuse the request for
    // its own reasons (a missing token) first.
    head_.content_length = length->size() > 18 ? SIZE_MAX : std::stoull(*length);
  }
  state_ = State::kHeadReady;
  return state_;
}

RequestParser::State RequestParser::ParseBody() {
  if (head_.chunked) {
    ParseChunked();
  } else {
    const size_t want = *head_.content_length - body_.size();
    const size_t take = std::min(want, buf_.size() - pos_);
    body_.append(buf_, pos_, take);
    pos_ += take;
    if (body_.size() == *head_.content_length) state_ = State::kComplete;
  }
  // Body bytes are copied out: the raw buffer never holds more than one read beyond them.
  if (state_ == State::kBody) Compact();
  return state_;
}

RequestParser::State RequestParser::ParseChunked() {
  constexpr size_t kMaxChunkLine = 4096;  // size and extensions
  bool too_long = false;
  std::string_view line;
  while (state_ == State::kBody) {
    switch (chunk_phase_) {
      case ChunkPhase::kSize: {
        if (!NextLine(kMaxChunkLine, &line, &too_long)) {
          return too_long ? Fail(400, "chunk size line too long") : state_;
        }
        const std::string_view hex = Trim(line.substr(0, line.find(';')));
        if (hex.empty()) return Fail(400, "malformed chunk size");
        size_t size = 0;
        for (char c : hex) {
          const int d = HexDigit(c);
          if (d < 0) return Fail(400, "malformed chunk size");
          if (size > (limits_.max_body_bytes + 1) / 16 + 1) {
            return Fail(413, "the request body is larger than " + std::to_string(limits_.max_body_bytes) + " bytes");
          }
          size = size * 16 + static_cast<size_t>(d);
        }
        if (size > limits_.max_body_bytes - body_.size()) {
          return Fail(413, "the request body is larger than " + std::to_string(limits_.max_body_bytes) + " bytes");
        }
        chunk_left_ = size;
        chunk_phase_ = size == 0 ? ChunkPhase::kTrailer : ChunkPhase::kData;
        break;
      }
      case ChunkPhase::kData: {
        const size_t take = std::min(chunk_left_, buf_.size() - pos_);
        body_.append(buf_, pos_, take);
        pos_ += take;
        chunk_left_ -= take;
        if (chunk_left_ > 0) return state_;
        chunk_phase_ = ChunkPhase::kDataEnd;
        break;
      }
      case ChunkPhase::kDataEnd:
        if (!NextLine(2, &line, &too_long)) return too_long ? Fail(400, "malformed chunk end") : state_;
        if (!line.empty()) return Fail(400, "malformed chunk end");
        chunk_phase_ = ChunkPhase::kSize;
        break;
      case ChunkPhase::kTrailer: {
        const size_t budget = trailer_bytes_ < limits_.max_head_bytes ? limits_.max_head_bytes - trailer_bytes_ : 0;
        const size_t before = pos_;
        if (!NextLine(budget, &line, &too_long)) {
          return too_long ? Fail(431, "the request trailers are larger than " + std::to_string(limits_.max_head_bytes) + " bytes")
                          : state_;
        }
        trailer_bytes_ += pos_ - before;
        if (line.empty()) state_ = State::kComplete;  // trailer fields are read and ignored
        break;
      }
    }
  }
  return state_;
}

}  // namespace gatewatch::daemon
