// `gatewatch notify-test --config F --notifier NAME` (docs/cli.md): a sample firing and
// resolved message through one notifier, the receiver's answers printed, exit 0 only when
// both were accepted.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/webhook_receiver.h"

namespace gatewatch::daemon {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

std::string Config(testing::TempDir& dir, const testing::WebhookReceiver& hook) {
  return dir.Write("gatewatch.toml", R"(
[[monitors]]
name = "shop"
url = "http://127.0.0.1:9/"

[[notifiers]]
name = "hook"
type = "webhook"
url = ")" + hook.Url("/hook/SECRET-PATH-TOKEN") + R"("
secret = "hmac-key"
timeout = "2s"

[[notifiers]]
name = "console"
type = "console"
)");
}

testing::RunResult NotifyTest(const std::string& config, const std::string& notifier) {
  return testing::RunCommand({GATEWATCH_BINARY, "notify-test", "--config", config, "--notifier", notifier}, 30s);
}

TEST_CASE("notify-test: sends a firing and a resolved message and prints the answers") {
  testing::WebhookReceiver hook;
  testing::TempDir dir;
  const auto r = NotifyTest(Config(dir, hook), "hook");
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  const auto got = hook.Requests();
  REQUIRE(got.size() == 2);
  CHECK(json::parse(got[0].body)["status"] == "firing");
  CHECK(json::parse(got[1].body)["status"] == "resolved");
  CHECK(got[0].headers.contains("X-Gatewatch-Signature"));
  CHECK(r.out.find("hook (webhook), firing: HTTP 200") != std::string::npos);
  CHECK(r.out.find("hook (webhook), resolved: HTTP 200") != std::string::npos);
  CHECK(r.out.find("SECRET-PATH-TOKEN") == std::string::npos);  // the url is a secret
}

TEST_CASE("notify-test: a refusing or missing receiver exits 1, an unknown notifier exits 2") {
  testing::TempDir dir;
  std::string config;
  {
    testing::WebhookReceiver hook;
    hook.Script({{500, "boom"}, {200}});
    config = Config(dir, hook);
    const auto refused = NotifyTest(config, "hook");
    INFO(refused.out << refused.err);
    CHECK(refused.exit_code == 1);
    CHECK(refused.out.find("firing: HTTP 500") != std::string::npos);
    CHECK(refused.out.find("boom") != std::string::npos);
    CHECK(refused.err.find("1 of 2 test messages were not accepted") != std::string::npos);
  }
  const auto gone = NotifyTest(config, "hook");  // the receiver is gone: connection refused
  INFO(gone.out << gone.err);
  CHECK(gone.exit_code == 1);
  CHECK(gone.out.find("no answer") != std::string::npos);
  CHECK(gone.out.find("SECRET-PATH-TOKEN") == std::string::npos);

  const auto unknown = NotifyTest(config, "pager");
  CHECK(unknown.exit_code == 2);
  CHECK(unknown.err.find("no notifier named \"pager\"") != std::string::npos);
  CHECK(unknown.err.find("notifiers: hook, console") != std::string::npos);

  const auto usage = testing::RunCommand({GATEWATCH_BINARY, "notify-test", "--config", config}, 30s);
  CHECK(usage.exit_code == 2);
  CHECK(usage.err.rfind("gatewatch: --notifier is required\n", 0) == 0);
}

TEST_CASE("notify-test: a console notifier prints both messages") {
  testing::WebhookReceiver hook;
  testing::TempDir dir;
  const auto r = NotifyTest(Config(dir, hook), "console");
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("[FIRING] gatewatch-test on notify-test") != std::string::npos);
  CHECK(r.out.find("[RESOLVED] gatewatch-test on notify-test") != std::string::npos);
  CHECK(hook.Count() == 0);
}

}  // namespace
}  // namespace gatewatch::daemon
