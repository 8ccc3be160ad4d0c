#include "probes/url.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>

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
  std::string_view rest = text.substr(sep + 3);
  if (const size_t hash = rest.find('#'); hash != std::string_view::npos) rest = rest.substr(0, hash);
  const size_t path_start = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, path_start);
  url.target = path_start == std::string_view::npos ? "/" : std::string(rest.substr(path_start));
  if (!url.target.empty() && url.target.front() == '?') url.target = "/" + url.target;
  if (authority.find('@') != std::string_view::npos) {
    return Error("URL " + quoted + " contains user info; credentials in URLs end up in logs, use headers");
  }
  if (authority.empty()) return Error("URL " + quoted + " has no host");
  for (char c : url.target) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) {
      return Error("URL " + quoted + " contains a space or control character; percent-encode it");
    }
  }
  const int default_port = url.scheme == "https" ? 443 : 80;
  auto hp = ParseHostPort(authority, default_port);
  if (!hp) return Error("URL " + quoted + ": " + hp.error());
  if (hp->port == 0) return Error("URL " + quoted + ": port 0 is not a valid port");
  url.host = Lower(hp->host);
  url.port = hp->port;
  url.port_explicit = authority.front() == '['
                          ? authority.find("]:") != std::string_view::npos
                          : authority.find(':') != std::string_view::npos;
  url.host_is_ip = IsIpLiteral(url.host);
  return url;
}

}  // namespace gatewatch
