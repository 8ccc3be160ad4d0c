#include "daemon/ingest.h"

#include <httplib.h>

#include <doctest/doctest.h>

#include <mutex>
#include <nlohmann/json.hpp>

#include "daemon/result_json.h"

namespace gatewatch::daemon {
namespace {

using namespace std::chrono_literals;

constexpr const char* kToken = "0123456789abcdef0123";

probes::ProbeResult Sample() {
  probes::ProbeResult r;
  r.monitor = "shop";
  r.region = "eu-agent";
  r.started_at = SystemTime(std::chrono::milliseconds(1'763'875'510'123));
  r.attempt = 1;
  r.confirmed = true;
  r.outcome = probes::Outcome::kHttp502;
  r.http_status = 502;
  r.phases.resolve = 1200us;
  r.phases.connect = 300us;
  r.phases.tls = 4100us;
  r.phases.processing = 12000us;
  r.phases.transfer = 100us;
  r.phases.total = 17700us;
  r.bytes_read = 157;
  r.remote_ip = "192.0.2.10";
  r.resolved = {"192.0.2.10", "2001:db8::10"};
  r.http_version = "1.1";
  r.tls.version = "TLSv1.3";
  r.tls.subject = "CN=shop.example.com";
  r.tls.issuer = "CN=Test CA";
  r.tls.earliest_expiry = SystemTime(std::chrono::seconds(1'800'000'000));
  r.tls.earliest_expiry_subject = "CN=Test CA";
  r.emitter = probes::Emitter::kNginx;
  r.reason = probes::Reason::kUnknown;
  r.headers = {{"server", "nginx/1.22.1"}, {"retry-after", "5"}};
  r.body_snippet = "<html>502</html>";
  r.detail = "status 502 not expected";
  return r;
}

TEST_CASE("ResultJson: ToJson and FromJson round-trip every field") {
  const probes::ProbeResult r = Sample();
  auto back = FromJson(ToJson(r));
  REQUIRE_MESSAGE(back.has_value(), (back ? std::string() : back.error()));
  CHECK(back->monitor == r.monitor);
  CHECK(back->region == r.region);
  CHECK(back->started_at == r.started_at);
  CHECK(back->attempt == 1);
  CHECK(back->confirmed);
  CHECK(back->outcome == r.outcome);
  CHECK(back->http_status == 502);
  CHECK(back->phases.resolve == r.phases.resolve);
  CHECK(back->phases.tls == r.phases.tls);
  CHECK(back->phases.total == r.phases.total);
  CHECK(back->bytes_read == 157);
  CHECK(back->remote_ip == r.remote_ip);
  CHECK(back->resolved == r.resolved);
  CHECK(back->http_version == "1.1");
  CHECK(back->tls.version == "TLSv1.3");
  CHECK(back->tls.earliest_expiry == r.tls.earliest_expiry);
  CHECK(back->tls.earliest_expiry_subject == "CN=Test CA");
  CHECK(back->emitter == probes::Emitter::kNginx);
  CHECK(back->headers.size() == 2);
  CHECK(back->body_snippet == r.body_snippet);
  CHECK(back->detail == r.detail);
  // An unreached phase stays absent.
  probes::ProbeResult partial = r;
  partial.phases.tls.reset();
  CHECK_FALSE(FromJson(ToJson(partial))->phases.tls.has_value());
}

TEST_CASE("ResultJson: times in RFC 3339 with offsets and unix seconds") {
  CHECK(*ParseTime("2026-11-23T05:25:10Z") == SystemTime(std::chrono::seconds(1'795'411'510)));
  CHECK(*ParseTime("2026-11-23T06:25:10.5+01:00") == SystemTime(std::chrono::milliseconds(1'795'411'510'500)));
  CHECK(*ParseTime("1795411510") == SystemTime(std::chrono::seconds(1'795'411'510)));
  CHECK_FALSE(ParseTime("yesterday").has_value());
  CHECK_FALSE(ParseTime("2026-13-01T00:00:00Z").has_value());
  CHECK_FALSE(ParseTime("2026-11-23T05:25:10").has_value());  // no zone
  // Beyond the clock's range (nanoseconds end in 2262): an error, not an overflow.
  CHECK(ParseTime("4052-12-07T05:00:00.000Z").error() ==
        "time \"4052-12-07T05:00:00.000Z\" is out of range (years 1970 to 2199)");
  CHECK(ParseTime("99999999999").error() == "unix time \"99999999999\" is out of range");
  CHECK(ParseTime("7258118399").has_value());
  CHECK(ParseTime("2026-11-23\x1b[2J").error().find("\\x1B[2J") != std::string::npos);  // quoted, escaped
}

struct IngestServer {
  ConfigHolder config;
  std::mutex mu;
  std::vector<probes::ProbeResult> accepted;
  bool room = true;
  HttpServer server{HttpServer::Options{HostPort{"127.0.0.1", 0}, nullptr, "", "", 64 * 1024, {}}};
  int port = 0;

  explicit IngestServer(const std::string& token) : config(MakeConfig(token)) {
    RegisterIngestRoute(server, {&config, [this](size_t) { return room; },
                                 [this](probes::ProbeResult r) {
                                   std::lock_guard lock(mu);
                                   accepted.push_back(std::move(r));
                                   return true;
                                 },
                                 100});
    port = *server.Start();
  }
  static std::shared_ptr<const Config> MakeConfig(const std::string& token) {
    auto c = std::make_shared<Config>();
    c->server.api_token = token;
    probes::MonitorConfig m;
    m.name = "shop";
    m.url = "http://127.0.0.1:1/";
    m.regions = {"local", "eu-agent"};
    c->monitors.push_back(m);
    return c;
  }
  httplib::Result Post(const std::string& body, const std::string& token) {
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(5, 0);
    httplib::Headers headers;
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    return client.Post("/api/v1/ingest", headers, body, "application/json");
  }
};

std::string Batch(int n) {
  nlohmann::ordered_json a = nlohmann::ordered_json::array();
  for (int i = 0; i < n; ++i) a.push_back(ToJson(Sample()));
  return a.dump();
}

TEST_CASE("Ingest: without a configured token the endpoint is forbidden") {
  IngestServer s("");
  auto res = s.Post(Batch(1), kToken);
  REQUIRE(res);
  CHECK(res->status == 403);
  CHECK(s.accepted.empty());
}

TEST_CASE("Ingest: bearer token required, compared in full") {
  IngestServer s(kToken);
  for (const std::string& bad : std::vector<std::string>{"", "wrong", std::string(kToken) + "x", std::string(kToken).substr(0, 19)}) {
    CAPTURE(bad);
    auto res = s.Post(Batch(1), bad);
    REQUIRE(res);
    CHECK(res->status == 401);
    CHECK(res->get_header_value("WWW-Authenticate") == "Bearer");
  }
  CHECK(s.accepted.empty());
  CHECK(SecretEquals(kToken, kToken));
  CHECK_FALSE(SecretEquals("", ""));  // an empty secret never matches
}

TEST_CASE("Ingest: a valid batch is accepted whole") {
  IngestServer s(kToken);
  auto res = s.Post(Batch(3), kToken);
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(nlohmann::json::parse(res->body)["accepted"] == 3);
  REQUIRE(s.accepted.size() == 3);
  CHECK(s.accepted[0].monitor == "shop");
  CHECK(s.accepted[0].phases.total == 17700us);
}

TEST_CASE("Ingest: bad input is refused with a precise error and nothing is taken") {
  IngestServer s(kToken);
  struct Case {
    std::string body;
    int status;
    std::string fragment;
  };
  nlohmann::json unknown = nlohmann::json::parse(Batch(2));
  unknown[1]["monitor"] = "nope";
  nlohmann::json bad_outcome = nlohmann::json::parse(Batch(1));
  bad_outcome[0]["outcome"] = "http_999";
  nlohmann::json bad_phase = nlohmann::json::parse(Batch(1));
  bad_phase[0]["phases_seconds"]["ttfb"] = 0.1;
  nlohmann::json no_time = nlohmann::json::parse(Batch(1));
  no_time[0].erase("started_at");
  const auto with = [](const char* key, nlohmann::json value) {
    nlohmann::json b = nlohmann::json::parse(Batch(1));
    b[0][key] = std::move(value);
    return b.dump();
  };
  const Case cases[] = {
      {"\xff\xfe[garbage\x80", 400, "the request body is not valid UTF-8"},
      {with("attempt", 1.5), 400, "results[0].attempt: expected an integer from 0 to 100, got 1.5"},
      {with("attempt", "1"), 400, "results[0].attempt: expected an integer"},
      {with("http_status", true), 400, "results[0].http_status: expected an integer from 0 to 999, got true"},
      {with("bytes_read", -1), 400, "results[0].bytes_read: expected an integer from 0 to "},
      {with("bytes_read", 1e300), 400, "results[0].bytes_read: expected an integer"},
      {with("bytes_read", 18446744073709551615ULL), 400, "results[0].bytes_read: expected an integer"},
      {with("confirmed", 1), 400, "results[0].confirmed: expected true or false"},
      {with("region", "made-up"), 400, "results[0].region: \"made-up\" is not a region of monitor \"shop\""},
      {"{not json", 400, "invalid JSON"},
      {"[2e22222]", 400, "invalid JSON"},  // a number out of double's range
      {"{}", 400, "expected a JSON array"},
      {unknown.dump(), 400, "results[1].monitor: unknown monitor \"nope\""},
      {bad_outcome.dump(), 400, "results[0].outcome: unknown class \"http_999\""},
      {bad_phase.dump(), 400, "results[0].phases_seconds.ttfb: unknown phase"},
      {no_time.dump(), 400, "results[0].started_at: required"},
      {Batch(101), 413, ""},  // over 100 results, or over the body limit
  };
  for (const Case& c : cases) {
    CAPTURE(c.fragment);
    auto res = s.Post(c.body, kToken);
    REQUIRE(res);
    CHECK(res->status == c.status);
    if (c.status == 400) CHECK(nlohmann::json::parse(res->body)["error"].get<std::string>().find(c.fragment) != std::string::npos);
  }
  CHECK(s.accepted.empty());
}

TEST_CASE("Ingest: a full writer queue answers 503 with Retry-After") {
  IngestServer s(kToken);
  s.room = false;
  auto res = s.Post(Batch(2), kToken);
  REQUIRE(res);
  CHECK(res->status == 503);
  CHECK(res->get_header_value("Retry-After") == "5");
  CHECK(s.accepted.empty());
}

}  // namespace
}  // namespace gatewatch::daemon
