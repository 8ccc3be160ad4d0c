// The status page (daemon/status_page.h) of the real daemon probing loopback fleet targets,
// rendered by headless Chromium.

#include "daemon/status_page.h"

#include <doctest/doctest.h>
#include <httplib.h>
#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "daemon/config.h"
#include "daemon/config_holder.h"
#include "daemon/http_server.h"
#include "fleet/pages.h"
#include "fleet/raw_server.h"
#include "storage/sqlite_store.h"
#include "tests/support/fake_clock.h"
#include "tests/support/listen_port.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace gatewatch::daemon {
namespace {

using namespace std::chrono_literals;
using probes::Outcome;
using testing::ReadFile;
using testing::WaitFor;

constexpr const char* kSecrets[] = {"QUERYSECRET42", "WEBHOOKSECRET", "TOKEN-SUPER-SECRET",
                                    "HEADERSECRET"};
constexpr const char* kChromium = "/usr/bin/chromium";

// The section of the page (or DOM) that renders one monitor.
std::string Card(const std::string& html, const std::string& monitor) {
  const size_t start = html.find("data-monitor=\"" + monitor + "\"");
  if (start == std::string::npos) return "";
  const size_t end = html.find("</section>", start);
  return html.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

bool Contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

std::vector<std::string> ChromiumArgs(const testing::TempDir& dir, const std::string& profile) {
  return {kChromium,
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          "--user-data-dir=" + dir.File(profile)};
}

TEST_CASE(
    "StatusPage: headless Chromium renders the real daemon's page with ok and failing monitors") {
  REQUIRE_MESSAGE(std::filesystem::exists(kChromium),
                  "headless Chromium is required at /usr/bin/chromium: install the Debian package "
                  "`chromium` (scripts/install-deps.sh --tests, scripts/test-packages.txt)");
  fleet::RawHttpServer target;
  target.Route("/checkout", fleet::Behavior::Raw(fleet::pages::Nginx(502)));

  testing::TempDir dir;
  const std::string config = dir.Write("gatewatch.toml", R"([server]
listen = "127.0.0.1:0"
api_token = "TOKEN-SUPER-SECRET-0123456789"
[storage]
path = ")" + dir.File("gw.db") + R"("
[defaults]
interval = "1s"
timeout = "1s"
retries = 0
[[monitors]]
name = "frontend"
url = ")" + target.Url("/health?token=QUERYSECRET42") + R"("
[[monitors]]
name = "checkout"
url = ")" + target.Url("/checkout") + R"("
upstreams = ["frontend"]
[[notifiers]]
name = "chat"
type = "slack"
url = "https://hooks.slack.com/services/T000/B000/WEBHOOKSECRET"
)");
  const std::string log = dir.File("stderr.log");
  testing::Process daemon({GATEWATCH_BINARY, "run", "--config", config}, dir.File("stdout.log"),
                          log);
  const int port = testing::WaitForListenPort(log);
  REQUIRE_MESSAGE(port > 0, testing::ReadFile(log));

  // Both monitors have a confirmed result (the writer flushes about every second).
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(5);
  REQUIRE(WaitFor(
      [&] {
        auto res = client.Get("/api/v1/monitors");
        if (!res || res->status != 200) return false;
        const auto body = nlohmann::json::parse(res->body);
        return body["monitors"][0]["state"] == "ok" && body["monitors"][1]["state"] == "failing";
      },
      20s));

  REQUIRE(WaitFor(
      [&] {
        auto res = client.Get("/api/v1/incidents?open=true");
        if (!res || res->status != 200) return false;
        const auto body = nlohmann::json::parse(res->body);
        return body["incidents"].size() == 1 && body["incidents"][0]["verdict"] == "gateway_fault";
      },
      20s));

  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/";
  auto args = ChromiumArgs(dir, "profile-dom");
  args.push_back("--dump-dom");
  args.push_back(url);
  const testing::RunResult dom = testing::RunCommand(args, 60s, {"HOME=" + dir.path()});
  INFO("chromium stderr: " << dom.err);
  REQUIRE(dom.exit_code == 0);
  const std::string& html = dom.out;
  INFO("DOM: " << html);

  CHECK(Contains(html, "<title>(1 failing) gatewatch status</title>"));
  // checkout's gateway answers 502 while its upstream (frontend) is healthy: an open incident
  // with the verdict gateway_fault, shown above the monitors.
  CHECK_FALSE(Contains(html, "No open incidents"));
  CHECK(Contains(html, "class=\"card incident\" data-incident=\"checkout\" data-verdict=\"gateway_fault\""));
  const std::string checkout = Card(html, "checkout");
  CHECK(Contains(checkout, "data-state=\"failing\""));
  CHECK(Contains(checkout, "data-region=\"local\" data-state=\"failing\""));
  CHECK(Contains(checkout, ">http_502<"));
  CHECK(Contains(checkout, ">502<"));
  CHECK(Contains(checkout, ">nginx<"));  // the emitter, from the nginx error page
  CHECK(Contains(checkout, "<details class=\"failures\" open=\"\">"));
  const std::string frontend = Card(html, "frontend");
  CHECK(Contains(frontend, "data-state=\"ok\""));
  CHECK(Contains(frontend, "data-region=\"local\" data-state=\"ok\""));
  CHECK(Contains(frontend, "/health<"));
  CHECK(Contains(frontend, "<svg"));
  CHECK(html.find("data-monitor=\"checkout\"") < html.find("data-monitor=\"frontend\""));
  for (const char* secret : kSecrets) CHECK_FALSE(Contains(html, secret));

  // A screenshot, to look at by hand: GATEWATCH_STATUS_SCREENSHOT=/tmp/page.png keeps a copy.
  const std::string png = dir.File("status.png");
  args = ChromiumArgs(dir, "profile-shot");
  args.push_back("--hide-scrollbars");
  args.push_back("--window-size=1280,900");
  args.push_back("--screenshot=" + png);
  args.push_back(url);
  const testing::RunResult shot = testing::RunCommand(args, 60s, {"HOME=" + dir.path()});
  INFO("chromium stderr: " << shot.err);
  REQUIRE(shot.exit_code == 0);
  const std::string image = ReadFile(png);
  CHECK(image.rfind("\x89PNG", 0) == 0);
  if (const char* keep = std::getenv("GATEWATCH_STATUS_SCREENSHOT")) {
    std::filesystem::copy_file(png, keep, std::filesystem::copy_options::overwrite_existing);
  }

  daemon.Signal(SIGTERM);
  auto code = daemon.Wait(10s);
  REQUIRE(code.has_value());
  CHECK(*code == 0);
}

}  // namespace
}  // namespace gatewatch::daemon
