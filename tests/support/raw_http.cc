#include "tests/support/raw_http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace gatewatch::testing {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Takes one line (without its LF / CRLF) off the front of `rest`; nullopt when no LF is left.
std::optional<std::string_view> NextLine(std::string_view& rest) {
  const size_t lf = rest.find('\n');
  if (lf == std::string_view::npos) return std::nullopt;
  std::string_view line = rest.substr(0, lf);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  rest.remove_prefix(lf + 1);
  return line;
}

bool ParseInt(std::string_view text, int64_t* out) {
  if (text.empty() || text.size() > 18) return false;
  int64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

Result<std::string> Dechunk(std::string_view rest) {
  std::string body;
  for (int guard = 0; guard < 100000; ++guard) {
    auto size_line = NextLine(rest);
    if (!size_line) return Error("chunked body: missing chunk size line");
    std::string_view hex = Trim(size_line->substr(0, size_line->find(';')));
    size_t size = 0;
    if (hex.empty()) return Error("chunked body: empty chunk size");
    for (char c : hex) {
      const int d = std::isxdigit(static_cast<unsigned char>(c)) == 0 ? -1
                    : (c <= '9')                                      ? c - '0'
                                                                      : (c | 0x20) - 'a' + 10;
      if (d < 0) return Error("chunked body: bad chunk size '" + std::string(hex) + "'");
      size = size * 16 + static_cast<size_t>(d);
    }
    if (size == 0) return body;
    if (rest.size() < size) return Error("chunked body: truncated chunk");
    body.append(rest.substr(0, size));
    rest.remove_prefix(size);
    if (!NextLine(rest)) return Error("chunked body: missing CRLF after chunk");
  }
  return Error("chunked body: too many chunks");
}

}  // namespace

std::optional<std::string> RawResponse::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return std::nullopt;
}

probes::ResponseSample RawResponse::Sample() const {
  probes::ResponseSample sample;
  sample.status = status;
  sample.status_text = reason_phrase;
  sample.headers = headers;
  sample.body = std::string_view(body).substr(0, probes::kFingerprintBodyLimit);
  sample.content_length = content_length;
  return sample;
}

Result<RawResponse> ParseRawResponse(std::string_view raw) {
  RawResponse r;
  std::string_view rest = raw;
  auto status_line = NextLine(rest);
  if (!status_line) return Error("no status line");
  // "HTTP/1.1 502 Bad Gateway" (the reason phrase may be empty: "HTTP/1.1 522 ").
  const size_t sp1 = status_line->find(' ');
  if (sp1 == std::string_view::npos || !status_line->starts_with("HTTP/")) {
    return Error("bad status line: " + std::string(*status_line));
  }
  r.version = std::string(status_line->substr(0, sp1));
  std::string_view after = status_line->substr(sp1 + 1);
  const size_t sp2 = after.find(' ');
  int64_t code = 0;
  if (!ParseInt(after.substr(0, sp2), &code) || code < 100 || code > 999) {
    return Error("bad status code in: " + std::string(*status_line));
  }
  r.status = static_cast<int>(code);
  if (sp2 != std::string_view::npos) r.reason_phrase = std::string(after.substr(sp2 + 1));

  bool chunked = false;
  for (int guard = 0;; ++guard) {
    if (guard > 1000) return Error("too many header lines");
    auto line = NextLine(rest);
    if (!line) return Error("headers not terminated by an empty line");
    if (line->empty()) break;
    const size_t colon = line->find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return Error("bad header line: " + std::string(*line));
    }
    std::string name = Lower(Trim(line->substr(0, colon)));
    std::string value(Trim(line->substr(colon + 1)));
    if (name == "content-length") {
      int64_t n = 0;
      if (!ParseInt(value, &n)) return Error("bad content-length: " + value);
      r.content_length = n;
    }
    if (name == "transfer-encoding" && Lower(value).find("chunked") != std::string::npos) {
      chunked = true;
    }
    r.headers.emplace_back(std::move(name), std::move(value));
  }
  if (chunked) {
    auto body = Dechunk(rest);
    if (!body) return Error(body.error());
    r.body = std::move(*body);
  } else if (r.content_length && static_cast<uint64_t>(*r.content_length) < rest.size()) {
    r.body = std::string(rest.substr(0, static_cast<size_t>(*r.content_length)));
  } else {
    r.body = std::string(rest);
  }
  return r;
}

Result<RawResponse> ParseRawResponseFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error("cannot open fixture " + path);
  std::ostringstream content;
  content << in.rdbuf();
  auto parsed = ParseRawResponse(content.str());
  if (!parsed) return Error(path + ": " + parsed.error());
  return parsed;
}

Result<std::string> FetchRaw(uint16_t port, std::string_view request,
                             std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + timeout;
  auto remaining_ms = [&] {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    return static_cast<int>(std::max<int64_t>(0, left.count()));
  };

  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error(std::string("socket: ") + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};

  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);  // 127.0.0.1 only
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 &&
      errno != EINPROGRESS) {
    return Error("connect 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(errno));
  }
  pollfd pfd{fd, POLLOUT, 0};
  if (poll(&pfd, 1, remaining_ms()) != 1) return Error("connect timed out");
  int so_error = 0;
  socklen_t len = sizeof so_error;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
  if (so_error != 0) {
    return Error("connect 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(so_error));
  }

  size_t sent = 0;
  while (sent < request.size()) {
    pfd = {fd, POLLOUT, 0};
    if (poll(&pfd, 1, remaining_ms()) != 1) return Error("send timed out");
    const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      return Error(std::string("send: ") + std::strerror(errno));
    }
    if (n > 0) sent += static_cast<size_t>(n);
  }

  std::string response;
  char buf[4096];
  while (true) {
    const int ms = remaining_ms();
    if (ms <= 0) return Error("response not complete in time; got: " + response);
    pfd = {fd, POLLIN, 0};
    const int ready = poll(&pfd, 1, ms);
    if (ready == 0) return Error("response not complete in time; got: " + response);
    if (ready < 0 && errno != EINTR) return Error(std::string("poll: ") + std::strerror(errno));
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n == 0) break;  // server closed: the response is complete
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      if (errno == ECONNRESET && !response.empty()) break;
      return Error(std::string("recv: ") + std::strerror(errno));
    }
    response.append(buf, static_cast<size_t>(n));
    if (response.size() > (1u << 20)) return Error("response larger than 1 MiB");
  }
  return response;
}

std::string GetRequest(std::string_view path) {
  return "GET " + std::string(path) +
         " HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: gatewatch-test\r\nAccept: */*\r\n"
         "Connection: close\r\n\r\n";
}

}  // namespace gatewatch::testing
