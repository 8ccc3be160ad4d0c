#include "daemon/http_parser.h"

#include <doctest/doctest.h>

#include <string>

using gatewatch::daemon::PercentDecode;
using gatewatch::daemon::RequestLimits;
using gatewatch::daemon::RequestParser;
using State = RequestParser::State;

namespace {

RequestLimits Small() {
  RequestLimits l;
  l.max_request_line = 256;
  l.max_head_bytes = 1024;
  l.max_headers = 10;
  l.max_body_bytes = 1000;
  return l;
}

// Feeds a whole request and accepts its body; returns the final state.
State ParseAll(RequestParser& p, std::string_view bytes) {
  State st = p.Feed(bytes);
  if (st == State::kHeadReady) st = p.AcceptBody();
  return st;
}

}  // namespace

TEST_CASE("http parser: request line, decoded path and query, lower-case header names") {
  RequestParser p(Small());
  REQUIRE(ParseAll(p, "GET /api/v1/monitors/a%20b?x=1&y=a+b%2Fc&flag HTTP/1.1\r\nHost: h\r\nX-Thing:  v  \r\n\r\n") ==
          State::kComplete);
  const auto& h = p.head();
  CHECK(h.method == "GET");
  CHECK(h.path == "/api/v1/monitors/a b");
  REQUIRE(h.params.size() == 3);
  CHECK(h.params[0] == std::pair<std::string, std::string>{"x", "1"});
  CHECK(h.params[1] == std::pair<std::string, std::string>{"y", "a b/c"});
  CHECK(h.params[2] == std::pair<std::string, std::string>{"flag", ""});
  CHECK(h.Header("x-thing") == "v");
  CHECK(h.keep_alive);
  CHECK_FALSE(h.HasBody());
}

TEST_CASE("http parser: byte-at-a-time input gives the same request as one write") {
  const std::string req = "POST /in HTTP/1.1\nContent-Length: 5\nConnection: close\n\nhello";
  RequestParser p(Small());
  State st = State::kHead;
  for (char c : req) {
    st = p.Feed(std::string_view(&c, 1));
    if (st == State::kHeadReady) st = p.AcceptBody();
  }
  REQUIRE(st == State::kComplete);
  CHECK(p.head().content_length == 5u);
  CHECK_FALSE(p.head().keep_alive);
  CHECK(p.TakeBody() == "hello");
}

TEST_CASE("http parser: the body waits for AcceptBody, and a pipelined request follows Next") {
  RequestParser p(Small());
  CHECK(p.Feed("POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.0\r\n\r\n") == State::kHeadReady);
  CHECK(p.buffered() > 0);  // the body is not consumed before the caller accepts it
  REQUIRE(p.AcceptBody() == State::kComplete);
  CHECK(p.TakeBody() == "abc");
  REQUIRE(p.Next() == State::kHeadReady);
  CHECK(p.head().path == "/b");
  CHECK_FALSE(p.head().keep_alive);  // HTTP/1.0 without keep-alive
  CHECK(p.AcceptBody() == State::kComplete);
}

TEST_CASE("http parser: chunked bodies with extensions and trailers") {
  RequestParser p(Small());
  REQUIRE(ParseAll(p, "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n") == State::kComplete);
  CHECK(p.head().chunked);
  CHECK(p.TakeBody() == "hello world");
}

TEST_CASE("http parser: every transfer encoding is held to the body limit") {
  SUBCASE("Content-Length over the limit is refused when the body would be read") {
    RequestParser p(Small());
    CHECK(p.Feed("POST / HTTP/1.1\r\nContent-Length: 1001\r\n\r\n") == State::kHeadReady);
    CHECK(p.AcceptBody() == State::kError);
    CHECK(p.error_status() == 413);
  }
  SUBCASE("a Content-Length too long to be a number") {
    RequestParser p(Small());
    CHECK(ParseAll(p, "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n") == State::kError);
    CHECK(p.error_status() == 413);
  }
  SUBCASE("one chunk over the limit is refused at its size line") {
    RequestParser p(Small());
    CHECK(ParseAll(p, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n") == State::kError);
    CHECK(p.error_status() == 413);
  }
  SUBCASE("a chunk size that overflows 64 bits") {
    RequestParser p(Small());
    CHECK(ParseAll(p, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFFFFFF\r\n") == State::kError);
    CHECK(p.error_status() == 413);
  }
  SUBCASE("many small chunks: refused when their sum passes the limit, with little buffered") {
    RequestParser p(Small());
    REQUIRE(ParseAll(p, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n") == State::kBody);
    size_t fed = 0;
    State st = State::kBody;
    while (st == State::kBody && fed < 100'000) {
      st = p.Feed("1\r\nx\r\n");
      fed += 6;
      CHECK(p.buffered() < 16);
    }
    CHECK(st == State::kError);
    CHECK(p.error_status() == 413);
    CHECK(fed == 6 * 1001);  // the 1001st byte is the first one over
  }
}

TEST_CASE("http parser: framing a front proxy could read differently is refused") {
  struct Case {
    const char* request;
    int status;
  };
  const Case cases[] = {
      {"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", 501},
      {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nnocolon\r\n\r\n", 400},
      {"GET /  HTTP/1.1\r\n\r\n", 400},
      {"GET http://example.test/ HTTP/1.1\r\n\r\n", 400},
      {"G(T / HTTP/1.1\r\n\r\n", 400},
      {"GET / HTTP/2.0\r\n\r\n", 505},
      {"GET / HTTX/1.1\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nExpect: something\r\n\r\n", 417},
  };
  for (const Case& c : cases) {
    CAPTURE(c.request);
    RequestParser p(Small());
    CHECK(p.Feed(c.request) == State::kError);
    CHECK(p.error_status() == c.status);
    CHECK_FALSE(p.error_message().empty());
  }
  SUBCASE("the same Content-Length twice is one length") {
    RequestParser p(Small());
    CHECK(ParseAll(p, "POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok") == State::kComplete);
  }
}

TEST_CASE("http parser: head size bounds") {
  SUBCASE("a request line over the limit is 414, before its end arrives") {
    RequestParser p(Small());
    CHECK(p.Feed("GET /" + std::string(300, 'a')) == State::kError);
    CHECK(p.error_status() == 414);
  }
  SUBCASE("headers over the head limit are 431, before their end arrives") {
    RequestParser p(Small());
    CHECK(p.Feed("GET / HTTP/1.1\r\nX: " + std::string(2000, 'a')) == State::kError);
    CHECK(p.error_status() == 431);
  }
  SUBCASE("more headers than allowed are 431") {
    RequestParser p(Small());
    std::string req = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < 11; ++i) req += "X: y\r\n";
    CHECK(p.Feed(req + "\r\n") == State::kError);
    CHECK(p.error_status() == 431);
  }
  SUBCASE("trailers count against the head limit") {
    RequestParser p(Small());
    CHECK(ParseAll(p, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: " + std::string(2000, 'a')) ==
          State::kError);
    CHECK(p.error_status() == 431);
  }
  SUBCASE("endless empty lines before a request line") {
    RequestParser p(Small());
    CHECK(p.Feed(std::string(1000, '\n')) == State::kError);
    CHECK(p.error_status() == 400);
  }
}

TEST_CASE("http parser: connection semantics") {
  RequestParser a(Small());
  REQUIRE(ParseAll(a, "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") == State::kComplete);
  CHECK(a.head().keep_alive);
  RequestParser b(Small());
  REQUIRE(ParseAll(b, "GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n") == State::kComplete);
  CHECK_FALSE(b.head().keep_alive);
  RequestParser c(Small());
  REQUIRE(c.Feed("POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n") == State::kHeadReady);
  CHECK(c.head().expect_continue);
}

TEST_CASE("http parser: percent-decoding") {
  CHECK(PercentDecode("a%41%4a%zz%4", false) == "aAJ%zz%4");
  CHECK(PercentDecode("a+b", false) == "a+b");
  CHECK(PercentDecode("a+b", true) == "a b");
  CHECK(PercentDecode("%ff", false) == "\xff");
}
