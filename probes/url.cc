#include "probes/url.h"

#include <arpa/inet.h>

#include <curl/curl.h>
#include <idn2.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <optional>

#include "probes/text.h"

namespace gatewatch {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool ValidHostname(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  size_t label_len = 0;
  for (char c : host) {
    if (c == '.') {
      if (label_len == 0) return false;
      label_len = 0;
      continue;
    }
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
    if (!ok || ++label_len > 63) return false;
  }
  return true;
}

Result<int> ParsePort(std::string_view s) {
  if (s.empty() || s.size() > 5 ||
      !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return Error("port " + Quoted(s) + " is not a number from 1 to 65535");
  }
  const int port = std::stoi(std::string(s));
  if (port > 65535) return Error("port " + std::string(s) + " is out of range 1..65535");
  return port;
}

}  // namespace

bool IsIpv6Literal(std::string_view text) {
  in6_addr a6{};
  return inet_pton(AF_INET6, std::string(text).c_str(), &a6) == 1;
}

bool IsIpLiteral(std::string_view text) {
  in_addr a4{};
  return inet_pton(AF_INET, std::string(text).c_str(), &a4) == 1 || IsIpv6Literal(text);
}

Result<HostPort> ParseHostPort(std::string_view text, int default_port) {
  const std::string quoted = Quoted(RedactUserInfo(text));
  HostPort hp;
  std::string_view rest;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) return Error(quoted + " has an unclosed '['");
    hp.host = std::string(text.substr(1, close - 1));
    if (!IsIpv6Literal(hp.host)) return Error(quoted + ": " + Quoted(hp.host) + " is not an IPv6 address");
    rest = text.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return Error(quoted + ": expected ':' after ']'");
  } else {
    const size_t colon = text.rfind(':');
    if (colon != std::string_view::npos && text.find(':') != colon) {
      return Error(quoted + ": write IPv6 addresses in brackets, e.g. \"[::1]:9464\"");
    }
    hp.host = std::string(text.substr(0, colon));
    rest = colon == std::string_view::npos ? std::string_view() : text.substr(colon);
    if (hp.host.empty()) return Error(quoted + " has no host (use \"0.0.0.0:PORT\" for all interfaces)");
    if (!IsIpLiteral(hp.host) && !ValidHostname(hp.host)) {
      return Error(quoted + ": " + Quoted(hp.host) + " is not a valid host name or IP address");
    }
  }
  if (rest.empty()) {
    if (default_port <= 0) return Error(quoted + " has no port; expected HOST:PORT");
    hp.port = default_port;
    return hp;
  }
  auto port = ParsePort(rest.substr(1));
  if (!port) return Error(quoted + ": " + port.error());
  hp.port = *port;
  return hp;
}

namespace {

struct CurlUrlFree {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
struct CurlFree {
  void operator()(char* p) const { curl_free(p); }
};

// One part of a parsed URL; nullopt when the URL has none (no port, no query).
std::optional<std::string> UrlPart(CURLU* u, CURLUPart part, unsigned flags, CURLUcode* code) {
  char* raw = nullptr;
  *code = curl_url_get(u, part, &raw, flags);
  std::unique_ptr<char, CurlFree> owned(raw);
  if (*code != CURLUE_OK || raw == nullptr) return std::nullopt;
  return std::string(raw);
}

}  // namespace

Result<HttpUrl> ParseHttpUrl(std::string_view text) {
  const std::string quoted = Quoted(RedactUserInfo(text));
  const size_t sep = text.find("://");
  if (sep == std::string_view::npos) {
    return Error("expected an http:// or https:// URL, got " + quoted);
  }
  HttpUrl url;
  url.scheme = Lower(text.substr(0, sep));
  if (url.scheme != "http" && url.scheme != "https") {
    return Error("expected an http:// or https:// URL, got scheme " + Quoted(url.scheme));
  }
  const std::string_view rest = text.substr(sep + 3);
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  if (authority.find('@') != std::string_view::npos) {
    return Error("URL " + quoted + " contains user info; credentials in URLs end up in logs, use headers");
  }
  if (authority.empty()) return Error("URL " + quoted + " has no host");
  for (char c : text) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) {
      return Error("URL " + quoted + " contains a space or control character; percent-encode it");
    }
  }
  // libcurl's parser is the one that will send the request: what it accepts here is what it
  // probes. PATH_AS_IS keeps the target as written ("/a/../b" is not folded). An IDN host
  // (bücher.example) becomes the ASCII name DNS and TLS use (xn--bcher-kva.example).
  std::unique_ptr<CURLU, CurlUrlFree> u(curl_url());
  if (!u) return Error("URL " + quoted + ": out of memory");
  const std::string whole(text);
  if (CURLUcode rc = curl_url_set(u.get(), CURLUPART_URL, whole.c_str(), CURLU_PATH_AS_IS);
      rc != CURLUE_OK) {
    return Error("URL " + quoted + ": " + curl_url_strerror(rc));
  }
  CURLUcode rc = CURLUE_OK;
  std::optional<std::string> host = UrlPart(u.get(), CURLUPART_HOST, 0, &rc);
  if (!host || host->empty()) {
    return Error("URL " + quoted + ": " +
                 (rc == CURLUE_OK ? std::string("has no host") : curl_url_strerror(rc)));
  }
  url.href = whole;
  if (std::any_of(host->begin(), host->end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; })) {
    // IDNA 2008 (UTS #46) from UTF-8 directly: libcurl's own conversion goes through the
    // locale, which in a container is "C" and cannot hold the name.
    char* ascii = nullptr;
    const int idn = idn2_lookup_u8(reinterpret_cast<const uint8_t*>(host->c_str()),
                                   reinterpret_cast<uint8_t**>(&ascii), IDN2_NONTRANSITIONAL);
    std::unique_ptr<char, decltype(&idn2_free)> owned(ascii, &idn2_free);
    if (idn != IDN2_OK) {
      return Error("URL " + quoted + ": host " + Quoted(*host) + " is not a valid international "
                   "domain name (" + idn2_strerror(idn) + ")");
    }
    *host = ascii;
    curl_url_set(u.get(), CURLUPART_HOST, ascii, 0);
    if (auto rebuilt = UrlPart(u.get(), CURLUPART_URL, 0, &rc)) url.href = *rebuilt;
  }
  if (host->front() == '[' && host->back() == ']') *host = host->substr(1, host->size() - 2);
  if (!IsIpLiteral(*host) && !ValidHostname(*host)) {
    return Error("URL " + quoted + ": " + Quoted(*host) + " is not a valid host name or IP address");
  }
  url.host = Lower(*host);
  url.host_is_ip = IsIpLiteral(url.host);
  if (const auto port = UrlPart(u.get(), CURLUPART_PORT, 0, &rc)) {
    url.port = std::stoi(*port);  // libcurl checked: 0..65535, digits only
    url.port_explicit = true;
  } else {
    url.port = url.scheme == "https" ? 443 : 80;
  }
  if (url.port == 0) return Error("URL " + quoted + ": port 0 is not a valid port");
  url.target = UrlPart(u.get(), CURLUPART_PATH, 0, &rc).value_or("/");
  if (url.target.empty()) url.target = "/";
  if (const auto query = UrlPart(u.get(), CURLUPART_QUERY, 0, &rc)) url.target += "?" + *query;
  return url;
}

}  // namespace gatewatch
