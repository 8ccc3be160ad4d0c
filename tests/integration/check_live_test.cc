// `gatewatch check` as a real process against REAL gateways (nginx and HAProxy from the
// Debian packages, tests/support/gateways.h) on loopback: the JSON and human output name the
// gateway that answered and why, an --upstream probe shows which side fails, and the verdict
// decides the exit code. The verdict matrix itself is diagnosis_live_test.cc. 127.0.0.1 only.

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fleet/raw_server.h"
#include "tests/support/gateways.h"
#include "tests/support/process.h"

namespace gatewatch::daemon {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::BadUpstream;
using testing::FreePort;
using testing::HaproxyGateway;
using testing::NginxGateway;

// `gatewatch check URL [--upstream U]... [--json]`, bounded: the probe gives up after 5 s,
// the process is killed after 30 s.
testing::RunResult Check(const std::string& url, bool json_output,
                         const std::vector<std::string>& upstreams = {}) {
  std::vector<std::string> argv = {GATEWATCH_BINARY, "check", url, "--timeout", "5s"};
  for (const std::string& u : upstreams) {
    argv.push_back("--upstream");
    argv.push_back(u);
  }
  if (json_output) argv.push_back("--json");
  return testing::RunCommand(argv, 30s);
}

json ParseJson(const testing::RunResult& r) {
  json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  REQUIRE_MESSAGE(j.is_object(), "not a JSON object on stdout:\n"
                                     << r.out << "\nstderr:\n"
                                     << r.err);
  return j;
}

// The last non-empty line of `text`.
std::string LastLine(const std::string& text) {
  const size_t end = text.find_last_not_of('\n');
  if (end == std::string::npos) return "";
  const size_t start = text.rfind('\n', end);
  return text.substr(start == std::string::npos ? 0 : start + 1,
                     end - (start == std::string::npos ? 0 : start + 1) + 1);
}

bool Contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("Check: live nginx 502 from a dead upstream is named nginx") {
  const uint16_t dead = FreePort();
  NginxGateway nginx({{.location = "/", .servers = {dead}}});
  INFO("nginx log:\n" << nginx.Log());

  SUBCASE("--json: http_502 from nginx") {
    const testing::RunResult r = Check(nginx.Url("/"), true);
    INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
    CHECK(r.exit_code == 1);
    const json j = ParseJson(r);
    const json& t = j.at("target");
    CHECK(t.value("outcome", "") == "http_502");
    CHECK(t.value("emitter", "") == "nginx");
    CHECK(t.value("http_status", 0) == 502);
    CHECK(t.at("headers").value("server", "").starts_with("nginx"));
    CHECK(j.value("healthy", true) == false);
    CHECK(j.at("upstreams").empty());
    // Without upstreams the gateway's own page says its upstream fails, not which.
    CHECK(j.value("verdict", "") == "behind_gateway");
    CHECK(Contains(j.value("summary", ""), "link the upstream monitors to name which"));
    CHECK(Contains(j.at("evidence").at("notes").dump(), "no upstreams linked"));
  }
  SUBCASE("--json --upstream the dead port: connect_refused, upstream_down") {
    const std::string upstream = "http://127.0.0.1:" + std::to_string(dead) + "/";
    const testing::RunResult r = Check(nginx.Url("/"), true, {upstream});
    INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
    CHECK(r.exit_code == 1);
    const json j = ParseJson(r);
    CHECK(j.at("target").value("outcome", "") == "http_502");
    CHECK(j.at("target").value("emitter", "") == "nginx");
    REQUIRE(j.at("upstreams").size() == 1);
    CHECK(j.at("upstreams")[0].value("outcome", "") == "connect_refused");
    CHECK(j.at("upstreams")[0].value("url", "") == upstream);
    CHECK(j.at("upstreams")[0].value("name", "") == "127.0.0.1:" + std::to_string(dead));
    CHECK(j.value("verdict", "") == "upstream_down");
    CHECK(Contains(j.value("summary", ""), "refuses connections (connect_refused)"));
    CHECK(j.at("evidence").value("verdict", "") == "upstream_down");
  }
  SUBCASE("human output: the probe, then the verdict with its evidence") {
    const std::string upstream = "http://127.0.0.1:" + std::to_string(dead) + "/";
    const testing::RunResult r = Check(nginx.Url("/"), false, {upstream});
    INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
    CHECK(r.exit_code == 1);
    CHECK(Contains(r.out, "emitter   nginx"));
    CHECK(Contains(r.out, "\nverdict   upstream_down\n"));
    CHECK(Contains(r.out, "\nsummary   upstream 127.0.0.1:" + std::to_string(dead) +
                              " refuses connections (connect_refused)"));
    CHECK(Contains(r.out, "\nfailing   local (http_502 from nginx)\n"));
    CHECK(Contains(r.out, "\nupstream  127.0.0.1:" + std::to_string(dead) +
                              "  failing  connect_refused in local"));
    CHECK(r.out.find("verdict") > r.out.find("outcome   http_502"));  // details first
    CHECK(LastLine(r.out).starts_with("emitter   nginx"));
  }
}

TEST_CASE("Check: live nginx 504 from a silent upstream is upstream_timeout") {
  BadUpstream silent(BadUpstream::Mode::kSilent);
  NginxGateway nginx(
      {{.location = "/", .servers = {silent.port()}, .directives = "proxy_read_timeout 1s;"}});
  INFO("nginx log:\n" << nginx.Log());

  const testing::RunResult r = Check(nginx.Url("/slow"), true);
  INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
  CHECK(r.exit_code == 1);
  CHECK(silent.accepted() >= 1);
  const json j = ParseJson(r);
  const json& t = j.at("target");
  CHECK(t.value("outcome", "") == "http_504");
  CHECK(t.value("http_status", 0) == 504);
  CHECK(t.value("emitter", "") == "nginx");
  CHECK(t.value("reason", "") == "upstream_timeout");
  CHECK(j.value("verdict", "") == "behind_gateway");  // no --upstream: nginx blames its upstream
}

TEST_CASE("Check: live HAProxy 503 with its only server down and 502 on a close") {
  BadUpstream closer(BadUpstream::Mode::kClose);
  // The default backend's only server is a dead port (health-checked down).
  HaproxyGateway haproxy({{.path_prefix = "/close", .servers = {closer.port()}},
                          {.path_prefix = "", .servers = {FreePort()}, .health_check = true}});
  INFO("haproxy log:\n" << haproxy.Log());

  SUBCASE("only server down: http_503, no_healthy_upstream") {
    const testing::RunResult r = Check(haproxy.Url("/"), true);
    INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
    CHECK(r.exit_code == 1);
    const json j = ParseJson(r);
    const json& t = j.at("target");
    CHECK(t.value("outcome", "") == "http_503");
    CHECK(t.value("http_status", 0) == 503);
    CHECK(t.value("emitter", "") == "haproxy");
    CHECK(t.value("reason", "") == "no_healthy_upstream");
  }
  SUBCASE("upstream closes without a reply: http_502 from haproxy, reason unknown") {
    const testing::RunResult r = Check(haproxy.Url("/close"), true);
    INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
    CHECK(r.exit_code == 1);
    CHECK(closer.accepted() >= 1);
    const json j = ParseJson(r);
    const json& t = j.at("target");
    CHECK(t.value("outcome", "") == "http_502");
    CHECK(t.value("http_status", 0) == 502);
    CHECK(t.value("emitter", "") == "haproxy");
    CHECK(t.value("reason", "") == "unknown");
  }
}

TEST_CASE("Check: live nginx in front of a healthy upstream is healthy") {
  fleet::RawHttpServer upstream;  // 200 "ok"
  NginxGateway nginx({{.location = "/", .servers = {static_cast<uint16_t>(upstream.port())}}});
  INFO("nginx log:\n" << nginx.Log());

  SUBCASE("--json: ok, healthy, the upstream too") {
    const testing::RunResult r = Check(nginx.Url("/"), true, {upstream.Url("/")});
    INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
    CHECK(r.exit_code == 0);
    const json j = ParseJson(r);
    CHECK(j.at("target").value("outcome", "") == "ok");
    CHECK(j.at("target").value("http_status", 0) == 200);
    CHECK_FALSE(j.at("target").contains("emitter"));
    CHECK(j.value("healthy", false) == true);
    REQUIRE(j.at("upstreams").size() == 1);
    CHECK(j.at("upstreams")[0].value("outcome", "") == "ok");
    CHECK(j.value("verdict", "") == "healthy");
    CHECK(Contains(j.value("summary", ""), "healthy in 1/1 regions; 1/1 upstreams healthy"));
  }
  SUBCASE("human output: verdict healthy") {
    const testing::RunResult r = Check(nginx.Url("/"), false);
    INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
    CHECK(r.exit_code == 0);
    CHECK(Contains(r.out, "outcome   ok"));
    CHECK(Contains(r.out, "\nverdict   healthy\n"));
    CHECK(LastLine(r.out) == "healthy   local");
  }
  CHECK(upstream.RequestCount() >= 1);
}

}  // namespace gatewatch::daemon
