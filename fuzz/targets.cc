#include "fuzz/targets.h"

#include <optional>
#include <string>

#include "daemon/config.h"
#include "daemon/http_message.h"
#include "daemon/http_parser.h"
#include "daemon/ingest.h"
#include "probes/classify.h"
#include "probes/fingerprint.h"
#include "probes/text.h"
#include "probes/url.h"

namespace gatewatch::fuzz {

namespace {

std::string_view Text(const uint8_t* data, size_t size) { return {reinterpret_cast<const char*>(data), size}; }

std::optional<std::string> NoEnv(const std::string&) { return std::nullopt; }

// A config with one monitor in two regions, for ingest batches to name.
const daemon::Config& IngestConfig() {
  static const daemon::Config config = [] {
    auto c = daemon::ParseConfig(
        "[server]\nregion = \"local\"\n[regions.eu]\n[[monitors]]\nname = \"shop\"\n"
        "url = \"http://127.0.0.1:8080/\"\nregions = [\"local\", \"eu\"]\n",
        "fuzz.toml", NoEnv);
    if (!c) __builtin_trap();
    return std::move(c).value();
  }();
  return config;
}

}  // namespace

int Config(const uint8_t* data, size_t size) {
  auto c = daemon::ParseConfig(Text(data, size), "fuzz.toml", NoEnv);
  if (c) {
    (void)daemon::Summarize(*c);
  } else {
    for (const daemon::ConfigError& e : c.error()) {
      // Every message is one line: the escaping holds whatever the input was.
      if (e.ToString().find('\n') != std::string::npos) __builtin_trap();
    }
  }
  return 0;
}

int Ingest(const uint8_t* data, size_t size) {
  auto batch = daemon::ParseIngestBatch(Text(data, size), IngestConfig(), 10'000);
  if (!batch && (batch.error().status < 400 || batch.error().status > 499)) __builtin_trap();
  return 0;
}

int Response(const uint8_t* data, size_t size) {
  // Bytes as a response on the wire: a status line, header lines, a blank line, a body.
  std::string_view rest = Text(data, size);
  const auto next_line = [&rest]() {
    const size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
  };
  const std::string_view status_line = next_line();
  probes::ResponseSample sample;
  if (status_line.size() >= 12) {
    int status = 0;
    for (char c : status_line.substr(9, 3)) status = status * 10 + (c >= '0' && c <= '9' ? c - '0' : 0);
    sample.status = status;
    sample.status_text = status_line.substr(std::min<size_t>(13, status_line.size()));
  }
  while (!rest.empty()) {
    const std::string_view line = next_line();
    if (line.empty()) break;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    sample.headers.emplace_back(AsciiLower(line.substr(0, colon)), std::string(value));
    if (sample.headers.back().first == "content-length") {
      int64_t v = 0;
      for (char c : value) {
        if (c < '0' || c > '9' || v > (int64_t{1} << 40)) break;
        v = v * 10 + (c - '0');
      }
      sample.content_length = v;
    }
  }
  sample.body = rest.substr(0, 4096);
  const probes::Fingerprint fp = probes::ClassifyResponder(sample);
  (void)probes::ToString(fp.emitter);
  (void)probes::IsGatewayError(sample.status, fp.emitter);
  probes::HeaderList headers;
  for (const auto& [name, value] : sample.headers) headers.emplace_back(name, value);
  (void)probes::ClassifyResponse(sample.status, {}, std::string("ok"), {{"server", "nginx"}}, sample.body, headers,
                                 rest.size() > 4096);
  return 0;
}

int Url(const uint8_t* data, size_t size) {
  const std::string_view text = Text(data, size);
  if (auto u = ParseHttpUrl(text)) {
    (void)IsIpLiteral(u->host);
  } else if (!IsValidUtf8(u.error()) || u.error().find('\n') != std::string::npos) {
    __builtin_trap();  // errors are escaped text
  }
  (void)ParseHostPort(text, 80);
  (void)RedactUserInfo(text);
  return 0;
}

int HttpRequest(const uint8_t* data, size_t size) {
  daemon::RequestLimits limits;
  limits.max_body_bytes = 64 * 1024;
  daemon::RequestParser parser(limits);
  // Fed in uneven pieces, as a socket delivers; every complete request is answered.
  std::string_view rest = Text(data, size);
  size_t piece = 1;
  while (!rest.empty()) {
    const std::string_view chunk = rest.substr(0, piece);
    rest.remove_prefix(chunk.size());
    piece = piece * 3 % 17 + 1;
    auto st = parser.Feed(chunk);
    while (true) {
      if (st == daemon::RequestParser::State::kHeadReady) {
        st = parser.AcceptBody();
      } else if (st == daemon::RequestParser::State::kComplete) {
        const std::string body = parser.TakeBody();
        if (body.size() > limits.max_body_bytes) __builtin_trap();
        (void)daemon::SerializeResponse(daemon::HttpResponse::Text(200, body), parser.head(), parser.head().keep_alive);
        st = parser.Next();
      } else {
        break;
      }
    }
    if (st == daemon::RequestParser::State::kError) {
      if (parser.error_status() < 400) __builtin_trap();
      break;
    }
    if (parser.buffered() > limits.max_head_bytes + 64 * 1024) __builtin_trap();  // the raw buffer stays bounded
  }
  return 0;
}

}  // namespace gatewatch::fuzz
