// /metrics against the real tools: `promtool check metrics` on a varied rendering and on
// the live daemon's scrape, a real Prometheus scraping the real daemon, and a SIGHUP
// reload removing a monitor's series. promtool and prometheus come from the Debian
// `prometheus` package (scripts/test-packages.txt); a missing binary fails the test.

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "daemon/metrics.h"
#include "fleet/pages.h"
#include "fleet/raw_server.h"
#include "tests/support/listen_port.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace gatewatch::daemon {
namespace {

using namespace std::chrono_literals;
using probes::Emitter;
using probes::Outcome;
using probes::Reason;
using testing::ReadFile;
using testing::WaitFor;
using us = std::chrono::microseconds;

constexpr const char* kPromtool = "/usr/bin/promtool";
constexpr const char* kPrometheus = "/usr/bin/prometheus";

// Runs `promtool check metrics` on `text`; returns its complaints ("" when clean).
std::string PromtoolProblems(const std::string& text) {
  REQUIRE_MESSAGE(std::filesystem::exists(kPromtool),
                  kPromtool << " is missing: install the Debian package `prometheus` "
                               "(listed in scripts/test-packages.txt)");
  testing::TempDir dir;
  const std::string file = dir.Write("metrics.txt", text);
  auto r = testing::RunCommand(
      {"/bin/sh", "-c", std::string(kPromtool) + " check metrics < '" + file + "'"}, 30s);
  if (r.exit_code == 0 && r.out.empty() && r.err.empty()) return "";
  return "exit " + std::to_string(r.exit_code) + "\n" + r.out + r.err;
}

probes::ProbeResult Make(const std::string& monitor, Outcome outcome, int status, bool confirmed,
                         int attempt = 0) {
  probes::ProbeResult r;
  r.monitor = monitor;
  r.region = "eu-west";
  r.outcome = outcome;
  r.http_status = status;
  r.confirmed = confirmed;
  r.attempt = attempt;
  r.phases.resolve = us(150);
  r.phases.total = us(900);
  return r;
}

TEST_CASE(
    "Metrics: promtool check metrics accepts every outcome class, emitters, TLS and self stats") {
  Metrics m("0.1.0");
  for (size_t i = 0; i < probes::kOutcomeNames.size(); ++i) {
    const auto outcome = static_cast<Outcome>(i);
    int status = 0;
    if (outcome == Outcome::kOk || outcome == Outcome::kAssertionFailed) status = 200;
    if (outcome == Outcome::kHttp4xx) status = 404;
    if (outcome == Outcome::kHttp500) status = 500;
    if (outcome == Outcome::kHttp502) status = 502;
    if (outcome == Outcome::kHttp503 || outcome == Outcome::kExcused) status = 503;
    if (outcome == Outcome::kHttp504) status = 504;
    if (outcome == Outcome::kHttp5xx) status = 521;
    if (outcome == Outcome::kUnexpectedStatus) status = 301;
    const std::string name = "mon-" + std::string(probes::kOutcomeNames[i]);
    auto first = Make(name, outcome, status, !probes::IsFailure(outcome));
    if (status >= 500) {
      first.emitter = status == 521 ? Emitter::kCloudflare : Emitter::kEnvoy;
      first.reason = status == 521 ? Reason::kOriginUnreachable : Reason::kUpstreamConnectFailed;
    }
    if (status > 0) {
      first.phases.connect = us(300);
      first.phases.tls = us(2000);
      first.phases.processing = us(4000);
      first.phases.transfer = us(100);
      first.tls.earliest_expiry = SystemTime(std::chrono::seconds(1'900'000'000 + i));
    }
    m.Observe(first);
    if (probes::IsFailure(outcome)) {  // the confirming retry
      auto retry = first;
      retry.attempt = 1;
      retry.confirmed = true;
      m.Observe(retry);
    }
  }
  auto odd = Make("quote\"back\\slash\nnewline", Outcome::kOk, 200, true);
  odd.region = "r\"1";
  m.Observe(odd);
  SelfStats s;
  s.probes_in_flight = 12;
  s.lag_buckets = {100, 20, 3, 1, 0, 0, 0, 0, 0, 0, 1};
  s.lag_sum_seconds = 6.5;
  s.db_rows_written = 5000;
  s.db_batches = 20;
  s.db_last_batch_seconds = 0.004;
  s.start_time = SystemTime(std::chrono::seconds(1'800'000'000));
  m.SetSelfStats([s] { return s; });
  auto alerts = m.AddGaugeFamily("gatewatch_alert_state",
                                 "Alert state (0 ok, 1 pending, 2 firing, 3 resolving).");
  REQUIRE(alerts.has_value());
  (*alerts)->Set({{"alert", "down"}, {"monitor", "mon-http_502"}}, 2);

  const std::string text = m.Render();
  for (const char* family :
       {"gatewatch_probe_success{", "gatewatch_probe_phase_seconds{",
        "gatewatch_probe_http_status_code{", "gatewatch_probe_emitter_total{",
        "gatewatch_probes_total{", "gatewatch_http_responses_total{",
        "gatewatch_tls_cert_expiry_timestamp_seconds{", "gatewatch_scheduler_lag_seconds_bucket{",
        "gatewatch_probes_in_flight ", "gatewatch_probes_skipped_total{",
        "gatewatch_db_write_batch_seconds ", "gatewatch_build_info{", "process_start_time_seconds ",
        "gatewatch_alert_state{"}) {
    CHECK_MESSAGE(text.find(family) != std::string::npos, family);
  }
  const std::string problems = PromtoolProblems(text);
  CHECK_MESSAGE(problems.empty(), "promtool check metrics complained:\n" << problems);
}

// A free loopback port (bound, then released for the child to take).
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  close(fd);
  return ntohs(addr.sin_port);
}

std::string Config(const testing::TempDir& dir, const fleet::RawHttpServer& target,
                   bool with_refused) {
  std::string toml =
      "[server]\nlisten = \"127.0.0.1:0\"\nregion = \"local\"\n[storage]\npath = \"" +
      dir.File("gw.db") +
      "\"\n[defaults]\ninterval = \"1s\"\ntimeout = \"900ms\"\nretries = 0\n"
      "[[monitors]]\nname = \"ok\"\nurl = \"" +
      target.Url("/") +
      "\"\n"
      "[[monitors]]\nname = \"bad-gateway\"\nurl = \"" +
      target.Url("/502") + "\"\n";
  if (with_refused) toml += "[[monitors]]\nname = \"refused\"\nurl = \"http://127.0.0.1:1/\"\n";
  return toml;
}

bool Has(const std::string& text, const std::string& line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

TEST_CASE(
    "Metrics: the live daemon's /metrics passes promtool, a real Prometheus scrapes it, reload "
    "drops series") {
  REQUIRE_MESSAGE(std::filesystem::exists(kPrometheus),
                  kPrometheus << " is missing: install the Debian package `prometheus`");
  fleet::RawHttpServer target;
  target.Route("/502", fleet::Behavior::Raw(fleet::pages::Nginx(502)));
  testing::TempDir dir;
  const std::string config = dir.Write("gw.toml", Config(dir, target, true));
  const std::string log = dir.File("err.log");
  testing::Process daemon({GATEWATCH_BINARY, "run", "--config", config}, dir.File("out.log"), log);

  const int port = testing::WaitForListenPort(log);
  REQUIRE_MESSAGE(port > 0, testing::ReadFile(log));

  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(2);
  client.set_read_timeout(5);
  std::string body;
  std::string content_type;
  auto scrape = [&] {
    auto res = client.Get("/metrics");
    if (!res || res->status != 200) return false;
    body = res->body;
    content_type = res->get_header_value("Content-Type");
    return true;
  };
  // Each monitor probed at least once (interval 1s, no retries: every result is confirmed).
  REQUIRE_MESSAGE(
      WaitFor(
          [&] {
            return scrape() &&
                   Has(body, "gatewatch_probe_success{monitor=\"ok\",region=\"local\"} 1") &&
                   Has(body,
                       "gatewatch_probe_success{monitor=\"bad-gateway\",region=\"local\"} 0") &&
                   Has(body, "gatewatch_probe_success{monitor=\"refused\",region=\"local\"} 0");
          },
          20s),
      body);
  CHECK(content_type == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(Has(body, "gatewatch_probe_http_status_code{monitor=\"ok\",region=\"local\"} 200"));
  CHECK(
      Has(body, "gatewatch_probe_http_status_code{monitor=\"bad-gateway\",region=\"local\"} 502"));
  CHECK(Has(body, "gatewatch_probe_http_status_code{monitor=\"refused\",region=\"local\"} 0"));
  CHECK(body.find("gatewatch_probe_emitter_total{monitor=\"bad-gateway\",region=\"local\",emitter="
                  "\"nginx\","
                  "reason=\"unknown\"} ") != std::string::npos);
  CHECK(body.find("gatewatch_probes_total{monitor=\"refused\",region=\"local\",outcome=\"connect_"
                  "refused\"} ") != std::string::npos);
  CHECK(body.find("gatewatch_http_responses_total{monitor=\"bad-gateway\",region=\"local\",code="
                  "\"502\"} ") != std::string::npos);
  CHECK(
      body.find(
          "gatewatch_probe_phase_seconds{monitor=\"ok\",region=\"local\",phase=\"processing\"} ") !=
      std::string::npos);
  CHECK(body.find("gatewatch_probe_phase_seconds{monitor=\"ok\",region=\"local\",phase=\"tls\"}") ==
        std::string::npos);  // plain HTTP: no TLS phase
  CHECK(body.find("gatewatch_probe_phase_seconds{monitor=\"refused\",region=\"local\",phase="
                  "\"processing\"}") == std::string::npos);  // refused: never got that far
  for (const char* self :
       {"gatewatch_scheduler_lag_seconds_count ", "gatewatch_probes_in_flight ",
        "gatewatch_probes_queued ", "gatewatch_probes_skipped_total{reason=\"overload\"} ",
        "gatewatch_db_rows_written_total ", "gatewatch_db_queue_depth ",
        "gatewatch_db_write_batch_seconds ", "gatewatch_build_info{version=\"",
        "process_start_time_seconds "}) {
    CHECK_MESSAGE(body.find(self) != std::string::npos, self);
  }
  const std::string problems = PromtoolProblems(body);
  CHECK_MESSAGE(problems.empty(), "promtool check metrics complained:\n" << problems);

  SUBCASE("a real Prometheus scrapes it") {
    const int prom_port = FreePort();
    const std::string prom_config =
        dir.Write("prometheus.yml",
                  "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n"
                  "  - job_name: gatewatch\n    static_configs:\n      - targets: ['127.0.0.1:" +
                      std::to_string(port) + "']\n");
    const std::string prom_log = dir.File("prometheus.log");
    testing::Process prometheus(
        {kPrometheus, "--config.file=" + prom_config, "--storage.tsdb.path=" + dir.File("tsdb"),
         "--web.listen-address=127.0.0.1:" + std::to_string(prom_port)},
        dir.File("prometheus.out"), prom_log);
    httplib::Client api("127.0.0.1", prom_port);
    api.set_connection_timeout(1);
    api.set_read_timeout(5);
    std::set<std::string> seen;
    auto last_try = std::chrono::steady_clock::now() - 1s;
    const bool scraped = WaitFor(
        [&] {
          // At most four queries a second: the answer changes once per scrape interval.
          if (std::chrono::steady_clock::now() - last_try < 250ms) return false;
          last_try = std::chrono::steady_clock::now();
          auto res = api.Get("/api/v1/query?query=gatewatch_probe_success");
          if (!res || res->status != 200) return false;
          const auto json = nlohmann::json::parse(res->body, nullptr, false);
          if (json.is_discarded() || json.value("status", "") != "success") return false;
          seen.clear();
          for (const auto& series : json["data"]["result"]) {
            seen.insert(series["metric"].value("monitor", "") + "/" +
                        series["metric"].value("region", ""));
          }
          return seen == std::set<std::string>{"ok/local", "bad-gateway/local", "refused/local"};
        },
        60s);
    CHECK_MESSAGE(scraped, "Prometheus did not report the monitors; its log:\n"
                               << ReadFile(prom_log));
    // The scrape itself was healthy (up == 1).
    auto up = api.Get("/api/v1/query?query=up");
    REQUIRE(up);
    CHECK(up->body.find("\"value\":[") != std::string::npos);
    CHECK(up->body.find(",\"1\"]") != std::string::npos);
    prometheus.Signal(SIGTERM);
    CHECK(prometheus.Wait(20s).has_value());
  }

  SUBCASE("SIGHUP with a monitor removed drops its series") {
    dir.Write("gw.toml", Config(dir, target, false));
    daemon.Signal(SIGHUP);
    REQUIRE_MESSAGE(
        WaitFor([&] { return scrape() && body.find("monitor=\"refused\"") == std::string::npos; },
                10s),
        body);
    CHECK(Has(body, "gatewatch_probe_success{monitor=\"ok\",region=\"local\"} 1"));
    CHECK(ReadFile(log).find("msg=\"config reloaded\"") != std::string::npos);
    // After another round of probes (any probe in flight during the reload has ended:
    // timeout 900ms < interval), still no trace of it.
    auto ok_count = [&] {
      std::smatch m;
      if (!std::regex_search(body, m,
                             std::regex("gatewatch_probes_total\\{monitor=\"ok\",region=\"local\","
                                        "outcome=\"ok\"\\} (\\d+)"))) {
        return 0;
      }
      return std::stoi(m[1]);
    };
    const int before = ok_count();
    REQUIRE(WaitFor([&] { return scrape() && ok_count() >= before + 2; }, 10s));
    CHECK(body.find("monitor=\"refused\"") == std::string::npos);
  }

  daemon.Signal(SIGTERM);
  auto code = daemon.Wait(15s);
  REQUIRE(code.has_value());
  CHECK(*code == 0);
}

}  // namespace
}  // namespace gatewatch::daemon
