#include "probes/url.h"

#include <doctest/doctest.h>

#include "probes/text.h"

namespace gatewatch {
namespace {

TEST_CASE("Url: http and https with defaults and explicit ports") {
  auto u = ParseHttpUrl("https://Shop.Example.com/healthz?x=1#frag");
  REQUIRE(u.has_value());
  CHECK(u->scheme == "https");
  CHECK(u->host == "shop.example.com");
  CHECK(u->port == 443);
  CHECK_FALSE(u->port_explicit);
  CHECK(u->target == "/healthz?x=1");
  CHECK_FALSE(u->host_is_ip);

  auto v = ParseHttpUrl("http://127.0.0.1:8080");
  REQUIRE(v.has_value());
  CHECK(v->port == 8080);
  CHECK(v->port_explicit);
  CHECK(v->target == "/");
  CHECK(v->host_is_ip);

  auto w = ParseHttpUrl("http://[::1]:9464/metrics");
  REQUIRE(w.has_value());
  CHECK(w->host == "::1");
  CHECK(w->port == 9464);
  CHECK(w->host_is_ip);

  auto q = ParseHttpUrl("http://example.com?a=b");
  REQUIRE(q.has_value());
  CHECK(q->target == "/?a=b");
}

TEST_CASE("Url: an IDN host becomes its ASCII (punycode) name, the target stays as written") {
  auto idn = ParseHttpUrl("https://B\xc3\xbc" "cher.example/Preise?q=1");  // Bücher.example
  REQUIRE(idn.has_value());
  CHECK(idn->host == "xn--bcher-kva.example");
  CHECK(idn->target == "/Preise?q=1");
  CHECK_FALSE(idn->host_is_ip);
  auto dots = ParseHttpUrl("http://example.com/a/../b/./c");
  REQUIRE(dots.has_value());
  CHECK(dots->target == "/a/../b/./c");
  auto bare = ParseHttpUrl("http://example.com#top");
  REQUIRE(bare.has_value());
  CHECK(bare->target == "/");
  CHECK(ParseHttpUrl("http://host:70000/").error().rfind("URL \"http://host:70000/\": ", 0) == 0);
}

TEST_CASE("Url: rejects what a monitor cannot probe") {
  for (const char* bad : {"ftp://x/", "example.com", "http://", "http://user:pw@host/",
                          "http://host:0/", "http://host:70000/", "http://ho st/",
                          "http://host/a b", "http://[::1/", "http://a..b/"}) {
    CAPTURE(bad);
    CHECK_FALSE(ParseHttpUrl(bad).has_value());
  }
}

TEST_CASE("Url: errors quote the URL on one line and without its user info") {
  const auto error = [](std::string_view url) { return ParseHttpUrl(url).error(); };
  CHECK(error("https://ops:s3cret@shop/") ==
        "URL \"https://***@shop/\" contains user info; credentials in URLs end up in logs, use "
        "headers");
  CHECK(error("http://host/a\nb\x1b[2J") ==
        "URL \"http://host/a\\nb\\x1B[2J\" contains a space or control character; "
        "percent-encode it");
  CHECK(error("\x91\x1f" "1u://x") == "expected an http:// or https:// URL, got scheme \"\\x91\\x1F1u\"");
}

TEST_CASE("Quoted, OneLine and RedactUserInfo") {
  CHECK(Quoted("plain") == "\"plain\"");
  CHECK(Quoted("say \"hi\"\\") == "\"say \\\"hi\\\"\\\\\"");
  CHECK(Quoted("a\r\n\tb") == "\"a\\r\\n\\tb\"");
  CHECK(Quoted("\x1b[31m\x7f") == "\"\\x1B[31m\\x7F\"");
  CHECK(Quoted("\xe2\x80\xa8 \xe2\x80\xa9 \xc2\x85") == "\"\\u2028 \\u2029 \\u0085\"");
  CHECK(Quoted("caf\xc3\xa9 \xe2\x82\xac") == "\"caf\xc3\xa9 \xe2\x82\xac\"");  // printable UTF-8 stays
  CHECK(Quoted("\xff\xc0\xaf") == "\"\\xFF\\xC0\\xAF\"");                 // not UTF-8, overlong
  CHECK(OneLine("key \"q\"\nnext") == "key \"q\"\\nnext");
  CHECK(RedactUserInfo("https://u:p@h:8443/x?y@z") == "https://***@h:8443/x?y@z");
  CHECK(RedactUserInfo("http://u@h/") == "http://***@h/");
  CHECK(RedactUserInfo("http://h/path@x") == "http://h/path@x");
  CHECK(RedactUserInfo("no scheme@x") == "no scheme@x");
}

TEST_CASE("HostPort: listen addresses and resolver addresses") {
  auto a = ParseHostPort("0.0.0.0:9464");
  REQUIRE(a.has_value());
  CHECK(a->host == "0.0.0.0");
  CHECK(a->port == 9464);
  auto b = ParseHostPort("[::1]:53");
  REQUIRE(b.has_value());
  CHECK(b->host == "::1");
  auto c = ParseHostPort("127.0.0.53", 53);
  REQUIRE(c.has_value());
  CHECK(c->port == 53);
  CHECK_FALSE(ParseHostPort("127.0.0.1").has_value());
  CHECK_FALSE(ParseHostPort("::1:53").has_value());
  CHECK_FALSE(ParseHostPort(":80").has_value());
  CHECK(IsIpLiteral("10.1.2.3"));
  CHECK(IsIpLiteral("fe80::1"));
  CHECK_FALSE(IsIpLiteral("localhost"));
}

}  // namespace
}  // namespace gatewatch
