#include "probes/classify.h"

#include <curl/curl.h>

#include <cerrno>
#include <doctest/doctest.h>

#include "probes/outcome.h"

namespace gatewatch::probes {
namespace {

TEST_CASE("Outcome: every name round-trips and matches docs/probes.md") {
  for (size_t i = 0; i < kOutcomeNames.size(); ++i) {
    const auto o = static_cast<Outcome>(i);
    CHECK(OutcomeFromString(ToString(o)) == o);
  }
  CHECK(ToString(Outcome::kHttp502) == "http_502");
  CHECK(ToString(Outcome::kExcused) == "excused");
  CHECK_FALSE(OutcomeFromString("http_501").has_value());
  CHECK(IsFailure(Outcome::kTimeoutTtfb));
  CHECK_FALSE(IsFailure(Outcome::kOk));
  CHECK_FALSE(IsFailure(Outcome::kExcused));
  CHECK(OutcomeForUnexpectedStatus(502) == Outcome::kHttp502);
  CHECK(OutcomeForUnexpectedStatus(522) == Outcome::kHttp5xx);
  CHECK(OutcomeForUnexpectedStatus(501) == Outcome::kHttp5xx);
  CHECK(OutcomeForUnexpectedStatus(429) == Outcome::kHttp4xx);
  CHECK(OutcomeForUnexpectedStatus(302) == Outcome::kUnexpectedStatus);
  CHECK(OutcomeForUnexpectedStatus(101) == Outcome::kUnexpectedStatus);
}

TransferFacts Facts(CURLcode code) {
  TransferFacts f;
  f.curl_code = code;
  return f;
}

TEST_CASE("Classify: the phase reached decides a timeout") {
  TransferFacts f = Facts(CURLE_OPERATION_TIMEDOUT);
  CHECK(ClassifyTransfer(f).outcome == Outcome::kConnectTimeout);
  f.connected = true;
  CHECK(ClassifyTransfer(f).outcome == Outcome::kTimeoutTtfb);
  f.https = true;
  CHECK(ClassifyTransfer(f).outcome == Outcome::kTlsError);  // handshake timed out
  f.tls_done = true;
  CHECK(ClassifyTransfer(f).outcome == Outcome::kTimeoutTtfb);
  f.headers_received = true;  // a status line, then headers that never end
  CHECK(ClassifyTransfer(f).outcome == Outcome::kTimeoutTtfb);
  f.headers_complete = true;
  CHECK(ClassifyTransfer(f).outcome == Outcome::kTimeoutBody);
}

TEST_CASE("Classify: connect errors by errno") {
  struct Row {
    int err;
    Outcome want;
  };
  for (const Row& r : {Row{ECONNREFUSED, Outcome::kConnectRefused}, Row{ENETUNREACH, Outcome::kNetworkUnreachable},
                       Row{EHOSTUNREACH, Outcome::kNetworkUnreachable}, Row{ETIMEDOUT, Outcome::kConnectTimeout},
                       Row{ECONNRESET, Outcome::kConnectionReset}}) {
    CAPTURE(r.err);
    TransferFacts f = Facts(CURLE_COULDNT_CONNECT);
    f.os_errno = r.err;
    CHECK(ClassifyTransfer(f).outcome == r.want);
  }
}

TEST_CASE("Classify: proxy failures are proxy_error, not the target's") {
  TransferFacts f = Facts(CURLE_RECV_ERROR);
  f.via_proxy = true;
  f.proxy_connect_code = 403;
  const Classified c = ClassifyTransfer(f);
  CHECK(c.outcome == Outcome::kProxyError);
  CHECK(c.detail == "proxy answered CONNECT with 403");
  TransferFacts down = Facts(CURLE_COULDNT_CONNECT);
  down.via_proxy = true;
  down.os_errno = ECONNREFUSED;
  CHECK(ClassifyTransfer(down).outcome == Outcome::kProxyError);
  // Once the tunnel is up (CONNECT 200), failures are the target's again.
  TransferFacts through = Facts(CURLE_GOT_NOTHING);
  through.via_proxy = true;
  through.proxy_connect_code = 200;
  through.connected = true;
  CHECK(ClassifyTransfer(through).outcome == Outcome::kEmptyReply);
}

TEST_CASE("Classify: TLS, protocol and redirect errors") {
  CHECK(ClassifyTransfer(Facts(CURLE_PEER_FAILED_VERIFICATION)).outcome == Outcome::kTlsCertInvalid);
  CHECK(ClassifyTransfer(Facts(CURLE_SSL_CONNECT_ERROR)).outcome == Outcome::kTlsError);
  CHECK(ClassifyTransfer(Facts(CURLE_UNSUPPORTED_PROTOCOL)).outcome == Outcome::kMalformedResponse);
  CHECK(ClassifyTransfer(Facts(CURLE_WEIRD_SERVER_REPLY)).outcome == Outcome::kMalformedResponse);
  CHECK(ClassifyTransfer(Facts(CURLE_TOO_MANY_REDIRECTS)).outcome == Outcome::kRedirectLoop);
  CHECK(ClassifyTransfer(Facts(CURLE_GOT_NOTHING)).outcome == Outcome::kEmptyReply);
  TransferFacts reset_in_tls = Facts(CURLE_RECV_ERROR);
  reset_in_tls.https = true;
  reset_in_tls.connected = true;
  CHECK(ClassifyTransfer(reset_in_tls).outcome == Outcome::kTlsError);
  TransferFacts big = Facts(CURLE_WRITE_ERROR);
  big.headers_too_large = true;
  CHECK(ClassifyTransfer(big).outcome == Outcome::kMalformedResponse);
  TransferFacts capped = Facts(CURLE_WRITE_ERROR);
  capped.body_capped = true;
  CHECK(ClassifyTransfer(capped).transfer_ok);
  TransferFacts engine = Facts(CURLE_ABORTED_BY_CALLBACK);
  engine.engine_outcome = Outcome::kDnsError;
  engine.engine_detail = "NXDOMAIN";
  CHECK(ClassifyTransfer(engine).outcome == Outcome::kDnsError);
}

TEST_CASE("Classify: a complete response is judged by status, then assertions") {
  const std::vector<StatusMatcher> expect = {{0, 2}, {301, 0}};
  const HeaderList headers = {{"content-type", "application/json"}, {"server", "nginx"}};
  CHECK(ClassifyResponse(200, expect, std::nullopt, {}, "", headers, false).outcome == Outcome::kOk);
  CHECK(ClassifyResponse(301, expect, std::nullopt, {}, "", headers, false).outcome == Outcome::kOk);
  CHECK(ClassifyResponse(302, expect, std::nullopt, {}, "", headers, false).outcome == Outcome::kUnexpectedStatus);
  CHECK(ClassifyResponse(503, expect, std::nullopt, {}, "", headers, false).outcome == Outcome::kHttp503);
  const auto body = ClassifyResponse(200, expect, std::string("\"status\":\"up\""), {}, "{\"status\":\"down\"}",
                                     headers, true);
  CHECK(body.outcome == Outcome::kAssertionFailed);
  CHECK(body.detail.find("in the first 17 bytes") != std::string::npos);
  CHECK(ClassifyResponse(200, expect, std::nullopt, {{"content-type", "json"}}, "", headers, false).outcome ==
        Outcome::kOk);
  const auto missing = ClassifyResponse(200, expect, std::nullopt, {{"x-version", "2"}}, "", headers, false);
  CHECK(missing.outcome == Outcome::kAssertionFailed);
  CHECK(missing.detail == "header x-version is missing");
  // A failing status wins over assertions: the status is the finding.
  CHECK(ClassifyResponse(500, expect, std::string("ok"), {}, "", headers, false).outcome == Outcome::kHttp500);
}

}  // namespace
}  // namespace gatewatch::probes
