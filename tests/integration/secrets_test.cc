// Secrets (webhook URLs, tokens, HMAC secrets, credentials in query strings) never
// appear in /metrics, any API response, the status page or the logs (docs/reliability.md).

#include <httplib.h>
#include <signal.h>

#include <doctest/doctest.h>

#include <regex>

#include "fleet/pages.h"
#include "fleet/raw_server.h"
#include "tests/support/listen_port.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace gatewatch::daemon {
namespace {

using namespace std::chrono_literals;
using testing::ReadFile;

const std::vector<std::string> kSecrets = {
    "TOKEN-SECRET-0123456789abcdef",  // server.api_token
    "SLACK-SECRET-T000/B000/XXXX",    // inside the Slack webhook URL
    "HMAC-SECRET-41",                 // webhook signing secret
    "QUERY-SECRET-77",                // a credential in a monitor's query string
    "PROXY-SECRET-pw",                // proxy credentials
};

void CheckClean(const std::string& where, const std::string& text) {
  for (const auto& secret : kSecrets) {
    CAPTURE(where);
    CAPTURE(secret);
    CHECK(text.find(secret) == std::string::npos);
  }
}

TEST_CASE("Secrets: never in metrics, API, status page or logs") {
  fleet::RawHttpServer site;
  site.Route("/bad", fleet::Behavior::Raw(fleet::pages::Nginx(502)));
  testing::TempDir dir;
  const std::string env_file = "SLACK_URL=https://hooks.slack.com/services/" + kSecrets[1];
  const std::string toml =
      "[server]\nlisten = \"127.0.0.1:0\"\napi_token = \"${GW_TOKEN}\"\n"
      "[storage]\npath = \"" + dir.File("gw.db") + "\"\n"
      "[defaults]\ninterval = \"1s\"\ntimeout = \"900ms\"\nretries = 0\n"
      "[regions.via]\nproxy = \"http://user:" + kSecrets[4] + "@127.0.0.1:1\"\n"
      "[[monitors]]\nname = \"shop\"\nurl = \"" + site.Url("/bad?token=" + kSecrets[3]) + "\"\n"
      "regions = [\"local\", \"via\"]\n"
      "[[monitors]]\nname = \"ok\"\nurl = \"" + site.Url("/healthz?key=" + kSecrets[3]) + "\"\n"
      "regions = [\"local\"]\n"
      "[[alerts]]\nname = \"shop-502\"\nmonitors = [\"shop\"]\nkind = \"status_rate\"\nabove = 0.5\n"
      "notify = [\"chat\", \"hook\"]\n"
      "[[notifiers]]\nname = \"chat\"\ntype = \"slack\"\nurl = \"${SLACK_URL}\"\n"
      "[[notifiers]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"\nsecret = \"" +
      kSecrets[2] + "\"\n";
  const std::string config = dir.Write("gw.toml", toml);
  const std::vector<std::string> env = {"GW_TOKEN=" + kSecrets[0], env_file};
  testing::Process daemon({GATEWATCH_BINARY, "run", "--config", config, "--log-level", "debug"},
                          dir.File("out.log"), dir.File("err.log"), env);
  const int port = testing::WaitForListenPort(dir.File("err.log"));
  REQUIRE_MESSAGE(port > 0, testing::ReadFile(dir.File("err.log")));
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(10, 0);
  // Wait until both monitors have results, failing ones included.
  REQUIRE(testing::WaitFor([&] {
    auto r = client.Get("/api/v1/monitors/shop/results?limit=5");
    return r && r->status == 200 && r->body.find("http_502") != std::string::npos &&
           r->body.find("proxy_error") != std::string::npos;
  }, 30s));

  for (const std::string path :
       {"/metrics", "/", "/api/v1/monitors", "/api/v1/monitors/shop", "/api/v1/monitors/ok",
        "/api/v1/monitors/shop/results?limit=100", "/api/v1/monitors/ok/results", "/api/v1/incidents",
        "/api/v1/alerts", "/readyz", "/healthz", "/api/v1/monitors/nope"}) {
    auto r = client.Get(path);
    REQUIRE_MESSAGE(r, path);
    CheckClean(path, r->body);
    for (const auto& [k, v] : r->headers) CheckClean(path + " header " + k, v);
  }
  // A rejected write, and a reload whose errors concern secret-holding keys.
  auto denied = client.Post("/api/v1/ingest", "[]", "application/json");
  REQUIRE(denied);
  CHECK(denied->status == 401);
  CheckClean("ingest", denied->body);
  dir.Write("gw.toml", toml + "[[notifiers]]\nname = \"bad\"\ntype = \"slack\"\nurl = \"not a url " + kSecrets[1] +
                           "\"\n[server.extra]\n");
  daemon.Signal(SIGHUP);
  REQUIRE(testing::WaitFor([&] { return ReadFile(dir.File("err.log")).find("config reload failed") != std::string::npos; }));
  daemon.Signal(SIGTERM);
  CHECK(daemon.Wait(15s) == 0);

  const std::string logs = ReadFile(dir.File("err.log")) + ReadFile(dir.File("out.log"));
  CHECK(logs.find("probe failed") != std::string::npos);  // the logs do say things...
  CheckClean("logs", logs);                                // ...but never the secrets
  auto validate = testing::RunCommand({GATEWATCH_BINARY, "validate", "--config", config}, 30s, env);
  CheckClean("validate", validate.out + validate.err);
}

}  // namespace
}  // namespace gatewatch::daemon
